#include "aggregator/apimachinery/patch.h"

namespace dpa::api {
namespace {

ApiError patch_failed(const std::string& what) {
  ApiError e;
  e.code = 422;
  e.reason = "Invalid";
  e.message = what;
  return e;
}

}  // namespace

Expected<nlohmann::json> apply_merge_patch(const nlohmann::json& target, std::string_view patch) {
  auto p = nlohmann::json::parse(patch, nullptr, /*allow_exceptions=*/false);
  if (p.is_discarded()) {
    return ApiError::bad_request("error decoding patch: invalid JSON in merge patch");
  }
  if (!p.is_object()) {
    return ApiError::bad_request("error decoding patch: a merge patch must be a JSON object");
  }
  nlohmann::json result = target;
  result.merge_patch(p);
  return result;
}

Expected<nlohmann::json> apply_json_patch(const nlohmann::json& target, std::string_view patch) {
  auto p = nlohmann::json::parse(patch, nullptr, /*allow_exceptions=*/false);
  if (p.is_discarded() || !p.is_array()) {
    return ApiError::bad_request("error decoding patch: a JSON patch must be a JSON array");
  }
  for (const auto& op : p) {
    if (!op.is_object() || !op.contains("op") || !op["op"].is_string() || !op.contains("path") ||
        !op["path"].is_string()) {
      return ApiError::bad_request(
          "error decoding patch: every operation needs string \"op\" and \"path\" members");
    }
  }
  try {
    // One operation at a time, so each is checked against the document as the ones before left
    // it: nlohmann's "add" asserts (aborting the process) instead of throwing when the target's
    // parent is a string or number, as in {"op":"add","path":"/spec/pluginID/4"}.
    nlohmann::json result = target;
    for (const auto& op : p) {
      const std::string& name = op["op"].get_ref<const std::string&>();
      if (name == "add" || name == "copy" || name == "move") {
        const nlohmann::json::json_pointer path(op["path"].get<std::string>());
        if (!path.empty()) {
          const auto parent = path.parent_pointer();
          if (result.contains(parent) && !result.at(parent).is_structured()) {
            return patch_failed("the JSON patch could not be applied: " + name + " to path \"" +
                                path.to_string() + "\": its parent is not an object or array");
          }
        }
      }
      result = result.patch(nlohmann::json::array({op}));
    }
    return result;
  } catch (const nlohmann::json::out_of_range& e) {
    return patch_failed(std::string("the JSON patch could not be applied: ") + e.what());
  } catch (const nlohmann::json::parse_error& e) {
    return ApiError::bad_request(std::string("error decoding patch: ") + e.what());
  } catch (const nlohmann::json::exception& e) {
    return patch_failed(std::string("the JSON patch could not be applied: ") + e.what());
  }
}

}  // namespace dpa::api
