// Test helpers shared by tests/http and tests/delegate: a server running on background threads
// and small blocking clients that speak raw HTTP/1.1 so tests see exactly what is on the wire.
#pragma once

#include "aggregator/http/server.h"
#include "tests/support/io_threads.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace dpa::http::testing {

namespace net = boost::asio;
using tcp = net::ip::tcp;

using dpa::testing::IoThreads;

// Shuts the server down (closing its connections) before destroying it, as the aggregator does:
// a server destroyed with live connections leaves them to the io_context's destruction.
inline void stop_server(Server& server) {
  std::promise<void> done;
  server.shutdown(std::chrono::seconds(0), [&done] { done.set_value(); });
  done.get_future().wait_for(std::chrono::seconds(3));
}
struct ServerStopper {
  void operator()(Server* server) const {
    stop_server(*server);
    delete server;
  }
};
using ServerPtr = std::unique_ptr<Server, ServerStopper>;

inline ServerPtr start_server(net::io_context& io, ServerOptions options, Handler handler) {
  if (options.port < 0 && options.secure_port < 0) options.port = 0;
  options.access_log = false;
  ServerPtr server(new Server(io, std::move(options), std::move(handler)));
  auto started = server->start();
  EXPECT_TRUE(started.ok()) << (started.ok() ? "" : started.error().message);
  return server;
}

// A handler that streams `count` chunks, event(0) ... event(count - 1), `gap` apart, then ends
// the stream: a watch as an API server sends it.
inline Handler paced_stream_handler(std::function<std::string(int)> event, int count,
                                    std::chrono::milliseconds gap) {
  return [event = std::move(event), count, gap](std::shared_ptr<Exchange> ex) {
    ResponseHead head;
    head.headers.emplace_back("Content-Type", "application/json");
    ex->begin_stream(head);
    auto timer = std::make_shared<net::steady_timer>(ex->executor());
    auto step = std::make_shared<std::function<void(int)>>();
    *step = [ex, timer, step, event, count, gap](int i) {
      if (i == count) {
        ex->finish();
        *step = nullptr;  // break the self-reference
        return;
      }
      ex->write(event(i));
      timer->expires_after(gap);
      timer->async_wait([step, i](boost::system::error_code) {
        if (*step) (*step)(i + 1);
      });
    };
    (*step)(0);
  };
}

// A blocking connection to 127.0.0.1:port.
class RawClient {
 public:
  explicit RawClient(int port) : socket_(io_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"),
                                  static_cast<unsigned short>(port)));
  }
  void send(const std::string& bytes) { net::write(socket_, net::buffer(bytes)); }
  // Reads one response (Beast parser); throws on connection errors.
  boost::beast::http::response<boost::beast::http::string_body> read_response() {
    boost::beast::http::response<boost::beast::http::string_body> res;
    boost::beast::http::read(socket_, buffer_, res);
    return res;
  }
  // Reads whatever arrives next (blocking); empty string on EOF/error.
  std::string read_some() {
    if (buffer_.size() > 0) {
      std::string s(static_cast<const char*>(buffer_.data().data()), buffer_.size());
      buffer_.consume(buffer_.size());
      return s;
    }
    char data[65536];
    boost::system::error_code ec;
    std::size_t n = socket_.read_some(net::buffer(data), ec);
    if (ec) return {};
    return std::string(data, n);
  }
  // Reads until `needle` was seen or EOF; returns everything read.
  std::string read_until(const std::string& needle) {
    std::string all;
    while (all.find(needle) == std::string::npos) {
      std::string s = read_some();
      if (s.empty()) break;
      all += s;
    }
    return all;
  }
  // True when the server closed the connection (EOF or reset) within `wait`.
  bool closed_within(std::chrono::milliseconds wait) {
    socket_.non_blocking(false);
    timeval tv{static_cast<long>(wait.count() / 1000), static_cast<long>((wait.count() % 1000) * 1000)};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    ssize_t n = ::recv(socket_.native_handle(), &c, 1, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }
  tcp::socket& socket() { return socket_; }

 private:
  net::io_context io_;
  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

inline std::string get_request(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

}  // namespace dpa::http::testing
