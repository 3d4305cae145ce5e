#include "aggregator/observability/metrics.h"

#include "aggregator/observability/containment.h"

#include <prometheus/text_serializer.h>

namespace dpa::obs {
namespace {

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  // 50 us .. 60 s: the data plane answers in microseconds, a slow plugin in tens of seconds.
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  return buckets;
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("dataplane_aggregator_requests_total")
                   .Help("HTTP requests served, by Kubernetes verb, resource and HTTP code.")
                   .Register(*registry_);
  request_seconds_ = &prometheus::BuildHistogram()
                          .Name("dataplane_aggregator_request_duration_seconds")
                          .Help("HTTP request latency (for streams: time to the end of the stream).")
                          .Register(*registry_);
  store_seconds_ = &prometheus::BuildHistogram()
                        .Name("dataplane_aggregator_store_operation_duration_seconds")
                        .Help("Latency of store operations (writes include the fsync).")
                        .Register(*registry_);
  store_errors_ = &prometheus::BuildCounter()
                       .Name("dataplane_aggregator_store_operation_errors_total")
                       .Help("Store operations that returned an error (conflicts included).")
                       .Register(*registry_);
  plugin_seconds_ = &prometheus::BuildHistogram()
                         .Name("dataplane_aggregator_plugin_call_duration_seconds")
                         .Help("Latency of gRPC calls to backend plugins.")
                         .Register(*registry_);
  plugin_errors_ = &prometheus::BuildCounter()
                        .Name("dataplane_aggregator_plugin_call_errors_total")
                        .Help("gRPC calls to backend plugins that failed.")
                        .Register(*registry_);
  delegate_errors_ = &prometheus::BuildCounter()
                          .Name("dataplane_aggregator_delegate_errors_total")
                          .Help("Requests the delegate API server could not answer, by reason.")
                          .Register(*registry_);
  plugin_up_ = &prometheus::BuildGauge()
                    .Name("dataplane_aggregator_plugin_up")
                    .Help("1 when the backend plugin process is running and connected.")
                    .Register(*registry_);
  leader_ = &prometheus::BuildGauge()
                 .Name("dataplane_aggregator_leader")
                 .Help("1 while this replica holds the etcd leader lease and alone writes the "
                       "Available conditions (--storage-backend=etcd3).")
                 .Register(*registry_);
  open_watches_ = &prometheus::BuildGauge()
                       .Name("dataplane_aggregator_open_watches")
                       .Help("Watches open on the store: the watch cache's, the registration "
                             "controller's, and one per API watch catching up from disk.")
                       .Register(*registry_)
                       .Add({});
  open_connections_ = &prometheus::BuildGauge()
                           .Name("dataplane_aggregator_open_connections")
                           .Help("Client connections currently open.")
                           .Register(*registry_)
                           .Add({});
  etcd_watches_ = &prometheus::BuildGauge()
                       .Name("dataplane_aggregator_etcd_watches")
                       .Help("etcd watch streams open (--storage-backend=etcd3): one per "
                             "replica, however many clients watch.")
                       .Register(*registry_)
                       .Add({});
  watch_cache_watchers_ = &prometheus::BuildGauge()
                              .Name("dataplane_aggregator_watch_cache_watchers")
                              .Help("API watches open, all served by the watch cache.")
                              .Register(*registry_)
                              .Add({});
  watch_cache_objects_ = &prometheus::BuildGauge()
                             .Name("dataplane_aggregator_watch_cache_objects")
                             .Help("Objects held by the watch cache.")
                             .Register(*registry_)
                             .Add({});
  route_table_size_ = &prometheus::BuildGauge()
                           .Name("dataplane_aggregator_route_table_size")
                           .Help("DataPlaneServices in the current route table.")
                           .Register(*registry_)
                           .Add({});
  stream_subscribers_ = &prometheus::BuildGauge()
                             .Name("dataplane_aggregator_stream_subscribers")
                             .Help("Clients subscribed to plugin streams.")
                             .Register(*registry_)
                             .Add({});
  build_info_ = &prometheus::BuildGauge()
                     .Name("dataplane_aggregator_build_info")
                     .Help("Always 1; the version is a label.")
                     .Register(*registry_)
                     .Add({{"version", "0.1.0"}});
  build_info_->Set(1);
  panics_ = &prometheus::BuildCounter()
                 .Name("dataplane_aggregator_handler_panics_total")
                 .Help("Exceptions that escaped a handler or callback and were contained.")
                 .Register(*registry_)
                 .Add({});
  audit_events_ = &prometheus::BuildCounter()
                       .Name("dataplane_aggregator_audit_events_total")
                       .Help("Audit events, by result: written, or dropped (queue full, disk error).")
                       .Register(*registry_);
  slow_subscribers_dropped_ =
      &prometheus::BuildCounter()
           .Name("dataplane_aggregator_stream_slow_subscribers_dropped_total")
           .Help("Stream subscribers disconnected because they read slower than their stream "
                 "produced (more than the pending limit queued).")
           .Register(*registry_)
           .Add({});
}

void Metrics::observe_request(const std::string& verb, const std::string& resource, int code,
                              double seconds) {
  requests_->Add({{"verb", verb}, {"resource", resource}, {"code", std::to_string(code)}})
      .Increment();
  request_seconds_->Add({{"verb", verb}, {"resource", resource}}, latency_buckets())
      .Observe(seconds);
}

void Metrics::observe_store_operation(const std::string& operation, double seconds, bool ok) {
  store_seconds_->Add({{"operation", operation}}, latency_buckets()).Observe(seconds);
  if (!ok) store_errors_->Add({{"operation", operation}}).Increment();
}

void Metrics::observe_plugin_call(const std::string& plugin, const std::string& method,
                                  double seconds, bool ok) {
  plugin_seconds_->Add({{"plugin", plugin}, {"method", method}}, latency_buckets())
      .Observe(seconds);
  if (!ok) plugin_errors_->Add({{"plugin", plugin}, {"method", method}}).Increment();
}

void Metrics::delegate_error(const std::string& reason) {
  delegate_errors_->Add({{"reason", reason}}).Increment();
}

void Metrics::set_plugin_up(const std::string& plugin, bool up) {
  plugin_up_->Add({{"plugin", plugin}}).Set(up ? 1 : 0);
}

void Metrics::set_availability_source(AvailabilitySource source) {
  std::lock_guard<std::mutex> lock(refresh_mutex_);
  availability_ = std::move(source);
}

void Metrics::set_replica(std::string replica) { replica_ = std::move(replica); }

void Metrics::set_leader(bool leader) { leader_->Add({{"replica", replica_}}).Set(leader ? 1 : 0); }

void Metrics::set_audit_events(std::uint64_t written, std::uint64_t dropped) {
  // Counters only go up: advance each to the log's own total.
  for (auto [result, total] : {std::pair{"written", written}, std::pair{"dropped", dropped}}) {
    auto& counter = audit_events_->Add({{"result", result}});
    const double value = static_cast<double>(total);
    if (value > counter.Value()) counter.Increment(value - counter.Value());
  }
}

void Metrics::set_slow_subscribers_dropped(std::uint64_t total) {
  const double value = static_cast<double>(total);
  auto& counter = *slow_subscribers_dropped_;
  if (value > counter.Value()) counter.Increment(value - counter.Value());
}

void Metrics::on_scrape(std::function<void()> refresh) {
  std::lock_guard<std::mutex> lock(refresh_mutex_);
  refreshers_.push_back(std::move(refresh));
}

std::string Metrics::serialize() {
  prometheus::MetricFamily available{"dataplane_aggregator_dataplaneservice_available",
                                     "1 when the DataPlaneService's Available condition is True.",
                                     prometheus::MetricType::Gauge,
                                     {}};
  {
    std::lock_guard<std::mutex> lock(refresh_mutex_);
    for (auto& refresh : refreshers_) refresh();
    double escaped = static_cast<double>(escaped_exceptions());
    if (escaped > panics_->Value()) panics_->Increment(escaped - panics_->Value());
    if (availability_) {
      for (auto& [name, up] : availability_()) {
        prometheus::ClientMetric metric;
        metric.label = {{"name", std::move(name)}, {"replica", replica_}};
        metric.gauge.value = up ? 1 : 0;
        available.metric.push_back(std::move(metric));
      }
    }
  }
  auto families = registry_->Collect();
  // Absent until there is a source, as a gauge family without series is left out.
  if (!available.metric.empty()) families.push_back(std::move(available));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace dpa::obs
