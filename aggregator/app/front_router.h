// The front router (DESIGN §4): decides, per request, between the aggregator's own endpoints
// (health, version, metrics, discovery, the DataPlaneService API), the data-plane route table and
// the delegate. Reads the route table as a snapshot; holds no lock across I/O.
#pragma once

#include "aggregator/app/health.h"
#include "aggregator/http/exchange.h"

#include <functional>
#include <memory>
#include <string>

namespace dpa::auth {
struct UserInfo;
}
namespace dpa::controller {
class RegistrationController;
}
namespace dpa::dataplane {
class DataPlane;
}
namespace dpa::dataplaneservice {
class RestHandler;
}
namespace dpa::delegate {
class DelegateProxy;
}
namespace dpa::obs {
class Metrics;
}

namespace dpa::app {

class AccessControl;
class DatasourceExchange;
class InflightLimits;

struct FrontRouterDeps {
  HealthChecks& health;
  obs::Metrics& metrics;
  dataplaneservice::RestHandler& api;
  controller::RegistrationController& registration;
  dataplane::DataPlane& dataplane;
  delegate::DelegateProxy& delegate;
  // Authenticates and authorizes every request but the open ones (health, version).
  const AccessControl& access;
  // Admits what has been authorized, or answers 429 (DESIGN §8).
  InflightLimits& limits;
  const DatasourceExchange& exchange;
};

class FrontRouter {
 public:
  explicit FrontRouter(FrontRouterDeps deps) : deps_(deps) {}

  void handle(std::shared_ptr<http::Exchange> exchange);

  // (verb, resource) labels of a request for the request metrics: Kubernetes verbs for the
  // DataPlaneService API, the service type for data-plane paths, "delegate" for the rest.
  static std::pair<std::string, std::string> classify(std::string_view method,
                                                      std::string_view path,
                                                      std::string_view query);

 private:
  // Where an admitted request goes; `user` is who it acts as.
  void route(std::shared_ptr<http::Exchange> exchange, std::shared_ptr<const auth::UserInfo> user);
  void serve_discovery(std::shared_ptr<http::Exchange> exchange);
  void serve_openapi_index(std::shared_ptr<http::Exchange> exchange);
  void serve_version(http::Exchange& exchange);
  void serve_metrics(http::Exchange& exchange);
  // Plugin group discovery (/apis/<g> and /apis/<g>/<v>) when the delegate cannot answer it.
  bool serve_plugin_group_discovery(http::Exchange& exchange);

  FrontRouterDeps deps_;
};

}  // namespace dpa::app
