// JSON merge patch (RFC 7386) and JSON patch (RFC 6902) applied to a stored object, with errors
// mapped as kube-apiserver maps them: a patch that does not decode is 400 BadRequest, a patch that
// decodes but cannot be applied (missing path, failed test) is 422 Invalid.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <nlohmann/json.hpp>

#include <string_view>

namespace dpa::api {

Expected<nlohmann::json> apply_merge_patch(const nlohmann::json& target, std::string_view patch);
Expected<nlohmann::json> apply_json_patch(const nlohmann::json& target, std::string_view patch);

}  // namespace dpa::api
