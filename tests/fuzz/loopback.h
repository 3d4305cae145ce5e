// What the network fuzz targets share: one io_context, run on the fuzzing thread only (so an
// execution is deterministic and nothing runs between two), and the far end of one TCP connection
// over 127.0.0.1, played with raw sockets: a client that sends the input and reads the reply
// (fuzzing our servers), or a server that answers one request with the input (fuzzing our
// clients). Every wait has a deadline; code under test that does not finish after the peer has
// closed the connection is a hang, reported as a crash so libFuzzer keeps the input.
#pragma once

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

// Long enough for any input on a loaded machine, short next to libFuzzer's -timeout.
inline constexpr std::chrono::milliseconds kDeadline = 3000ms;

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

// Runs the context until done() or `deadline` passes; returns done().
inline bool run_until(const std::function<bool()>& done, std::chrono::milliseconds deadline = kDeadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return false;
    io().run_one_for(until - now);
  }
  return true;
}

// With DPA_FUZZ_VERBOSE set (reproducing one input), what the peer received goes to stderr.
inline void show(std::string_view what, std::string_view bytes) {
  static const bool verbose = std::getenv("DPA_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "--- %.*s:\n%.*s\n---\n", static_cast<int>(what.size()),
                            what.data(), static_cast<int>(bytes.size()), bytes.data());
}

[[noreturn]] inline void hang(const char* what) {
  std::fprintf(stderr, "==HANG== %s within %lld ms\n", what,
               static_cast<long long>(kDeadline.count()));
  std::abort();
}

// One connection's far end, shared with its completion handlers.
struct Peer {
  explicit Peer(net::io_context& context) : socket(context) {}
  tcp::socket socket;
  std::string received;
  bool closed = false;  // the other side closed (EOF or error), or close() was called
  char buffer[16 * 1024];

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

// Client: connects to 127.0.0.1:port, sends `bytes`, half-closes, and reads until the server
// closes. Returns what the server sent; a server still holding the connection open at the
// deadline is a hang.
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
        net::async_write(peer->socket, net::buffer(*data),
                         [peer, data](const boost::system::error_code& ec, std::size_t) {
                           boost::system::error_code ignored;
                           // A server that answered and closed early may refuse the rest.
                           if (!ec) peer->socket.shutdown(tcp::socket::shutdown_send, ignored);
                         });
        Peer::read_all(peer);
      });
  if (!run_until([&] { return peer->closed; })) hang("the server did not close the connection");
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
    peer_ = std::make_shared<Peer>(io());
    auto peer = peer_;
    auto replied = std::make_shared<bool>(false);
    auto answer = [peer, replied, reply = std::make_shared<std::string>(std::move(reply))] {
      if (*replied) return;
      *replied = true;
      net::async_write(peer->socket, net::buffer(*reply),
                       [peer, reply](const boost::system::error_code&, std::size_t) {
                         boost::system::error_code ignored;
                         peer->socket.shutdown(tcp::socket::shutdown_send, ignored);
                       });
    };
    acceptor_.async_accept(peer->socket, [peer, answer, request_read = std::move(request_read)](
                                             const boost::system::error_code& ec) {
      if (ec) {
        peer->close();
        return;
      }
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

 private:
  tcp::acceptor acceptor_;
  std::shared_ptr<Peer> peer_;
};

}  // namespace dpa::fuzz
