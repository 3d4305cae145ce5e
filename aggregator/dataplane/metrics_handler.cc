#include "aggregator/dataplane/metrics_handler.h"

namespace dpa::dataplane {

void handle_metrics(std::shared_ptr<const DataPlaneContext> context,
                    std::shared_ptr<http::Exchange> exchange, RouteMatch match) {
  auto timeout = request_timeout(*exchange, context->options.call_timeout,
                                 context->options.max_timeout);
  if (!timeout) return exchange->respond_error(timeout.error());
  auto target = resolve_target(*context, match);
  if (!target) return exchange->respond_error(target.error());
  pluginv2::CollectMetricsRequest request;
  *request.mutable_plugincontext() = std::move(target->plugin_context);
  target->client->collect_metrics(
      std::move(request), {*timeout, exchange->trace_context()},
      [exchange](api::Expected<pluginv2::CollectMetricsResponse> result) {
        http::Response response;
        response.status = 200;
        response.headers.emplace_back("Content-Type", kPrometheusTextType);
        if (result) {
          response.body = result->metrics().prometheus();
        } else if (result.error().code != 501) {
          return exchange->respond_error(result.error());
        }
        exchange->respond(std::move(response));
      });
}

}  // namespace dpa::dataplane
