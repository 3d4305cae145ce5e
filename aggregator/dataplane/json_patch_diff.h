// RFC 6902 JSON Patch between two JSON documents, for admission mutation responses (reference
// grafana-aggregator-behaviour.md §4.2): the API server applies it to the object it sent, so it
// must turn `from` into exactly `to`. Operations use add/remove/replace only.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace dpa::dataplane {

// The operations, each {"op","path"[,"value"]}, in a deterministic order. Equal documents give [].
nlohmann::ordered_json json_patch_diff(const nlohmann::json& from, const nlohmann::json& to);

// RFC 6901 escaping of one reference token ("~" -> "~0", "/" -> "~1").
std::string json_pointer_escape(const std::string& token);

}  // namespace dpa::dataplane
