// POST /apis/{g}/{v}/namespaces/{ns}/datasources/{uid}/query -> Data.QueryData. Request and
// response bodies are Grafana's (reference grafana-aggregator-behaviour.md §3); the HTTP codes are
// ours: 400 bad body/reference, 404 unknown datasource, 503 plugin down, 502 plugin failure or bad
// frames, 504 deadline. Per-refId errors stay inside a 200 response, as the Grafana aggregator
// does (§3.3 step 8): the request succeeded and the caller gets every refId's partial result.
#pragma once

#include "aggregator/dataplane/context.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::dataplane {

struct DatasourceRef {
  std::string type;
  std::string uid;
  std::string api_version;
};

struct ParsedQueryRequest {
  std::vector<pluginv2::DataQuery> queries;   // ready for QueryDataRequest.queries
  std::optional<DatasourceRef> reference;     // the first query's datasource
};

// Decodes a QueryDataRequest body and converts it to plugin queries (SDK ToDataSourceQueries):
// time ranges, defaults, DataQuery.json. 400 on malformed JSON, wrong field types, or queries
// that disagree with the first one's datasource ("expect same datasource types"/"... UID").
api::Expected<ParsedQueryRequest> parse_query_request(std::string_view body, int64_t now_ms);

// Reference checks in Grafana's order: missing, type != pluginID, uid != path uid (400 each).
api::Outcome check_reference(const ParsedQueryRequest& request, const std::string& plugin_id,
                             const std::string& path_uid);

// {"results":{...}} with sorted refIds, 2-space indented, no trailing newline (§3.5). Arrow frames
// are decoded and re-encoded as frame JSON; JSON-format frames pass through. 502 on bad frames.
api::Expected<std::string> encode_query_response(const pluginv2::QueryDataResponse& response);

void handle_query(std::shared_ptr<const DataPlaneContext> context,
                  std::shared_ptr<http::Exchange> exchange, RouteMatch match);

// Go's json.Indent with prefix "" and indent "  " applied to compact JSON text (what Kubernetes'
// indented writer does after Marshal): empty objects/arrays stay `{}`/`[]`, numbers keep their text.
std::string indent_json(std::string_view compact);

// Appends `s` as a JSON string the way Go's encoding/json writes it (HTML-safe escaping, U+2028/9
// escaped, invalid UTF-8 replaced by U+FFFD).
void append_go_string(std::string& out, std::string_view s);

// Parses the first JSON value of `body` (trailing bytes ignored, like Go's json.Decoder).
api::Expected<nlohmann::json> decode_first_json_value(std::string_view body);

}  // namespace dpa::dataplane
