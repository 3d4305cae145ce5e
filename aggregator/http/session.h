// Internal to the server: state shared between Server and its sessions, and the entry points that
// start a session on an accepted socket. The sessions themselves (plain and TLS, one template) are
// in session.cc.
#pragma once

#include "aggregator/http/server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

namespace dpa::http {

// What Server::shutdown needs from a live connection; called on any thread, posts to the strand.
class SessionControl {
 public:
  virtual ~SessionControl() = default;
  virtual void begin_shutdown() = 0;  // finish in-flight work, end streams, close when idle
  virtual void force_close() = 0;     // close now (grace period over)
};

struct ServerState {
  ServerState(boost::asio::io_context& io, ServerOptions options, Handler handler);

  boost::asio::io_context& io;
  // Where new connections live, round-robin (empty = `io`): one io_context per I/O thread, so a
  // connection's work never crosses threads or contends on a shared scheduler.
  std::vector<boost::asio::io_context*> session_contexts;
  std::atomic<std::size_t> next_context{0};
  boost::asio::io_context& context_for_next_session();
  const ServerOptions options;
  const Handler handler;
  std::function<void(const RequestRecord&)> observer;  // set before start()
  // The TLS context new connections use; replaced whole by Server::reload_tls (guarded by mu).
  // Each TLS session keeps the one it started with.
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::chrono::milliseconds header_timeout;
  std::chrono::milliseconds idle_timeout;
  std::chrono::milliseconds body_timeout;

  std::unique_ptr<boost::asio::ip::tcp::acceptor> plain_acceptor;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> tls_acceptor;
  int port = -1;
  int secure_port = -1;

  std::atomic<std::size_t> connections{0};
  std::atomic<bool> shutting_down{false};

  using Registry = std::list<std::weak_ptr<SessionControl>>;
  std::mutex mu;
  Registry sessions;                   // guarded by mu
  std::function<void()> shutdown_done;  // guarded by mu; called once
  std::shared_ptr<boost::asio::steady_timer> grace_timer;  // shared: a posted cancel may outlive the server

  Registry::iterator add_session(std::weak_ptr<SessionControl> session);
  // Removes the session; `counted` sessions decrement `connections` and may complete shutdown.
  void remove_session(Registry::iterator it, bool counted);
  void complete_shutdown();  // idempotent: calls shutdown_done once
};

// `counted` = false for connections accepted over max_connections: they get a 503 and close.
void start_plain_session(std::shared_ptr<ServerState> state, boost::asio::ip::tcp::socket socket,
                         bool counted);
void start_tls_session(std::shared_ptr<ServerState> state, boost::asio::ip::tcp::socket socket,
                       bool counted);

}  // namespace dpa::http
