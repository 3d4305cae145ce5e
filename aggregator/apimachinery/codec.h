// Request and response bodies: a request body is JSON or YAML (one document; YAML is decoded with
// JSON-compatible typing, so `port: 8080` is a number and `"8080"` a string), and a response can be
// written as YAML for `Accept: application/yaml`. Undecodable bodies are 400 BadRequest values.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::api {

// Decodes one JSON or YAML document. Empty, multi-document or malformed input: 400 BadRequest.
Expected<nlohmann::json> decode_body(std::string_view body);

// How decode_yaml types a plain (unquoted, untagged) scalar.
enum class YamlScalars {
  kJson,  // the YAML 1.2 core schema, as sigs.k8s.io/yaml: null, booleans, numbers, else strings
  // Null-like scalars (`~`, `null`, empty) are null; every other scalar is the string it spells
  // (`007`, `1.10` and `True` unchanged): for files whose fields are read as text.
  kText,
};
// The non-empty documents of a YAML stream, at most `max_documents` (reading stops there),
// decoded with libyaml's event parser under the limits of request bodies: nesting depth, an alias
// budget proportional to the input, string map keys without duplicates. Errors are 400
// BadRequest values saying what is wrong ("line 3: did not find expected key"), which the caller
// prefixes with what it was reading.
Expected<std::vector<nlohmann::json>> decode_yaml(std::string_view text, YamlScalars scalars,
                                                  std::size_t max_documents);

// Serialises JSON as block-style YAML; strings that would read back as another type are quoted.
std::string to_yaml(const nlohmann::json& value);
// to_yaml of `list` (an object) with its "items" made one at a time by `item(i)`, i < count, each
// emitted and let go: a list of 10,000 objects never holds every parsed object at once. `list`'s
// own "items" (present, so that it sorts among the keys) is not read.
std::string to_yaml_list(const nlohmann::json& list, std::size_t count,
                         const std::function<nlohmann::json(std::size_t)>& item);

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
