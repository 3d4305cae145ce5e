// `* .../datasources/{uid}/proxy/{path...}` (service type datasource-proxy): an HTTP reverse proxy
// to the datasource's own `url`, as Grafana's /api/datasources/proxy does, with the datasource's
// basic auth added and the caller's credentials removed. The response streams back as it comes.
#pragma once

#include "aggregator/dataplane/context.h"
#include "aggregator/dataplane/route_table.h"
#include "aggregator/http/client.h"
#include "aggregator/http/exchange.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dpa::dataplane {

// The upstream request for a proxied call: target = datasource url path + "/" + sub-path (still
// percent-encoded) + "?" + query; headers minus hop-by-hop, Host, Cookie and the caller's
// Authorization, plus X-Forwarded-For/-Proto/-Host and, when basicAuth is set,
// `Authorization: Basic base64(basicAuthUser:secureJsonData.basicAuthPassword)`.
// 400 when the datasource has no url, an unusable url, or the sub-path has "." / ".." segments
// (which would climb out of the datasource's base path).
api::Expected<std::pair<http::Endpoint, http::ClientRequest>> make_proxy_request(
    const http::Exchange& exchange, const RouteMatch& match, const plugin::Datasource& datasource,
    std::string body);

class ProxyHandler {
 public:
  // The client is shared with other users (pooled keep-alive connections per upstream).
  ProxyHandler(std::shared_ptr<const DataPlaneContext> context,
               std::shared_ptr<http::HttpClient> client);

  // Endpoint::kDatasourceProxy. 404 unknown datasource, 400 wrong type / no url, 413 body too
  // large, 502 upstream unreachable or broken, 504 upstream timeout. The plugin need not run.
  void handle(std::shared_ptr<http::Exchange> exchange, RouteMatch match) const;

 private:
  std::shared_ptr<const DataPlaneContext> context_;
  std::shared_ptr<http::HttpClient> client_;
};

}  // namespace dpa::dataplane
