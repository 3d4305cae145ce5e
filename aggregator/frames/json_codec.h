// Grafana's frame JSON (reference grafana-plugin-protocol.md §3.3): {"schema":{...},"data":{...}}
// with epoch-ms times plus `nanos`, NaN/Inf as null plus `entities`, and Go's exact number and
// string formatting. append_json is the fast path the query handler writes responses with.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "aggregator/apimachinery/status.h"
#include "aggregator/frames/frame.h"

namespace dpa::frames {

// The frame as Grafana serves it; keys in Grafana's order. Same content as append_json.
nlohmann::ordered_json to_json(const Frame& frame);

// Appends the compact JSON text of the frame to `out`, byte-for-byte as Grafana's Go SDK writes it.
// Strings that are not valid UTF-8 get U+FFFD; json.RawMessage cells that are empty, `null`,
// invalid JSON or nested deeper than 256 levels are written as null, so the output is always JSON.
void append_json(const Frame& frame, std::string& out);

// The inverse, for plugins that answer with JSON frames (DataResponse.format = JSON). Accepts the
// schema+data object (data optional). Malformed -> ApiError::bad_gateway("invalid JSON frame from
// plugin: ..."). The ordered_json overload keeps the key order of meta and config.
api::Expected<Frame> from_json(const nlohmann::json& j);
api::Expected<Frame> from_json(const nlohmann::ordered_json& j);

}  // namespace dpa::frames
