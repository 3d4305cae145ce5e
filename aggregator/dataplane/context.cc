// Target resolution order: datasource (client error, 404/400) before plugin state (server side,
// 503), so a typo in a uid is reported as such even while the plugin restarts.
#include "aggregator/dataplane/context.h"

#include "aggregator/dataplane/time_range.h"

#include <boost/asio/post.hpp>

namespace dpa::dataplane {

void DataPlaneContext::encode(std::function<void()> fn) const {
  if (encoder) return boost::asio::post(encoder, std::move(fn));
  fn();
}

const std::string& DataPlaneContext::user_agent() const {
  if (!options.user_agent.empty()) return options.user_agent;
  static const std::string kDefault = plugin::grafana_user_agent(DataPlaneOptions{}.grafana_version);
  return kDefault;
}

api::Expected<std::chrono::milliseconds> request_timeout(const http::Exchange& exchange,
                                                         std::chrono::milliseconds fallback,
                                                         std::chrono::milliseconds max) {
  if (!exchange.has_query_param("timeout")) return fallback;
  const std::string text = exchange.query_param("timeout");
  auto ns = parse_go_duration_ns(text);
  if (!ns || *ns <= 0) {
    return api::ApiError::bad_request("invalid timeout specified in the request URL: " + text);
  }
  auto ms = std::chrono::milliseconds(std::max<int64_t>(1, *ns / 1'000'000));
  return std::min(ms, max);
}

api::Expected<PluginTarget> resolve_plugin(const DataPlaneContext& context,
                                           const std::string& plugin_id,
                                           const plugin::Datasource* ds,
                                           std::shared_ptr<const plugin::DatasourceSet> snapshot,
                                           const plugin::RequestUser* user, const std::string& ns) {
  auto client = context.plugins.client(plugin_id);
  if (!client) {
    auto status = context.plugins.status(plugin_id);
    std::string message;
    switch (status.state) {
      case plugin::PluginState::kNotFound:
        message = "plugin " + plugin_id + " is not installed";
        break;
      case plugin::PluginState::kStarting:
        message = "plugin " + plugin_id + " is starting";
        break;
      default:
        message = "plugin " + plugin_id + " is unavailable";
        break;
    }
    if (!status.message.empty()) message += ": " + status.message;
    return api::ApiError::unavailable(message, 1);
  }
  auto info = context.plugins.info(plugin_id);
  if (!info) {
    plugin::PluginInfo minimal;
    minimal.id = plugin_id;
    minimal.type = "datasource";
    info = std::move(minimal);
  }
  PluginTarget target;
  target.client = std::move(client);
  target.plugin_context = plugin::build_plugin_context(*info, ds, user, ns,
                                                       context.options.grafana_config,
                                                       context.user_agent());
  target.snapshot = std::move(snapshot);
  target.datasource = ds;
  return target;
}

api::Expected<PluginTarget> resolve_target(const DataPlaneContext& context,
                                           const RouteMatch& match) {
  const auto& spec = match.service->spec;
  const auto& user = match.user;
  std::shared_ptr<const plugin::DatasourceSet> snapshot;
  const plugin::Datasource* ds = nullptr;
  if (!match.datasource_uid.empty()) {
    snapshot = context.datasources ? context.datasources() : nullptr;
    // Tenancy: a namespace sees its own org's datasources (default -> 1, org-<n> -> n).
    if (snapshot) {
      ds = snapshot->find(match.datasource_uid, plugin::org_id_from_namespace(match.namespace_name));
    }
    if (ds == nullptr) {
      auto error = api::ApiError::not_found("datasource \"" + match.datasource_uid + "\" not found");
      error.details = {{"name", match.datasource_uid}, {"kind", "datasources"}};
      return error;
    }
    if (ds->type != spec.plugin_id) return api::ApiError::bad_request("invalid datasource type");
  }
  return resolve_plugin(context, spec.plugin_id, ds, std::move(snapshot),
                        user ? &*user : nullptr, match.namespace_name);
}

}  // namespace dpa::dataplane
