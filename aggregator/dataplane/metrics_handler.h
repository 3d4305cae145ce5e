// GET /apis/{g}/{v}/metrics -> Diagnostics.CollectMetrics: the plugin's Prometheus text exposition
// served as `text/plain; version=0.0.4`. A plugin without metrics (Unimplemented) gives an empty
// 200, as Grafana treats it as "no metrics".
#pragma once

#include "aggregator/dataplane/context.h"

namespace dpa::dataplane {

inline constexpr const char* kPrometheusTextType = "text/plain; version=0.0.4; charset=utf-8";

void handle_metrics(std::shared_ptr<const DataPlaneContext> context,
                    std::shared_ptr<http::Exchange> exchange, RouteMatch match);

}  // namespace dpa::dataplane
