#include "aggregator/dataplaneservice/types.h"

#include "aggregator/apimachinery/codec.h"

#include <algorithm>
#include <array>
#include <regex>
#include <set>

namespace dpa::dataplaneservice {
namespace {

using api::StatusCause;

constexpr std::array<const char*, 9> kServiceTypes = {
    "query", "stream", "route", "datasource-proxy", "datsource-proxy",
    "admission", "conversion", "health", "metrics"};
constexpr std::array<const char*, 9> kMethods = {"GET",    "HEAD",    "POST",    "PUT",  "PATCH",
                                                 "DELETE", "OPTIONS", "CONNECT", "TRACE"};

std::string json_quote(const std::string& s) { return api::dump_json(nlohmann::json(s)); }

StatusCause required(const std::string& field) {
  return {"FieldValueRequired", "Required value", field};
}
StatusCause invalid(const std::string& field, const std::string& value, const std::string& why) {
  return {"FieldValueInvalid", "Invalid value: " + json_quote(value) + ": " + why, field};
}
StatusCause not_supported(const std::string& field, const std::string& value,
                          const std::vector<std::string>& allowed) {
  std::string list;
  for (std::size_t i = 0; i < allowed.size(); ++i) {
    if (i) list += ", ";
    list += json_quote(allowed[i]);
  }
  return {"FieldValueNotSupported",
          "Unsupported value: " + json_quote(value) + ": supported values: " + list, field};
}

std::string object_name(const nlohmann::json& object) {
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object()) {
    const auto& m = object["metadata"];
    if (m.contains("name") && m["name"].is_string()) return m["name"].get<std::string>();
  }
  return "";
}

bool is_dns_subdomain(const std::string& s) {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  if (s.empty() || s.size() > 253 || !std::regex_match(s, re)) return false;
  std::size_t start = 0;
  while (true) {
    auto dot = s.find('.', start);
    if ((dot == std::string::npos ? s.size() : dot) - start > 63) return false;
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

bool is_kube_version(const std::string& s) {
  static const std::regex re("v(0|[1-9][0-9]*)((alpha|beta)[1-9][0-9]*)?");
  return s.size() <= 63 && std::regex_match(s, re);
}

// An absolute route path: "/seg/{param}/..." with URL-safe segment characters, no empty, "." or
// ".." segments (which proxies normalise away), no query or fragment.
bool is_route_path(const std::string& p, std::string* why) {
  if (p.empty() || p[0] != '/') {
    *why = "must be an absolute path starting with '/'";
    return false;
  }
  if (p.size() > 1024) {
    *why = "must be at most 1024 characters";
    return false;
  }
  if (p.size() == 1) return true;
  std::size_t start = 1;
  static const std::regex seg_re("([A-Za-z0-9._~!$&'()*+,;=:@%-]+|\\{[A-Za-z_][A-Za-z0-9_]*(\\.\\.\\.)?\\})");
  while (true) {
    auto slash = p.find('/', start);
    std::string seg = p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg.empty()) {
      if (slash == std::string::npos) return true;  // one trailing slash is fine
      *why = "must not contain empty segments (\"//\")";
      return false;
    }
    if (seg == "." || seg == "..") {
      *why = "must not contain '.' or '..' segments";
      return false;
    }
    if (!std::regex_match(seg, seg_re)) {
      *why = "segment " + json_quote(seg) +
             " must be a {parameter} or consist of unreserved URL characters (no '?', '#' or "
             "spaces)";
      return false;
    }
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

std::string canonical_type(const std::string& t) {
  return t == "datsource-proxy" ? "datasource-proxy" : t;
}

api::ApiError make_invalid(const nlohmann::json& object, std::vector<StatusCause> causes) {
  return api::ApiError::invalid(kKind, kGroup, object_name(object), std::move(causes));
}

void collect_unknown(const nlohmann::json& value, const std::set<std::string>& known,
                     const std::string& prefix, std::vector<std::string>& out) {
  if (!value.is_object()) return;
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!known.count(it.key())) out.push_back(prefix + it.key());
  }
}

const std::set<std::string> kTopLevel = {"apiVersion", "kind", "metadata", "spec", "status"};
const std::set<std::string> kMetadata = {
    "name",        "generateName", "namespace", "selfLink", "uid",
    "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields"};
const std::set<std::string> kSpec = {"pluginID", "pluginType", "group", "version", "services"};
const std::set<std::string> kService = {"type", "method", "path"};
const std::set<std::string> kStatus = {"conditions"};
const std::set<std::string> kCondition = {"type", "status", "lastTransitionTime", "reason",
                                          "message", "observedGeneration"};

}  // namespace

bool Spec::has_service(const std::string& type) const {
  return std::any_of(services.begin(), services.end(), [&](const Service& s) {
    return canonical_type(s.type) == canonical_type(type);
  });
}

api::Expected<Spec> decode_spec(const nlohmann::json& object) {
  if (!object.is_object() || !object.contains("spec") || object["spec"].is_null()) {
    return make_invalid(object, {required("spec")});
  }
  const auto& spec = object["spec"];
  if (!spec.is_object()) {
    return make_invalid(object, {{"FieldValueTypeInvalid", "Invalid value: must be an object", "spec"}});
  }
  std::vector<StatusCause> causes;
  Spec out;
  auto read_string = [&](const char* key, std::string& dst) {
    if (!spec.contains(key) || spec[key].is_null()) return;
    if (!spec[key].is_string()) {
      causes.push_back({"FieldValueTypeInvalid",
                        "Invalid value: " + api::dump_json(spec[key]) + ": must be a string",
                        std::string("spec.") + key});
      return;
    }
    dst = spec[key].get<std::string>();
  };
  read_string("pluginID", out.plugin_id);
  read_string("pluginType", out.plugin_type);
  read_string("group", out.group);
  read_string("version", out.version);
  if (spec.contains("services") && !spec["services"].is_null()) {
    if (!spec["services"].is_array()) {
      causes.push_back({"FieldValueTypeInvalid", "Invalid value: must be a list", "spec.services"});
    } else {
      for (std::size_t i = 0; i < spec["services"].size(); ++i) {
        const auto& item = spec["services"][i];
        std::string field = "spec.services[" + std::to_string(i) + "]";
        if (!item.is_object()) {
          causes.push_back({"FieldValueTypeInvalid", "Invalid value: must be an object", field});
          continue;
        }
        Service s;
        for (auto [key, dst] : {std::pair<const char*, std::string*>{"type", &s.type},
                                {"method", &s.method},
                                {"path", &s.path}}) {
          if (!item.contains(key) || item[key].is_null()) continue;
          if (!item[key].is_string()) {
            causes.push_back({"FieldValueTypeInvalid",
                              "Invalid value: " + api::dump_json(item[key]) + ": must be a string",
                              field + "." + key});
            continue;
          }
          *dst = item[key].get<std::string>();
        }
        out.services.push_back(std::move(s));
      }
    }
  }
  if (!causes.empty()) return make_invalid(object, std::move(causes));
  return out;
}

api::Outcome validate(const nlohmann::json& object) {
  auto spec = decode_spec(object);
  if (!spec) return spec.error();
  std::vector<StatusCause> causes;
  const std::string name = object_name(object);

  if (name.empty()) {
    causes.push_back({"FieldValueRequired", "Required value: name or generateName is required",
                      "metadata.name"});
  } else if (!spec->group.empty() && !spec->version.empty() &&
             name != spec->version + "." + spec->group) {
    causes.push_back(invalid("metadata.name", name,
                             "must be <spec.version>.<spec.group> (" + spec->version + "." +
                                 spec->group + ")"));
  } else if (!is_dns_subdomain(name)) {
    causes.push_back(invalid("metadata.name", name,
                             "a lowercase RFC 1123 subdomain must consist of lower case "
                             "alphanumeric characters, '-' or '.', and must start and end with an "
                             "alphanumeric character"));
  }

  if (spec->group.empty()) {
    causes.push_back(required("spec.group"));
  } else if (!is_dns_subdomain(spec->group)) {
    causes.push_back(invalid("spec.group", spec->group,
                             "a lowercase RFC 1123 subdomain must consist of lower case "
                             "alphanumeric characters, '-' or '.', and must start and end with an "
                             "alphanumeric character (e.g. 'example.com')"));
  }
  if (spec->version.empty()) {
    causes.push_back(required("spec.version"));
  } else if (!is_kube_version(spec->version)) {
    causes.push_back(invalid("spec.version", spec->version,
                             "must be a Kubernetes version string such as v1, v2beta1 or "
                             "v0alpha1"));
  }
  if (spec->plugin_id.empty()) causes.push_back(required("spec.pluginID"));
  if (spec->plugin_type.empty()) {
    causes.push_back(required("spec.pluginType"));
  } else if (spec->plugin_type != "app" && spec->plugin_type != "datasource") {
    causes.push_back(not_supported("spec.pluginType", spec->plugin_type, {"app", "datasource"}));
  }

  std::set<std::string> seen_types;
  std::set<std::pair<std::string, std::string>> seen_routes;
  for (std::size_t i = 0; i < spec->services.size(); ++i) {
    const Service& s = spec->services[i];
    std::string field = "spec.services[" + std::to_string(i) + "]";
    if (s.type.empty()) {
      causes.push_back(required(field + ".type"));
      continue;
    }
    if (std::find_if(kServiceTypes.begin(), kServiceTypes.end(),
                     [&](const char* t) { return s.type == t; }) == kServiceTypes.end()) {
      causes.push_back(not_supported(field + ".type", s.type,
                                     {"admission", "conversion", "datasource-proxy", "health",
                                      "metrics", "query", "route", "stream"}));
      continue;
    }
    if (s.type != "route") {
      if (!seen_types.insert(canonical_type(s.type)).second) {
        causes.push_back({"FieldValueDuplicate", "Duplicate value: " + json_quote(s.type),
                          field + ".type"});
      }
      if (!s.path.empty()) {
        causes.push_back({"FieldValueForbidden", "Forbidden: may only be set for type \"route\"",
                          field + ".path"});
      }
      if (!s.method.empty()) {
        causes.push_back({"FieldValueForbidden", "Forbidden: may only be set for type \"route\"",
                          field + ".method"});
      }
      continue;
    }
    std::string why;
    if (!s.path.empty() && !is_route_path(s.path, &why)) {
      causes.push_back(invalid(field + ".path", s.path, why));
    }
    if (!s.method.empty() &&
        std::find_if(kMethods.begin(), kMethods.end(),
                     [&](const char* m) { return s.method == m; }) == kMethods.end()) {
      causes.push_back(not_supported(field + ".method", s.method,
                                     {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}));
    }
    if (!seen_routes.insert({s.method, s.path}).second) {
      causes.push_back({"FieldValueDuplicate",
                        "Duplicate value: " + json_quote((s.method.empty() ? "*" : s.method) + " " +
                                                     (s.path.empty() ? "<resources>" : s.path)),
                        field + ".path"});
    }
  }
  if (!causes.empty()) return make_invalid(object, std::move(causes));
  return api::Ok{};
}

api::Outcome validate_status(const nlohmann::json& object) {
  if (!object.is_object() || !object.contains("status") || object["status"].is_null()) {
    return api::Ok{};
  }
  const auto& status = object["status"];
  std::vector<StatusCause> causes;
  if (!status.is_object()) {
    causes.push_back({"FieldValueTypeInvalid", "Invalid value: must be an object", "status"});
    return make_invalid(object, std::move(causes));
  }
  if (status.contains("conditions") && !status["conditions"].is_null()) {
    const auto& conditions = status["conditions"];
    if (!conditions.is_array()) {
      causes.push_back(
          {"FieldValueTypeInvalid", "Invalid value: must be a list", "status.conditions"});
    } else {
      std::set<std::string> types;
      for (std::size_t i = 0; i < conditions.size(); ++i) {
        std::string field = "status.conditions[" + std::to_string(i) + "]";
        const auto& c = conditions[i];
        if (!c.is_object()) {
          causes.push_back({"FieldValueTypeInvalid", "Invalid value: must be an object", field});
          continue;
        }
        std::string type = c.contains("type") && c["type"].is_string() ? c["type"].get<std::string>() : "";
        if (type.empty()) {
          causes.push_back(required(field + ".type"));
        } else if (!types.insert(type).second) {
          causes.push_back({"FieldValueDuplicate", "Duplicate value: " + json_quote(type), field + ".type"});
        }
        std::string st = c.contains("status") && c["status"].is_string() ? c["status"].get<std::string>() : "";
        if (st.empty()) {
          causes.push_back(required(field + ".status"));
        } else if (st != "True" && st != "False" && st != "Unknown") {
          causes.push_back(not_supported(field + ".status", st, {"False", "True", "Unknown"}));
        }
        if (c.contains("lastTransitionTime") && !c["lastTransitionTime"].is_null()) {
          std::chrono::system_clock::time_point t;
          if (!c["lastTransitionTime"].is_string() ||
              !api::parse_rfc3339(c["lastTransitionTime"].get<std::string>(), &t)) {
            causes.push_back({"FieldValueInvalid", "Invalid value: must be an RFC 3339 time",
                              field + ".lastTransitionTime"});
          }
        }
      }
    }
  }
  if (!causes.empty()) return make_invalid(object, std::move(causes));
  return api::Ok{};
}

std::vector<std::string> unknown_fields(const nlohmann::json& object) {
  std::vector<std::string> out;
  if (!object.is_object()) return out;
  collect_unknown(object, kTopLevel, "", out);
  if (object.contains("metadata")) collect_unknown(object["metadata"], kMetadata, "metadata.", out);
  if (object.contains("spec") && object["spec"].is_object()) {
    const auto& spec = object["spec"];
    collect_unknown(spec, kSpec, "spec.", out);
    if (spec.contains("services") && spec["services"].is_array()) {
      for (std::size_t i = 0; i < spec["services"].size(); ++i) {
        collect_unknown(spec["services"][i], kService,
                        "spec.services[" + std::to_string(i) + "].", out);
      }
    }
  }
  if (object.contains("status") && object["status"].is_object()) {
    const auto& status = object["status"];
    collect_unknown(status, kStatus, "status.", out);
    if (status.contains("conditions") && status["conditions"].is_array()) {
      for (std::size_t i = 0; i < status["conditions"].size(); ++i) {
        collect_unknown(status["conditions"][i], kCondition,
                        "status.conditions[" + std::to_string(i) + "].", out);
      }
    }
  }
  return out;
}

void prune_unknown_fields(nlohmann::json& object) {
  auto prune = [](nlohmann::json& v, const std::set<std::string>& known) {
    if (!v.is_object()) return;
    for (auto it = v.begin(); it != v.end();) {
      if (!known.count(it.key())) {
        it = v.erase(it);
      } else {
        ++it;
      }
    }
  };
  if (!object.is_object()) return;
  prune(object, kTopLevel);
  if (object.contains("metadata")) prune(object["metadata"], kMetadata);
  if (object.contains("spec") && object["spec"].is_object()) {
    auto& spec = object["spec"];
    prune(spec, kSpec);
    if (spec.contains("services") && spec["services"].is_array()) {
      for (auto& s : spec["services"]) prune(s, kService);
    }
  }
  if (object.contains("status") && object["status"].is_object()) {
    auto& status = object["status"];
    prune(status, kStatus);
    if (status.contains("conditions") && status["conditions"].is_array()) {
      for (auto& c : status["conditions"]) prune(c, kCondition);
    }
  }
}

std::string key_of(const std::string& name) { return std::string(kKeyPrefix) + name; }

std::string name_of(const nlohmann::json& object) {
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object() &&
      object["metadata"].contains("name") && object["metadata"]["name"].is_string()) {
    return object["metadata"]["name"].get<std::string>();
  }
  return "";
}

