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

}  // namespace dpa::api
