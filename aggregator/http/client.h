// A pooled asynchronous HTTP/1.1 client (plain and TLS) for the delegate proxy, the datasource
// proxy and discovery fetches. Keep-alive connections are pooled per scheme://host:port; a call
// runs entirely on the caller's executor (normally the server session's strand), so proxying
// never hops threads. Request and response bodies both stream, with backpressure.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/http/exchange.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dpa::http {

// Where requests go: "http://host:port/base" or "https://...". IPv6 literals in brackets.
struct Endpoint {
  std::string scheme = "http";
  std::string host;  // name or IP literal, without brackets
  std::uint16_t port = 80;
  std::string base_path;  // URL path without a trailing '/', prefixed to every target

  bool tls() const { return scheme == "https"; }
  std::string host_header() const;  // "host:port" as sent in Host
  std::string key() const;          // pool key "scheme://host:port"
  static api::Expected<Endpoint> parse(std::string_view url);
};

struct ClientOptions {
  std::string ca_file;  // PEM bundle verifying TLS servers; the system store when empty
  std::string client_cert_file, client_key_file;  // optional client certificate
  std::string server_name;  // SNI and verified name; the endpoint host when empty
  std::chrono::milliseconds connect_timeout{5000};
  std::size_t max_idle_per_endpoint = 512;
  std::chrono::seconds idle_timeout{60};  // pooled connections older than this are dropped
};

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";  // origin form "path?query"; the endpoint's base_path is prefixed
  std::vector<std::pair<std::string, std::string>> headers;  // Host is added when absent
  std::string body;           // sent with Content-Length unless body_streamed
  bool body_streamed = false;  // the body follows through ClientCall::write_body
  bool body_chunked = false;   // streamed body without Content-Length: chunked encoding
  // Fast path for proxies: the complete request head (through the blank line), sent verbatim
  // instead of method/target/headers (method still tells whether a body may come back).
  std::string prebuilt_head;
  std::chrono::milliseconds timeout{0};  // deadline for the response head; 0 = none
  bool timeout_includes_body = false;    // the deadline also covers reading the body
};

// One request/response on a pooled or new connection. Methods must be called on the executor
// given to HttpClient::start (callbacks run there too).
class ClientCall {
 public:
  virtual ~ClientCall() = default;

  // The response head. Errors: 503 ServiceUnavailable (connect/TLS failure, message says why),
  // 504 Timeout, 502 BadGateway (malformed response, connection closed early).
  virtual void read_head(std::function<void(api::Outcome)> done) = 0;
  // Valid after read_head succeeded.
  virtual const boost::beast::http::response_header<boost::beast::http::fields>& head() const = 0;
  virtual ResponseHead copy_head() const = 0;  // status and all headers
  // The whole body, if it is already buffered (a small Content-Length response): lets a proxy
  // answer with one write. nullopt = stream it with read_body_some.
  virtual std::optional<std::string> take_buffered_body() = 0;
  // Streams the response body: done(ok, chunk, last). Call again after each callback.
  virtual void read_body_some(std::function<void(bool ok, std::string chunk, bool last)> done) = 0;
  // Streams the request body (ClientRequest::body_streamed); last=true ends it.
  virtual void write_body(std::string chunk, bool last, std::function<void(bool ok)> done) = 0;
  // After a 101 head: the raw connection (leftover bytes first). The call is spent.
  virtual std::unique_ptr<ByteStream> take_upgraded() = 0;
  // Aborts: the connection is closed (never pooled), pending callbacks fail.
  virtual void cancel() = 0;
};

class HttpClient {
 public:
  // Connections are created on, and pooled per, the io_context of the executor each call runs on.
  explicit HttpClient(ClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Whether the TLS configuration (CA file, client cert) loads (loaded once, on first use); TLS
  // calls fail with this error otherwise.
  const api::Outcome& tls_status() const;
  // Reads the CA and client certificate files again (they changed on disk): connections made from
  // now on use them; pooled ones keep theirs. On error nothing changes.
  api::Outcome reload_tls();

  // Starts the request at once; the returned call runs on `executor` (must be a strand or an
  // executor whose handlers never run concurrently).
  std::shared_ptr<ClientCall> start(const Endpoint& endpoint, ClientRequest request,
                                    boost::asio::any_io_executor executor);

  // Whole-response convenience: head and body (at most body_limit bytes, else 502).
  void fetch(const Endpoint& endpoint, ClientRequest request, std::size_t body_limit,
             boost::asio::any_io_executor executor,
             std::function<void(api::Expected<Response>)> done);

  std::size_t idle_connections() const;  // pooled, for tests and metrics

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace dpa::http
