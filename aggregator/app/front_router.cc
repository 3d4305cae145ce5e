#include "aggregator/app/front_router.h"

#include "aggregator/apimachinery/codec.h"
#include "aggregator/app/access_control.h"
#include "aggregator/app/datasource_exchange.h"
#include "aggregator/app/inflight_limits.h"
#include "aggregator/app/discovery.h"
#include "aggregator/controller/registration_controller.h"
#include "aggregator/dataplane/dispatcher.h"
#include "aggregator/dataplane/route_table.h"
#include "aggregator/dataplaneservice/rest_handler.h"
#include "aggregator/dataplaneservice/types.h"
#include "aggregator/delegate/delegate_proxy.h"
#include "aggregator/http/wire.h"
#include "aggregator/observability/metrics.h"

#include <set>

namespace dpa::app {
namespace {

using nlohmann::json;

constexpr std::chrono::seconds kDiscoveryFetchTimeout{5};  // kube-aggregator's discovery cap

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool is_health_path(std::string_view path) {
  for (std::string_view root : {"/healthz", "/livez", "/readyz"}) {
    if (path == root || (starts_with(path, root) && path[root.size()] == '/')) return true;
  }
  return false;
}

// Splits "/apis/<g>[/<v>[/...]]" into its segments after "apis".
std::vector<std::string_view> api_segments(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t pos = 1;
  while (pos <= path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (next > pos) out.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return out;
}

std::vector<GroupVersion> routed_group_versions(const dataplane::RouteTable& table) {
  std::vector<GroupVersion> out;
  for (const auto& service : table.services()) {
    out.push_back({service->spec.group, service->spec.version});
  }
  return out;
}

// The user as Grafana's plugins know it (DESIGN §6): login = user name; name, email and role
// from the extra keys of the same names.
plugin::RequestUser plugin_user(const auth::UserInfo& user) {
  plugin::RequestUser out;
  out.login = user.name;
  auto first = [&user](const char* key) {
    auto it = user.extra.find(key);
    return it == user.extra.end() || it->second.empty() ? std::string() : it->second.front();
  };
  out.name = first("name");
  out.email = first("email");
  out.role = first("role");
  return out;
}

}  // namespace

void FrontRouter::handle(std::shared_ptr<http::Exchange> exchange) {
  const std::string_view path = exchange->path();
  // Open to anyone, as kube-apiserver's system:public-info-viewer grants them.
  if (is_health_path(path)) return deps_.health.handle(*exchange);
  if (path == "/version") return serve_version(*exchange);
  deps_.access.check(exchange, [this, exchange](std::shared_ptr<const auth::UserInfo> user,
                                                 const auth::Attributes& attributes) {
    if (!deps_.limits.admit(*exchange, attributes)) return;
    route(exchange, std::move(user));
  });
}

void FrontRouter::route(std::shared_ptr<http::Exchange> exchange,
                        std::shared_ptr<const auth::UserInfo> user) {
  const std::string_view path = exchange->path();
  if (path == "/metrics") return serve_metrics(*exchange);
  if (path == "/apis" || path == "/apis/") return serve_discovery(std::move(exchange));
  if (path == "/openapi/v3" && deps_.delegate.configured()) {
    return serve_openapi_index(std::move(exchange));
  }
  // The legacy core group belongs to the delegate when there is one (kube-apiserver behind us).
  const bool core_group = path == "/api" || starts_with(path, "/api/");
  if (core_group && deps_.delegate.configured()) {
    return deps_.delegate.forward(std::move(exchange), std::move(user));
  }
  if (path == kDatasourceExchangePath) return deps_.exchange.serve(*exchange);
  if (deps_.api.serves(path)) return deps_.api.handle(std::move(exchange));

  if (starts_with(path, "/apis/")) {
    // Until the registration controller has synced, a data-plane path could be delegated by
    // mistake: answer 503 instead (kube-aggregator does the same before its paths are installed).
    if (!deps_.registration.ready()) {
      return exchange->respond_error(api::ApiError::unavailable(
          "the aggregator is starting: DataPlaneServices are not loaded yet", 1));
    }
    auto table = deps_.registration.table();
    auto match = table->match(exchange->header().method_string(), path);
    if (match) {
      if (!match->method_allowed) {
        auto error = api::ApiError::method_not_allowed(
            std::string(exchange->header().method_string()) + " is not supported on " +
            std::string(path));
        http::Response response = http::Response::error(error);
        response.headers.emplace_back("Allow", match->allow);
        return exchange->respond(std::move(response));
      }
      if (user) match->user = plugin_user(*user);
      return deps_.dataplane.handle(std::move(exchange), std::move(*match));
    }
    if (!deps_.delegate.configured() && serve_plugin_group_discovery(*exchange)) return;
  }
  deps_.delegate.forward(std::move(exchange), std::move(user));
}

void FrontRouter::serve_version(http::Exchange& exchange) {
  // Shaped like kube-apiserver's version.Info so `kubectl version` can print it.
  json info = {{"major", "1"},
               {"minor", "32"},
               {"gitVersion", "v1.32.0+dataplane-aggregator.0.1.0"},
               {"gitCommit", ""},
               {"gitTreeState", ""},
               {"buildDate", __DATE__},
               {"goVersion", ""},
               {"compiler", "g++"},
               {"platform", "linux"}};
  exchange.respond(http::Response::json(200, info.dump()));
}

void FrontRouter::serve_metrics(http::Exchange& exchange) {
  http::Response response;
  response.status = 200;
  response.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  response.body = deps_.metrics.serialize();
  exchange.respond(std::move(response));
}

void FrontRouter::serve_discovery(std::shared_ptr<http::Exchange> exchange) {
  std::string accept(exchange->header()["Accept"]);
  auto aggregated = aggregated_discovery_version(accept);
  auto plugins = routed_group_versions(*deps_.registration.table());

  auto respond = [exchange, aggregated, plugins](const json& delegate_doc, bool delegate_v2) {
    if (aggregated && (delegate_v2 || delegate_doc.is_null())) {
      // Plugin groups serve no Kubernetes resources; client-go's aggregated discovery reports a
      // version without resources as failed ("received empty response"), which makes every
      // kubectl command print an error. They are listed in legacy discovery only.
      json doc = merge_discovery_list(dataplaneservice::RestHandler::aggregated_discovery_group(),
                                      {}, delegate_doc, *aggregated);
      http::Response response = http::Response::json(200, api::dump_json(doc));
      response.headers = {{"Content-Type", aggregated_content_type(*aggregated)}, {"Vary", "Accept"}};
      return exchange->respond(std::move(response));
    }
    json doc = merge_group_list(dataplaneservice::RestHandler::api_group(), plugins,
                                delegate_v2 ? json(nullptr) : delegate_doc);
    exchange->respond(http::Response::json(200, api::dump_json(doc)));
  };

  if (!deps_.delegate.configured()) return respond(nullptr, false);
  deps_.delegate.fetch(
      "/apis", {{"Accept", accept.empty() ? std::string("application/json") : accept}},
      kDiscoveryFetchTimeout, [this, respond](api::Expected<http::Response> result) {
        if (!result.ok() || result->status != 200) {
          // A dead delegate must not take our own groups out of discovery (reference §4 A).
          deps_.metrics.delegate_error("discovery");
          return respond(nullptr, false);
        }
        std::string content_type;
        for (const auto& [name, value] : result->headers) {
          if (http::iequals(name, "Content-Type")) content_type = value;
        }
        json doc = json::parse(result->body, nullptr, false);
        if (doc.is_discarded()) return respond(nullptr, false);
        respond(doc, content_type.find("apidiscovery.k8s.io") != std::string::npos);
      });
}

void FrontRouter::serve_openapi_index(std::shared_ptr<http::Exchange> exchange) {
  // Our group/version is merged into the delegate's index instead of shadowing it (reference
  // §2.7: kubectl validates against whatever /openapi/v3 lists).
  deps_.delegate.fetch(
      "/openapi/v3", {{"Accept", "application/json"}}, kDiscoveryFetchTimeout,
      [exchange](api::Expected<http::Response> result) {
        json index = {{"paths", json::object()}};
        if (result.ok() && result->status == 200) {
          json doc = json::parse(result->body, nullptr, false);
          if (!doc.is_discarded() && doc.contains("paths") && doc["paths"].is_object()) index = doc;
        }
        // Held by name: items() of a temporary would iterate a destroyed object.
        const json ours = dataplaneservice::RestHandler::openapi_v3_index_paths();
        for (const auto& [key, value] : ours.items()) index["paths"][key] = value;
        exchange->respond(http::Response::json(200, api::dump_json(index)));
      });
}

bool FrontRouter::serve_plugin_group_discovery(http::Exchange& exchange) {
  auto segments = api_segments(exchange.path());
  if (segments.size() < 2 || segments.size() > 3 || segments[0] != "apis") return false;
  auto table = deps_.registration.table();
  if (segments.size() == 3) {
    if (!table->find(segments[1], segments[2])) return false;
    json doc = empty_resource_list({std::string(segments[1]), std::string(segments[2])});
    exchange.respond(http::Response::json(200, api::dump_json(doc)));
    return true;
  }
  std::vector<GroupVersion> plugins;
  for (const auto& gv : routed_group_versions(*table)) {
    if (gv.group == segments[1]) plugins.push_back(gv);
  }
  if (plugins.empty()) return false;
  json list = merge_group_list(nullptr, plugins, nullptr);
  json group = list["groups"][0];
  group["kind"] = "APIGroup";
  group["apiVersion"] = "v1";
  exchange.respond(http::Response::json(200, api::dump_json(group)));
  return true;
}

std::pair<std::string, std::string> FrontRouter::classify(std::string_view method,
                                                          std::string_view path,
                                                          std::string_view query) {
  // Label values come from a fixed set, never from the request: a client sending random methods
  // or paths must not grow /metrics without bound.
  std::string verb = "other";
  for (const char* known : {"get", "head", "post", "put", "patch", "delete", "options"}) {
    if (http::iequals(method, known)) verb = known;
  }
  if (is_health_path(path)) return {verb, "health"};
  if (path == "/metrics" || path == "/version") return {verb, std::string(path.substr(1))};
  if (starts_with(path, "/openapi")) return {verb, "openapi"};
  if (path == "/api" || path == "/apis" || path == "/apis/" || starts_with(path, "/api/")) {
    return {verb, "discovery"};
  }
  // Runs for every request (the metrics observer): the prefix is built once.
  static const std::string own = std::string("/apis/") + dataplaneservice::kGroup + "/" +
                                 dataplaneservice::kVersion + "/" + dataplaneservice::kResource;
  if (starts_with(path, own)) {
    std::string_view rest = path.substr(own.size());
    bool collection = rest.empty() || rest == "/";
    bool watch = query.find("watch=true") != std::string_view::npos ||
                 query.find("watch=1") != std::string_view::npos;
    std::string resource = rest.size() > 7 && rest.substr(rest.size() - 7) == "/status"
                               ? std::string(dataplaneservice::kResource) + "/status"
                               : std::string(dataplaneservice::kResource);
    if (watch) return {"watch", resource};
    if (verb == "get") return {collection ? "list" : "get", resource};
    if (verb == "post") return {"create", resource};
    if (verb == "put") return {"update", resource};
    if (verb == "delete") return {collection ? "deletecollection" : "delete", resource};
    return {verb, resource};
  }
  if (starts_with(path, "/apis/")) {
    auto segments = api_segments(path);
    if (segments.size() <= 3) return {verb, "discovery"};
    for (std::size_t i = 3; i + 1 < segments.size(); ++i) {
      if (segments[i] == "datasources" || segments[i] == "connections") {
        if (i + 2 < segments.size()) {
          std::string_view kind = segments[i + 2];
          if (kind == "resources") return {verb, "route"};
          if (kind == "proxy") return {verb, "datasource-proxy"};
          if (kind == "query" || kind == "health" || kind == "stream") {
            return {verb, std::string(kind)};
          }
          return {verb, "delegate"};
        }
      }
    }
    if (segments.size() >= 4 && segments[3] == "admission") return {verb, "admission"};
    if (segments.size() == 4 && (segments[3] == "conversion" || segments[3] == "metrics")) {
      return {verb, std::string(segments[3])};
    }
  }
  return {verb, "delegate"};
}

}  // namespace dpa::app
