#include "aggregator/apimachinery/request_options.h"

#include "aggregator/apimachinery/base64url.h"
#include "aggregator/apimachinery/codec.h"

#include <nlohmann/json.hpp>

#include <cctype>

namespace dpa::api {
namespace {

ApiError options_invalid(const std::string& kind, const std::string& reason,
                         const std::string& field, const std::string& message) {
  return ApiError::invalid(kind, "meta.k8s.io", "", {{reason, message, field}});
}

ApiError list_forbidden(const std::string& field, const std::string& message) {
  return options_invalid("ListOptions", "FieldValueForbidden", field, "Forbidden: " + message);
}

}  // namespace

std::string encode_continue(const ContinueToken& token) {
  return base64url_encode(
      dump_json(nlohmann::json{{"rv", token.resource_version}, {"start", token.start_after}}));
}

Expected<ContinueToken> decode_continue(std::string_view token) {
  auto bad = ApiError::bad_request("continue key is not valid: illegal base64 data or format");
  if (token.empty() || token.size() > 4096) return bad;
  std::optional<std::string> raw = base64url_decode(token);
  if (!raw) return bad;
  auto j = nlohmann::json::parse(*raw, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("rv") ||
      !j["rv"].is_number_integer() || !j.contains("start") || !j["start"].is_string()) {
    return bad;
  }
  ContinueToken t;
  t.resource_version = j["rv"].get<int64_t>();
  t.start_after = j["start"].get<std::string>();
  if (t.resource_version <= 0) return bad;
  return t;
}

Expected<int64_t> parse_resource_version(std::string_view text) {
  if (text.empty()) return int64_t{0};
  if (text.size() > 18) {
    return ApiError::bad_request("invalid resource version: \"" + std::string(text) + "\"");
  }
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return ApiError::bad_request("invalid resource version: \"" + std::string(text) + "\"");
    }
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<bool> parse_bool_param(std::string_view value) {
  if (value == "true" || value == "1" || value == "True") return true;
  if (value == "false" || value == "0" || value == "False" || value.empty()) return false;
  return std::nullopt;
}

Outcome validate_list_request(const ListRequest& r) {
  if (r.limit < 0) {
    return options_invalid("ListOptions", "FieldValueInvalid", "limit",
                           "Invalid value: " + std::to_string(r.limit) + ": must be >= 0");
  }
  if (r.timeout_seconds && *r.timeout_seconds < 0) {
    return options_invalid("ListOptions", "FieldValueInvalid", "timeoutSeconds",
                           "Invalid value: " + std::to_string(*r.timeout_seconds) +
                               ": must be >= 0");
  }
  auto rv = parse_resource_version(r.resource_version);
  if (!rv) return rv.error();
  const std::string& m = r.resource_version_match;
  if (!m.empty() && m != "Exact" && m != "NotOlderThan") {
    return options_invalid("ListOptions", "FieldValueNotSupported", "resourceVersionMatch",
                           "Unsupported value: \"" + m +
                               "\": supported values: \"Exact\", \"NotOlderThan\"");
  }
  bool send_initial = r.send_initial_events.value_or(false);
  if (r.send_initial_events.has_value()) {
    if (!r.watch) return list_forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list");
    if (m != "NotOlderThan") {
      return list_forbidden("resourceVersionMatch",
                            "sendInitialEvents requires setting resourceVersionMatch to "
                            "NotOlderThan");
    }
    if (send_initial && !r.allow_watch_bookmarks) {
      return list_forbidden("allowWatchBookmarks",
                            "allowWatchBookmarks is required when sendInitialEvents is set");
    }
    return Ok{};
  }
  if (r.watch) {
    if (!m.empty()) {
      return list_forbidden("resourceVersionMatch",
                            "resourceVersionMatch is forbidden for watch unless sendInitialEvents "
                            "is provided");
    }
    return Ok{};
  }
  if (!m.empty()) {
    if (r.resource_version.empty()) {
      return list_forbidden("resourceVersionMatch",
                            "resourceVersionMatch is forbidden unless resourceVersion is provided");
    }
    if (!r.continue_token.empty()) {
      return list_forbidden("resourceVersionMatch",
                            "resourceVersionMatch is forbidden when continue is provided");
    }
    if (m == "Exact" && *rv == 0) {
      return list_forbidden("resourceVersionMatch",
                            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"");
    }
  }
  if (!r.continue_token.empty() && *rv != 0) {
    return ApiError::bad_request("specifying resource version is not allowed when using continue");
  }
  return Ok{};
}

Expected<FieldValidation> parse_field_validation(std::string_view value,
                                                 const std::string& options_kind) {
  if (value.empty() || value == "Warn") return FieldValidation::kWarn;
  if (value == "Strict") return FieldValidation::kStrict;
  if (value == "Ignore") return FieldValidation::kIgnore;
  return options_invalid(options_kind, "FieldValueNotSupported", "fieldValidation",
                         "Unsupported value: \"" + std::string(value) +
                             "\": supported values: \"Ignore\", \"Strict\", \"Warn\"");
}

Outcome validate_dry_run(const std::vector<std::string>& values, const std::string& options_kind) {
  for (const auto& v : values) {
    if (v != "All") {
      return options_invalid(options_kind, "FieldValueNotSupported", "dryRun",
                             "Unsupported value: \"" + v + "\": supported values: \"All\"");
    }
  }
  return Ok{};
}

Outcome validate_field_manager(std::string_view manager, const std::string& options_kind) {
  if (manager.size() > 128) {
    return options_invalid(options_kind, "FieldValueTooLong", "fieldManager",
                           "Too long: may not be more than 128 bytes");
  }
  for (char c : manager) {
    if (!std::isprint(static_cast<unsigned char>(c))) {
      return options_invalid(options_kind, "FieldValueInvalid", "fieldManager",
                             "Invalid value: \"" + std::string(manager) +
                                 "\": must only contain printable characters");
    }
  }
  return Ok{};
}

std::string field_manager_from_user_agent(std::string_view user_agent) {
  auto slash = user_agent.find('/');
  std::string m(user_agent.substr(0, slash));
  if (m.size() > 128) m.resize(128);
  return m.empty() ? "unknown" : m;
}

}  // namespace dpa::api