api::Expected<nlohmann::json> object_from_record(const storage::Record& record,
                                                 int64_t resource_version) {
  auto object = nlohmann::json::parse(record.value, nullptr, false);
  if (object.is_discarded() || !object.is_object()) {
    return api::ApiError::internal("stored object " + record.key + " is not valid JSON");
  }
  if (!object.contains("metadata") || !object["metadata"].is_object()) {
    object["metadata"] = nlohmann::json::object();
  }
  object["metadata"]["resourceVersion"] =
      std::to_string(resource_version != 0 ? resource_version : record.mod_revision);
  return object;
}

namespace {

const char* json_type_name(const nlohmann::json& v) {
  if (v.is_number()) return "number";
  if (v.is_boolean()) return "bool";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "string";
}

api::ApiError cannot_unmarshal(const nlohmann::json& value, const std::string& field,
                               const char* go_type) {
  return api::ApiError::bad_request(
      std::string(kKind) + " in version \"" + kVersion + "\" cannot be handled as a " + kKind +
      ": json: cannot unmarshal " + json_type_name(value) + " into Go struct field ObjectMeta." +
      field + " of type " + go_type);
}

// What kube-apiserver's decoder refuses (400) before validation: ObjectMeta fields of the wrong
// JSON type. Without this a label value 5 or a finalizer {} would be stored as given.
api::Outcome check_metadata_types(const nlohmann::json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || meta->is_null()) return api::Ok{};
  if (!meta->is_object()) return cannot_unmarshal(*meta, "metadata", "v1.ObjectMeta");
  for (const char* key : {"name", "generateName", "namespace", "uid", "resourceVersion"}) {
    auto it = meta->find(key);
    if (it != meta->end() && !it->is_null() && !it->is_string()) {
      return cannot_unmarshal(*it, std::string("metadata.") + key, "string");
    }
  }
  for (const char* key : {"labels", "annotations"}) {
    auto it = meta->find(key);
    if (it == meta->end() || it->is_null()) continue;
    if (!it->is_object()) {
      return cannot_unmarshal(*it, std::string("metadata.") + key, "map[string]string");
    }
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string() && !v.is_null()) {
        return cannot_unmarshal(v, std::string("metadata.") + key, "string");
      }
    }
  }
  if (auto it = meta->find("finalizers"); it != meta->end() && !it->is_null()) {
    if (!it->is_array()) return cannot_unmarshal(*it, "metadata.finalizers", "[]string");
    for (const auto& v : *it) {
      if (!v.is_string()) return cannot_unmarshal(v, "metadata.finalizers", "string");
    }
  }
  return api::Ok{};
}

}  // namespace

