// What every data-plane handler needs, shared by the unary handlers (helper "dataplane") and the
// streaming ones (helper "dataplane-streams"): the plugin host, the datasource snapshot, timeouts
// and limits, and the one place a RouteMatch becomes a plugin client plus a PluginContext.
#pragma once

#include "aggregator/dataplane/route_table.h"
#include "aggregator/http/exchange.h"
#include "aggregator/plugin/datasources.h"
#include "aggregator/plugin/plugin_client.h"

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace dpa::dataplane {

inline constexpr std::size_t kDefaultMaxBodyBytes = 16u << 20;  // 16 MiB, then 413

struct DataPlaneOptions {
  std::chrono::milliseconds query_timeout{60000};  // QueryData unless ?timeout= says otherwise
  std::chrono::milliseconds max_timeout{300000};   // ?timeout= is capped here
  // CheckHealth, CollectMetrics, admission, conversion, SubscribeStream/PublishStream.
  std::chrono::milliseconds call_timeout{30000};
  std::chrono::milliseconds resource_timeout{60000};  // CallResource (whole streamed call)
  std::size_t max_body_bytes = kDefaultMaxBodyBytes;
  std::string grafana_version = "12.0.0";
  std::string user_agent;  // empty: plugin::grafana_user_agent(grafana_version)
  std::map<std::string, std::string> grafana_config;  // PluginContext.grafanaConfig
  // Requests to one datasource served at once (stream subscriptions not counted); past it 429,
  // so one slow datasource never takes every slot. 0: no limit.
  std::size_t max_datasource_inflight = 64;
};

using DatasourceSnapshotFn = std::function<std::shared_ptr<const plugin::DatasourceSet>()>;

struct DataPlaneContext {
  plugin::PluginHost& plugins;
  DatasourceSnapshotFn datasources;  // may return nullptr (no provisioning): no datasources
  DataPlaneOptions options;
  // Where a large QueryData reply is encoded (milliseconds of CPU), so that the I/O thread that
  // received it keeps serving its other connections. Empty: encoded on the I/O thread.
  boost::asio::any_io_executor encoder;

  const std::string& user_agent() const;
  // Runs fn on the encoder (inline when there is none): for work sized by a plugin's reply that
  // arrives on a gRPC or I/O thread (admission diffs, conversion re-encoding).
  void encode(std::function<void()> fn) const;
};

// A plugin call target: the running plugin's client and the PluginContext for this request.
struct PluginTarget {
  std::shared_ptr<plugin::PluginClient> client;
  pluginv2::PluginContext plugin_context;
  std::shared_ptr<const plugin::DatasourceSet> snapshot;  // keeps `datasource` alive
  const plugin::Datasource* datasource = nullptr;         // null for plugin-level calls
};

// For a match that names a datasource ({uid}): the datasource must exist (404 NotFound) and be of
// the DataPlaneService's pluginID type (400 "invalid datasource type"); then the plugin must be
// running (503 ServiceUnavailable otherwise). Cluster-level matches get a plugin-level context
// (no datasource; an app plugin gets appInstanceSettings). The request user is match.user.
api::Expected<PluginTarget> resolve_target(const DataPlaneContext& context,
                                           const RouteMatch& match);
// Same, for callers without a request (availability controller): ds may be null.
api::Expected<PluginTarget> resolve_plugin(const DataPlaneContext& context,
                                           const std::string& plugin_id,
                                           const plugin::Datasource* ds,
                                           std::shared_ptr<const plugin::DatasourceSet> snapshot,
                                           const plugin::RequestUser* user, const std::string& ns);

// ?timeout= (a Go duration, as Kubernetes accepts it), capped at max; absent -> fallback.
// Invalid -> 400 BadRequest.
api::Expected<std::chrono::milliseconds> request_timeout(const http::Exchange& exchange,
                                                         std::chrono::milliseconds fallback,
                                                         std::chrono::milliseconds max);

}  // namespace dpa::dataplane
