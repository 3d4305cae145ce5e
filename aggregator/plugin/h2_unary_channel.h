// gRPC unary calls over our own HTTP/2 connection (nghttp2 for framing and HPACK), run on the
// caller's io_context. The request is written and the reply read by the same I/O thread that
// serves the HTTP exchange, so a call costs no thread hand-off inside the aggregator. (The gRPC
// library's callback API completes on its own threads, which then have to wake the I/O thread
// again: bench/README.md "Where the query path's time goes".) Used for QueryData, the data plane's
// hot path; streams and the other unary calls keep the gRPC library's channel.
//
// One connection per target per io_context, multiplexing every call made from that context. A
// connection that fails, is closed by the plugin, or receives GOAWAY is replaced on the next call.
// Errors come back as gRPC statuses, exactly as the gRPC library would report them
// (UNAVAILABLE when the plugin cannot be reached or goes away, DEADLINE_EXCEEDED, RST_STREAM and
// HTTP status mapping per the gRPC-over-HTTP/2 spec, RESOURCE_EXHAUSTED "... larger than max ...").
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <grpcpp/support/status.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dpa::plugin {

// Where a gRPC target string ("unix:/path", "ipv4:1.2.3.4:5", "ipv6:[::1]:5", "dns:///host:5",
// "host:5") points. Empty path and host: not a target we can dial (the caller keeps gRPC's
// channel).
struct H2Target {
  std::string unix_path;  // unix socket
  std::string host;       // tcp: numeric address or a name to resolve
  std::string port;
  std::string authority;  // the :authority header
  bool valid() const { return !unix_path.empty() || !host.empty(); }
};
H2Target parse_h2_target(const std::string& target);

class H2UnaryChannel {
 public:
  // The serialized reply message when status is OK.
  using Done = std::function<void(grpc::Status status, std::string reply)>;

  H2UnaryChannel(H2Target target, std::size_t max_reply_bytes);
  // Shuts every connection's socket down (thread-safe, touches no io_context): their calls end
  // with UNAVAILABLE on their own threads.
  ~H2UnaryChannel();
  H2UnaryChannel(const H2UnaryChannel&) = delete;
  H2UnaryChannel& operator=(const H2UnaryChannel&) = delete;

  // Starts `method` ("/pluginv2.Data/QueryData") with the serialized `request` and the custom
  // `metadata` (lower-case keys, printable ASCII values) on the connection for `io`'s io_context. `done` runs exactly once, on that io_context, never inside this call.
  // A timeout <= 0 means no deadline. Connections are kept per io_context for the channel's
  // lifetime, so an io_context used here must outlive the channel.
  void call(const boost::asio::any_io_executor& io, std::string method, std::string request,
            std::vector<std::pair<std::string, std::string>> metadata,
            std::chrono::milliseconds timeout, Done done);

  std::size_t connection_count();  // live connections (tests)

  struct Connection;

 private:
  H2Target target_;
  std::size_t max_reply_bytes_;
  std::mutex mutex_;
  std::vector<std::pair<const void*, std::shared_ptr<Connection>>> connections_;  // by context
};

}  // namespace dpa::plugin
