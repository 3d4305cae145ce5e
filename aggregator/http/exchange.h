// One HTTP request and its response, as seen by a handler. The session (plain or TLS, see
// server.h) owns the connection; handlers only see this interface, so they never touch sockets.
//
// Threading contract: every method may be called from any thread (a gRPC completion thread, the
// storage thread, an I/O thread); the implementation posts the work to the session's strand.
// Every callback is invoked on the session's strand. A handler must eventually call respond(), or
// begin_stream() ... finish(), exactly once.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/observability/trace_context.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <openssl/x509.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dpa::http {

using Header = boost::beast::http::request_header<boost::beast::http::fields>;

// True when the request asks for a WebSocket (GET, Connection: upgrade, Upgrade: websocket).
bool is_websocket_upgrade(const Header& header);

// A TLS client's certificates as it presented them. The handshake does not judge them: each
// authenticator verifies the chain against its own CA (--client-ca-file,
// --requestheader-client-ca-file), as kube-apiserver does.
struct PeerCertificates {
  std::shared_ptr<X509> leaf;
  std::vector<std::shared_ptr<X509>> intermediates;
};

// A complete response. Content-Length is set by the session; Date/Server headers too.
struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Content-Type", "..."}
  std::string body;
  // More body, sent after `body` as is: pieces held elsewhere and shared, not copied (a list
  // joins the watch cache's bytes of each object, 12 MB at 10,000 objects, without a copy).
  std::vector<std::shared_ptr<const std::string>> body_parts;

  std::size_t body_size() const;

  static Response json(int status, std::string body);  // Content-Type: application/json
  static Response text(int status, std::string body);  // text/plain; charset=utf-8
  static Response error(const api::ApiError& error);   // the Status JSON, HTTP code = error.code
};

// The head of a streamed response (chunked transfer encoding unless a Content-Length header is
// given).
struct ResponseHead {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Bidirectional byte stream left after a 101 Switching Protocols (WebSocket/SPDY tunnels).
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads some bytes; done(ec, bytes) with an empty string and ec set at EOF/close.
  virtual void read_some(std::function<void(bool ok, std::string bytes)> done) = 0;
  virtual void write(std::string bytes, std::function<void(bool ok)> done) = 0;
  virtual void close() = 0;
  virtual boost::asio::any_io_executor executor() = 0;
};

class Exchange {
 public:
  virtual ~Exchange() = default;

  // --- the request -----------------------------------------------------------------------------
  virtual const Header& header() const = 0;
  // Path without the query string, exactly as received (not percent-decoded).
  virtual std::string_view path() const = 0;
  // Raw query string without '?', possibly empty.
  virtual std::string_view query() const = 0;
  // First value of a query parameter, percent-decoded; empty when absent.
  virtual std::string query_param(std::string_view name) const = 0;
  virtual bool has_query_param(std::string_view name) const = 0;
  virtual std::string remote_address() const = 0;  // "ip:port" of the client
  virtual bool is_tls() const = 0;
  // The client certificate of a TLS connection; null when none was presented (or plain HTTP).
  virtual const PeerCertificates* peer_certificates() const { return nullptr; }
  // The request id used in the access log line and passed to plugins/delegate.
  virtual const std::string& request_id() const = 0;
  // The request's W3C trace context (its traceparent/tracestate headers, or a new trace when it
  // has no valid one): on the access log line and audit event, passed to the delegate and to
  // plugins.
  virtual const obs::TraceContext& trace_context() const = 0;

  // Reads the whole body. If it exceeds `limit` bytes: done(ApiError 413) and the connection
  // will close after the response. Call at most once, and not together with read_body_some.
  virtual void read_body(std::size_t limit, std::function<void(api::Expected<std::string>)> done) = 0;
  // Streams the body: done(ok, chunk, last). Call again after each callback until last == true.
  virtual void read_body_some(std::function<void(bool ok, std::string chunk, bool last)> done) = 0;

  // --- the response ----------------------------------------------------------------------------
  virtual void respond(Response response) = 0;
  void respond_error(const api::ApiError& error) { respond(Response::error(error)); }

  // Streams: the head is written (and flushed) at once.
  virtual void begin_stream(ResponseHead head) = 0;
  // Queues a chunk; done(ok) once it is handed to the socket (ok=false: client gone). Flushes
  // each chunk immediately (watch events must arrive as they happen).
  virtual void write(std::string chunk, std::function<void(bool ok)> done = {}) = 0;
  // The same for a buffer shared with other streams (one encoded watch event queued to many
  // watchers): the connection keeps a reference to it, not a copy.
  virtual void write_shared(std::shared_ptr<const std::string> chunk) { write(*chunk); }
  // Bytes queued but not yet written: streams fanned out to slow clients use it to shed them.
  virtual std::size_t pending_bytes() const = 0;
  // Ends the stream (terminating chunk); the connection is then reused or closed.
  virtual void finish() = 0;
  // Ends a started stream abnormally: no terminating chunk, the connection is closed, so the
  // client sees a truncated response instead of a complete one (a proxied upstream broke).
  virtual void abort() { finish(); }

  // Called once when the client goes away or the server shuts down while a response is still
  // streaming; handlers stop producing (cancel gRPC streams, unsubscribe watches). After it,
  // write() completes with ok=false and finish() is harmless. Once the response is complete the
  // callback can no longer fire and is released (it may hold the exchange: no cycle is left).
  virtual void on_close(std::function<void()> callback) = 0;
  virtual bool closed() const = 0;
  // Adds a callback run once, on the session's strand, when the exchange is over: the response
  // complete (its status), the connection upgraded (101), or the client gone (the status sent so
  // far, 0 if none); at once when it is already over. For layers above HTTP that account for
  // requests (audit log, in-flight limits).
  virtual void on_complete(std::function<void(int status)> callback) { (void)callback; }

  // Upgrade: writes `head` (status 101 and headers) and hands over the raw connection.
  virtual void upgrade(ResponseHead head, std::function<void(std::unique_ptr<ByteStream>)> done) = 0;

  virtual boost::asio::any_io_executor executor() = 0;
};

using Handler = std::function<void(std::shared_ptr<Exchange>)>;

}  // namespace dpa::http
