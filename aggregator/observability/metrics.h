// The aggregator's own Prometheus metrics (prometheus-cpp core), served as text on /metrics.
// One Metrics object per process; every member is safe to update from any thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dpa::obs {

class Metrics {
 public:
  Metrics();

  // One finished HTTP request. verb: Kubernetes verb (get, list, watch, create, ...) or the HTTP
  // method for non-resource paths; resource: dataplaneservices, query, delegate, discovery, ...
  void observe_request(const std::string& verb, const std::string& resource, int code,
                       double seconds);
  void observe_store_operation(const std::string& operation, double seconds, bool ok);
  void observe_plugin_call(const std::string& plugin, const std::string& method, double seconds,
                           bool ok);
  void delegate_error(const std::string& reason);

  prometheus::Gauge& open_watches() { return *open_watches_; }
  prometheus::Gauge& open_connections() { return *open_connections_; }
  prometheus::Gauge& route_table_size() { return *route_table_size_; }
  prometheus::Gauge& watch_cache_watchers() { return *watch_cache_watchers_; }
  // etcd watch streams this replica has open (--storage-backend=etcd3): 1, however many clients
  // watch; 0 while it reconnects.
  prometheus::Gauge& etcd_watches() { return *etcd_watches_; }
  prometheus::Gauge& watch_cache_objects() { return *watch_cache_objects_; }
  prometheus::Gauge& stream_subscribers() { return *stream_subscribers_; }
  // Sets dataplane_aggregator_plugin_up{plugin} to 1/0.
  void set_plugin_up(const std::string& plugin, bool up);
  // dataplane_aggregator_dataplaneservice_available{name,replica}: one series per service, read
  // from `source` (this replica's view, name -> available) at each scrape. Built per scrape, not
  // kept as a gauge per object: nothing per object between scrapes (at 10,000 services a gauge
  // each costs 2.6 MB), and a deleted service leaves no series behind.
  using AvailabilitySource = std::function<std::vector<std::pair<std::string, bool>>()>;
  void set_availability_source(AvailabilitySource source);
  // This replica's identity (--replica-id): the `replica` label of the availability gauges, so
  // the views of several replicas can be told apart once scraped together.
  void set_replica(std::string replica);
  // dataplane_aggregator_leader{replica}: 1 while this replica writes Available conditions.
  void set_leader(bool leader);
  // Totals of the audit log: events written, events dropped (queue full, write errors).
  void set_audit_events(std::uint64_t written, std::uint64_t dropped);
  // Total of stream subscribers dropped for reading slower than their plugin stream produced.
  void set_slow_subscribers_dropped(std::uint64_t total);

  // Callbacks run just before each scrape, to refresh gauges from their owners.
  void on_scrape(std::function<void()> refresh);
  // The Prometheus text exposition (version 0.0.4) of everything.
  std::string serialize();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_seconds_;
  prometheus::Family<prometheus::Histogram>* store_seconds_;
  prometheus::Family<prometheus::Counter>* store_errors_;
  prometheus::Family<prometheus::Histogram>* plugin_seconds_;
  prometheus::Family<prometheus::Counter>* plugin_errors_;
  prometheus::Family<prometheus::Counter>* delegate_errors_;
  prometheus::Family<prometheus::Gauge>* plugin_up_;
  prometheus::Family<prometheus::Gauge>* leader_;
  std::string replica_;
  prometheus::Gauge* open_watches_;
  prometheus::Gauge* open_connections_;
  prometheus::Gauge* route_table_size_;
  prometheus::Gauge* watch_cache_watchers_;
  prometheus::Gauge* etcd_watches_;
  prometheus::Gauge* watch_cache_objects_;
  prometheus::Gauge* stream_subscribers_;
  prometheus::Gauge* build_info_;
  prometheus::Counter* panics_;
  prometheus::Family<prometheus::Counter>* audit_events_;
  prometheus::Counter* slow_subscribers_dropped_;
  std::mutex refresh_mutex_;
  std::vector<std::function<void()>> refreshers_;
  AvailabilitySource availability_;  // under refresh_mutex_
};

}  // namespace dpa::obs
