#include "aggregator/dataplane/dispatcher.h"

#include "aggregator/dataplane/admission_handler.h"
#include "aggregator/dataplane/conversion_handler.h"
#include "aggregator/dataplane/health_handler.h"
#include "aggregator/dataplane/metrics_handler.h"
#include "aggregator/dataplane/query_handler.h"
#include "aggregator/dataplane/resource_handler.h"
#include "aggregator/http/wire.h"
#include "aggregator/frames/utf8.h"

namespace dpa::dataplane {
namespace {

bool path_is_utf8(const http::Exchange& exchange, const RouteMatch& match) {
  using frames::is_valid_utf8;
  if (!is_valid_utf8(exchange.path()) || !is_valid_utf8(exchange.query())) return false;
  if (!is_valid_utf8(match.namespace_name) || !is_valid_utf8(match.datasource_uid)) return false;
  if (!is_valid_utf8(http::percent_decode(match.sub_path))) return false;
  for (const auto& [name, value] : match.path_params) {
    if (!is_valid_utf8(value)) return false;
  }
  return true;
}

}  // namespace

DataPlane::DataPlane(DataPlaneContext context)
    : context_(std::make_shared<const DataPlaneContext>(std::move(context))) {
  auto ctx = context_;
  set_handler(Endpoint::kQuery, [ctx](auto exchange, RouteMatch match) {
    handle_query(ctx, std::move(exchange), std::move(match));
  });
  set_handler(Endpoint::kHealth, [ctx](auto exchange, RouteMatch match) {
    handle_health(ctx, std::move(exchange), std::move(match));
  });
  set_handler(Endpoint::kMetrics, [ctx](auto exchange, RouteMatch match) {
    handle_metrics(ctx, std::move(exchange), std::move(match));
  });
  set_handler(Endpoint::kAdmissionValidate, [ctx](auto exchange, RouteMatch match) {
    handle_admission(ctx, std::move(exchange), std::move(match), AdmissionKind::kValidate);
  });
  set_handler(Endpoint::kAdmissionMutate, [ctx](auto exchange, RouteMatch match) {
    handle_admission(ctx, std::move(exchange), std::move(match), AdmissionKind::kMutate);
  });
  set_handler(Endpoint::kConversion, [ctx](auto exchange, RouteMatch match) {
    handle_conversion(ctx, std::move(exchange), std::move(match));
  });
}

void DataPlane::set_handler(Endpoint endpoint, EndpointHandler handler) {
  handlers_.at(static_cast<std::size_t>(endpoint)) = std::move(handler);
}

void DataPlane::handle(std::shared_ptr<http::Exchange> exchange, RouteMatch match) const {
  if (!match.method_allowed) {
    auto response = http::Response::error(api::ApiError::method_not_allowed(
        "the server does not allow this method on the requested resource"));
    if (!match.allow.empty()) response.headers.emplace_back("Allow", match.allow);
    return exchange->respond(std::move(response));
  }
  if (!path_is_utf8(*exchange, match)) {
    // Path values travel in protobuf string fields, which must hold UTF-8 (Go plugins refuse
    // anything else): the request is bad, not the plugin.
    return exchange->respond_error(
        api::ApiError::bad_request("the request path or query is not valid UTF-8"));
  }
  if (!admit_datasource(*exchange, match)) return;
  const auto& handler = handlers_.at(static_cast<std::size_t>(match.endpoint));
  if (!handler) {
    api::ApiError error;
    error.code = 501;
    error.reason = "NotImplemented";
    error.message = std::string("the ") + endpoint_name(match.endpoint) +
                    " service is not available in this server";
    return exchange->respond_error(error);
  }
  handler(std::move(exchange), std::move(match));
}

bool DataPlane::admit_datasource(http::Exchange& exchange, const RouteMatch& match) const {
  const std::size_t limit = context_->options.max_datasource_inflight;
  if (limit == 0 || match.datasource_uid.empty()) return true;
  // A subscription lasts as long as its client likes: it holds a connection, not a slot.
  if (match.endpoint == Endpoint::kStream && exchange.header().method() == boost::beast::http::verb::get) {
    return true;
  }
  std::string key = match.service->spec.group + "/" + match.namespace_name + "/" + match.datasource_uid;
  {
    std::lock_guard<std::mutex> lock(inflight_->mutex);
    std::size_t& used = inflight_->count[key];
    if (used >= limit) {
      exchange.respond_error(api::ApiError::too_many_requests(
          "Too many requests to datasource \"" + match.datasource_uid + "\", please try again later.",
          1));
      return false;
    }
    ++used;
  }
  exchange.on_complete([inflight = inflight_, key = std::move(key)](int) {
    std::lock_guard<std::mutex> lock(inflight->mutex);
    auto it = inflight->count.find(key);
    if (it != inflight->count.end() && --it->second == 0) inflight->count.erase(it);
  });
  return true;
}

}  // namespace dpa::dataplane
