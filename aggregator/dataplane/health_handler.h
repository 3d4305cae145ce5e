// GET /apis/{g}/{v}/namespaces/{ns}/datasources/{uid}/health -> Diagnostics.CheckHealth, answered
// like Grafana's datasource health API (reference grafana-plugin-protocol.md §1.5): body
// {"details"?, "message", "status"} (Go map order), 200 when OK, 400 otherwise; a plugin without
// a health handler (Unimplemented) is UNKNOWN "Health check not implemented" (400).
#pragma once

#include "aggregator/dataplane/context.h"

namespace dpa::dataplane {

// The HTTP answer for a CheckHealth result (502 when jsonDetails is not a JSON object).
http::Response health_response(const pluginv2::CheckHealthResponse& result);

void handle_health(std::shared_ptr<const DataPlaneContext> context,
                   std::shared_ptr<http::Exchange> exchange, RouteMatch match);

}  // namespace dpa::dataplane
