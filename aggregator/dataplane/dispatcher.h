// DataPlane: the front router hands it a matched request and it runs the handler for that
// endpoint. It owns the DataPlaneContext the handlers share. Unary handlers are built in; the
// streaming ones (resources/routes, streams, datasource proxy) are installed with set_handler by
// whoever constructs them (app.cc), so this file does not depend on their internals.
#pragma once

#include "aggregator/dataplane/context.h"
#include "aggregator/dataplane/route_table.h"
#include "aggregator/http/exchange.h"

#include <array>
#include <mutex>
#include <string>
#include <unordered_map>
#include <functional>
#include <memory>

namespace dpa::dataplane {

class DataPlane {
 public:
  using EndpointHandler = std::function<void(std::shared_ptr<http::Exchange>, RouteMatch)>;

  // The PluginHost (inside context) must outlive the DataPlane and every request in flight.
  explicit DataPlane(DataPlaneContext context);

  // Installs (or replaces) the handler of an endpoint. Call before serving requests.
  void set_handler(Endpoint endpoint, EndpointHandler handler);

  // Answers 405 (with Allow) when the method does not fit, 501 when no handler is installed,
  // otherwise runs the endpoint's handler. Never blocks.
  void handle(std::shared_ptr<http::Exchange> exchange, RouteMatch match) const;

  // Shared with handlers that outlive a single call (captured in async callbacks).
  const std::shared_ptr<const DataPlaneContext>& context() const { return context_; }

 private:
  // Takes a slot of the request's datasource; false (and 429 answered) when none is free. The
  // slot is given back when the exchange completes.
  bool admit_datasource(http::Exchange& exchange, const RouteMatch& match) const;

  std::shared_ptr<const DataPlaneContext> context_;
  std::array<EndpointHandler, 10> handlers_;
  // In-flight requests per datasource ("group/namespace/uid"); shared with the completion
  // callbacks, which may run after the DataPlane is gone.
  struct Inflight {
    std::mutex mutex;
    std::unordered_map<std::string, std::size_t> count;
  };
  std::shared_ptr<Inflight> inflight_ = std::make_shared<Inflight>();
};

}  // namespace dpa::dataplane