api::Outcome check_type_meta(const nlohmann::json& object) {
  const std::string expected_api_version = std::string(kGroup) + "/" + kVersion;
  if (!object.is_object()) {
    return api::ApiError::bad_request("the body of the request must be a " + std::string(kKind) +
                                      " object");
  }
  std::string kind = object.contains("kind") && object["kind"].is_string()
                         ? object["kind"].get<std::string>() : "";
  std::string api_version = object.contains("apiVersion") && object["apiVersion"].is_string()
                                ? object["apiVersion"].get<std::string>() : "";
  if (kind.empty()) {
    return api::ApiError::bad_request("Object 'Kind' is missing in '" + api::dump_json(object) + "'");
  }
  if (api_version.empty()) {
    return api::ApiError::bad_request("Object 'apiVersion' is missing in '" + api::dump_json(object) + "'");
  }
  if (api_version != expected_api_version) {
    return api::ApiError::bad_request("the API version in the data (" + api_version +
                                      ") does not match the expected API version (" +
                                      expected_api_version + ")");
  }
  if (kind != kKind) {
    return api::ApiError::bad_request("the kind in the data (" + kind +
                                      ") does not match the expected kind (" + kKind + ")");
  }
  return check_metadata_types(object);
}

}  // namespace dpa::dataplaneservice
