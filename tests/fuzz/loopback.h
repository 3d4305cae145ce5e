// What the network fuzz targets share: one io_context, run on the fuzzing thread only (so an
// execution is deterministic and nothing runs between two), and the far end of one TCP connection
// over 127.0.0.1, played with raw sockets: a client that sends the input and reads the reply
// (fuzzing our servers), or a server that answers one request with the input (fuzzing our
// clients). Code under test that sits idle instead of finishing after the peer has closed the
// connection is a hang, reported as a crash so libFuzzer keeps the input.
#pragma once

#include "aggregator/http/server.h"
#include "aggregator/observability/log.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace dpa::fuzz {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// How long the code under test may sit with nothing to do before it is taken to hang: short
// next to libFuzzer's -timeout, and never reached by an input that completes.
inline constexpr std::chrono::milliseconds kIdleLimit = 3000ms;

// The context every network target runs on; kept busy by a work guard so run_one_for waits.
// Never destroyed: servers and connections left in it at exit stay reachable, not leaks.
inline net::io_context& io() {
  struct Context {
    net::io_context io{1};
    net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(io);
  };
  static Context* context = [] {
    obs::set_log_level(obs::Level::kError);  // one line per rejected input would drown the run
    return new Context();
  }();
  return context->io;
}

// Runs the context until done(), or until it has had nothing to run for kIdleLimit in a row: code
// waiting for an event that will not come. Idleness is counted in short waits, not read off the
// clock, so a fuzzer that was descheduled or frozen for seconds (a loaded CI machine; it happened
// here, with the connection not even accepted) is not taken for code that hangs.
inline bool run_until(const std::function<bool()>& done) {
  constexpr std::chrono::milliseconds kWait = 50ms;
  std::chrono::milliseconds idle{0};
  while (!done()) {
    if (io().run_one_for(kWait) > 0) {
      idle = std::chrono::milliseconds(0);
    } else if ((idle += kWait) >= kIdleLimit) {
      return false;
    }
  }
  return true;
}

// With DPA_FUZZ_VERBOSE set (reproducing one input), what the peer received goes to stderr.
inline void show(std::string_view what, std::string_view bytes) {
  static const bool verbose = std::getenv("DPA_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "--- %.*s:\n%.*s\n---\n", static_cast<int>(what.size()),
                            what.data(), static_cast<int>(bytes.size()), bytes.data());
}

// `state` says how far the connection got, to tell a stuck parser from a stuck connection.
[[noreturn]] inline void hang(const char* what, const std::string& state) {
  std::fprintf(stderr, "==HANG== %s: nothing to do for %lld ms (%s)\n", what,
               static_cast<long long>(kIdleLimit.count()), state.c_str());
  std::abort();
}

// One connection's far end, shared with its completion handlers.
struct Peer {
  explicit Peer(net::io_context& context) : socket(context) {}
  tcp::socket socket;
  std::string received;
  bool connected = false;
  bool sent = false;    // what this end had to send is written
  bool closed = false;  // the other side closed (EOF or error), or close() was called
  char buffer[16 * 1024];

  std::string state() const {
    return std::string(connected ? "connected" : "not connected") + ", " +
           std::to_string(received.size()) + " bytes received" + (sent ? ", sent" : ", not sent") +
           (closed ? ", closed" : "");
  }

  // Reads until the other side closes; `more` (optional) sees the bytes so far after each read.
  static void read_all(std::shared_ptr<Peer> self, std::function<void()> more = {}) {
    self->socket.async_read_some(
        net::buffer(self->buffer),
        [self, more = std::move(more)](const boost::system::error_code& ec, std::size_t n) {
          if (ec) {
            self->close();
            return;
          }
          self->received.append(self->buffer, n);
          if (more) more();
          if (!self->closed) read_all(self, more);
        });
  }
  void close() {
    closed = true;
    boost::system::error_code ignored;
    socket.close(ignored);
  }
};

