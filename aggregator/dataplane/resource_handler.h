// `* .../datasources/{uid}/resources/{path...}` and route services -> Resource.CallResource, the
// plugin's reply streamed back chunk by chunk (reference grafana-plugin-protocol.md §1.3): status
// and headers from the first message, every message's body written and flushed as it arrives.
// Also the header-forwarding rules the streaming handlers share.
#pragma once

#include "aggregator/dataplane/context.h"
#include "aggregator/dataplane/route_table.h"
#include "aggregator/http/exchange.h"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dpa::dataplane {

// Go's http.CanonicalHeaderKey ("content-type" -> "Content-Type"): Go plugins index headers so.
std::string canonical_header_name(std::string_view name);
// RFC 9110 §7.6.1: hop-by-hop headers (Connection, Keep-Alive, Proxy-*, TE, Trailer,
// Transfer-Encoding, Upgrade) and every header the request's Connection header names.
bool is_hop_by_hop(std::string_view name, const http::Header& request);

// The request headers a plugin may see, with Go-canonical names, in request order: hop-by-hop
// and Host dropped; Cookie kept only for the cookie names the datasource's jsonData.keepCookies
// lists (Grafana's rule); Authorization only when the datasource passes OAuth tokens through
// (jsonData.oauthPassThru).
std::vector<std::pair<std::string, std::string>> forwardable_headers(
    const http::Exchange& exchange, const plugin::Datasource* datasource);

// CallResourceRequest of §1.3: path after resources/ (decoded, no leading slash), method, url
// (raw path + ?query), forwardable headers, body.
pluginv2::CallResourceRequest make_call_resource_request(const http::Exchange& exchange,
                                                         const RouteMatch& match,
                                                         const PluginTarget& target,
                                                         std::string body);

class ResourceHandler {
 public:
  // Over this many bytes queued for a client that does not read, the call is cancelled.
  static constexpr std::size_t kMaxPendingBytes = 64u << 20;

  explicit ResourceHandler(std::shared_ptr<const DataPlaneContext> context);

  // Endpoint::kResource and Endpoint::kRoute. Errors: 413 body too large, 404 unknown datasource
  // or the plugin has no resource handler (gRPC Unimplemented), 503 plugin unavailable, 502
  // "received empty resource response" (no message) or plugin failure, 504 deadline.
  void handle(std::shared_ptr<http::Exchange> exchange, RouteMatch match) const;

 private:
  std::shared_ptr<const DataPlaneContext> context_;
};

}  // namespace dpa::dataplane
