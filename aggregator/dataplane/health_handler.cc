#include "aggregator/dataplane/health_handler.h"

#include "aggregator/dataplane/query_handler.h"

namespace dpa::dataplane {
namespace {

const char* status_name(pluginv2::CheckHealthResponse::HealthStatus status) {
  switch (status) {
    case pluginv2::CheckHealthResponse::OK: return "OK";
    case pluginv2::CheckHealthResponse::ERROR: return "ERROR";
    default: return "UNKNOWN";
  }
}

}  // namespace

http::Response health_response(const pluginv2::CheckHealthResponse& result) {
  // Keys in Go's map order (Grafana builds the payload as a map): details, message, status.
  std::string body = "{";
  if (!result.jsondetails().empty()) {
    auto details = decode_first_json_value(result.jsondetails());
    if (!details || !(details->is_object() || details->is_null())) {
      return http::Response::error(api::ApiError::bad_gateway(
          "failed to unmarshal detailed response from backend plugin"));
    }
    body += "\"details\":";
    // Go's encoder escapes <, >, & (they only occur inside strings in JSON text).
    for (char c : details->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) {
      if (c == '<') body += "\\u003c";
      else if (c == '>') body += "\\u003e";
      else if (c == '&') body += "\\u0026";
      else body.push_back(c);
    }
    body += ",";
  }
  body += "\"message\":";
  append_go_string(body, result.message());
  body += ",\"status\":";
  append_go_string(body, status_name(result.status()));
  body += "}";
  return http::Response::json(result.status() == pluginv2::CheckHealthResponse::OK ? 200 : 400,
                              std::move(body));
}

void handle_health(std::shared_ptr<const DataPlaneContext> context,
                   std::shared_ptr<http::Exchange> exchange, RouteMatch match) {
  auto timeout = request_timeout(*exchange, context->options.call_timeout,
                                 context->options.max_timeout);
  if (!timeout) return exchange->respond_error(timeout.error());
  auto target = resolve_target(*context, match);
  if (!target) return exchange->respond_error(target.error());
  pluginv2::CheckHealthRequest request;
  *request.mutable_plugincontext() = std::move(target->plugin_context);
  target->client->check_health(
      std::move(request), {*timeout, exchange->trace_context()},
      [exchange](api::Expected<pluginv2::CheckHealthResponse> result) {
        if (!result) {
          if (result.error().code == 501) {
            pluginv2::CheckHealthResponse unknown;
            unknown.set_status(pluginv2::CheckHealthResponse::UNKNOWN);
            unknown.set_message("Health check not implemented");
            return exchange->respond(health_response(unknown));
          }
          return exchange->respond_error(result.error());
        }
        exchange->respond(health_response(*result));
      });
}

}  // namespace dpa::dataplane