// A real http::Server on io() with short timeouts, started once per target; the caller keeps the
// pointer (in a static) for the run.
inline http::Server* serve(http::Handler handler) {
  http::ServerOptions options;
  options.port = 0;
  options.access_log = false;
  options.header_timeout_ms = std::chrono::milliseconds(500);
  options.idle_timeout_ms = std::chrono::milliseconds(500);
  options.body_timeout_ms = std::chrono::milliseconds(1000);
  auto* server = new http::Server(io(), options, std::move(handler));  // lives for the run
  if (auto ok = server->start(); !ok) {
    std::fprintf(stderr, "server: %s\n", ok.error().message.c_str());
    std::abort();
  }
  return server;
}

// Client: connects to 127.0.0.1:port, sends `bytes`, half-closes, and reads until the server
// closes. Returns what the server sent; a server that keeps the connection open, idle, hangs.
inline std::string send_and_read(int port, std::string bytes) {
  auto peer = std::make_shared<Peer>(io());
  auto data = std::make_shared<std::string>(std::move(bytes));
  bool failed = false;
  peer->socket.async_connect(
      tcp::endpoint(net::ip::address_v4::loopback(), static_cast<unsigned short>(port)),
      [peer, data, &failed](const boost::system::error_code& ec) {
        if (ec) {
          failed = true;
          peer->close();
          return;
        }
        peer->connected = true;
        net::async_write(peer->socket, net::buffer(*data),
                         [peer, data](const boost::system::error_code& ec, std::size_t) {
                           boost::system::error_code ignored;
                           // A server that answered and closed early may refuse the rest.
                           if (!ec) peer->socket.shutdown(tcp::socket::shutdown_send, ignored);
                           peer->sent = !ec;
                         });
        Peer::read_all(peer);
      });
  if (!run_until([&] { return peer->closed; })) {
    hang("the server did not close the connection", "client: " + peer->state());
  }
  if (failed) {
    std::fprintf(stderr, "cannot connect to 127.0.0.1:%d\n", port);
    std::abort();
  }
  show("the server's reply", peer->received);
  return std::move(peer->received);
}

// Server: a listener on 127.0.0.1:0 whose next connection is answered with scripted bytes.
class ScriptedServer {
 public:
  ScriptedServer() : acceptor_(io(), tcp::endpoint(net::ip::address_v4::loopback(), 0)) {}
  int port() const { return acceptor_.local_endpoint().port(); }

  // Accepts one connection; once `request_read(bytes so far)` is true (or the client closes),
  // writes `reply`, half-closes, and reads until the client closes. Call before starting the
  // client; then wait with run_until(done()).
  void serve_once(std::function<bool(std::string_view)> request_read, std::string reply) {
    close();
    boost::system::error_code ignored;
    acceptor_.cancel(ignored);  // an accept a client never answered must not take this connection
    peer_ = std::make_shared<Peer>(io());
    auto peer = peer_;
    auto replied = std::make_shared<bool>(false);
    auto answer = [peer, replied, reply = std::make_shared<std::string>(std::move(reply))] {
      if (*replied) return;
      *replied = true;
      net::async_write(peer->socket, net::buffer(*reply),
                       [peer, reply](const boost::system::error_code& ec, std::size_t) {
                         boost::system::error_code ignored;
                         peer->socket.shutdown(tcp::socket::shutdown_send, ignored);
                         peer->sent = !ec;
                       });
    };
    acceptor_.async_accept(peer->socket, [peer, answer, request_read = std::move(request_read)](
                                             const boost::system::error_code& ec) {
      if (ec) {
        peer->close();
        return;
      }
      peer->connected = true;
      Peer::read_all(peer, [peer, answer, request_read] {
        if (request_read(peer->received)) answer();
      });
    });
  }
  // The connection is over: the client closed it.
  bool done() const { return !peer_ || peer_->closed; }
  // Ends the connection now.
  void close() {
    if (peer_) peer_->close();
  }
  const std::string& received() const { return peer_->received; }
  std::string state() const { return "server: " + (peer_ ? peer_->state() : "idle"); }

 private:
  tcp::acceptor acceptor_;
  std::shared_ptr<Peer> peer_;
};

}  // namespace dpa::fuzz
