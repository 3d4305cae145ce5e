// Request and response bodies: a request body is JSON or YAML (one document; YAML is decoded with
// JSON-compatible typing, so `port: 8080` is a number and `"8080"` a string), and a response can be
// written as YAML for `Accept: application/yaml`. Undecodable bodies are 400 BadRequest values.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace dpa::api {

// Decodes one JSON or YAML document. Empty, multi-document or malformed input: 400 BadRequest.
Expected<nlohmann::json> decode_body(std::string_view body);
// Serialises JSON as block-style YAML; strings that would read back as another type are quoted.
std::string to_yaml(const nlohmann::json& value);

// object[key] when `object` is an object holding a string there, else `fallback`. The safe
// counterpart of nlohmann's value(key, default), which throws on a value of another type: for
// anything that came from outside (request bodies, stored objects, plugin and delegate replies).
std::string string_field(const nlohmann::json& object, std::string_view key,
                         std::string_view fallback = {});

// Serialises JSON for output. Text from outside (a URL path, a header, a plugin's reply) may hold
// invalid UTF-8, on which nlohmann's plain dump() throws: here such bytes become U+FFFD instead.
template <class Json>
std::string dump_json(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace dpa::api
