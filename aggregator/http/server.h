// The HTTP/1.1 server: plain and TLS listeners, one session per connection
// (session.cc), each on its own strand. Handlers receive an Exchange; every protocol error the
// server itself answers (400, 431, 413, 503 over max_connections) is a Kubernetes Status.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/http/exchange.h"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dpa::http {

struct ServerOptions {
  std::string bind_address = "127.0.0.1";
  int port = -1;         // plain HTTP; -1 = off, 0 = ephemeral
  int secure_port = -1;  // HTTPS; -1 = off, 0 = ephemeral
  std::string tls_cert_file, tls_key_file;  // PEM
  // CA files whose subjects are named in the TLS CertificateRequest; non-empty: clients are asked
  // for a certificate (optional; Exchange::peer_certificates hands it to authentication).
  std::vector<std::string> client_ca_files;
  std::size_t max_header_bytes = 64 * 1024;   // over -> 431 Status
  std::chrono::seconds header_timeout{10};    // whole header must arrive within -> close (slowloris)
  std::chrono::seconds idle_timeout{90};      // keep-alive idle
  // A request body must be read within this, from the request's start (kube's request timeout).
  std::chrono::seconds body_timeout{60};
  std::size_t max_connections = 10000;        // over -> 503 Status then close
  bool access_log = true;                     // one obs::info("request") line per request
  // Finer-grained overrides for tests (take precedence over the seconds above when non-zero).
  std::chrono::milliseconds header_timeout_ms{0};
  std::chrono::milliseconds idle_timeout_ms{0};
  std::chrono::milliseconds body_timeout_ms{0};
};

// What the observer hook sees at the end of every request (for Prometheus metrics).
struct RequestRecord {
  std::string_view method;
  std::string_view path;  // without query
  std::string_view query;  // raw, without '?'
  int status = 0;         // 101 for upgrades; 0 if the client went away before any response
  std::chrono::microseconds duration{0};
  std::uint64_t bytes = 0;  // response body bytes written
  bool streamed = false;
};

struct ServerState;  // shared with the sessions (session.h)

class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Spreads connections over these io_contexts (each run by its own thread) instead of placing
  // them all on the server's; call before start(). The contexts must outlive the server.
  void set_session_contexts(std::vector<boost::asio::io_context*> contexts);

  // Called on a session strand at the end of every request; keep it cheap and thread-safe.
  void set_observer(std::function<void(const RequestRecord&)> observer);

  // Binds and listens; errors (port in use, bad certificate) as ApiError.
  api::Outcome start();
  int port() const;         // actual bound ports (after start), -1 when off
  int secure_port() const;

  // Reads the certificate, key and client CA files again (they changed on disk): connections
  // accepted from now on use them, open ones keep what they started with. On error nothing
  // changes. No-op without a secure port.
  api::Outcome reload_tls();

  // Stops accepting, lets in-flight requests finish, ends streams cleanly (on_close callbacks
  // fire, terminating chunk written), closes idle keep-alive connections, then calls done() (on
  // an io_context thread). Connections still open after `grace` are closed forcibly.
  void shutdown(std::chrono::seconds grace, std::function<void()> done);
  std::size_t open_connections() const;

 private:
  std::shared_ptr<ServerState> state_;
};

}  // namespace dpa::http
