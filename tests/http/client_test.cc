// The pooled client against our own server: keep-alive reuse, streamed request and response
// bodies, timeouts, unreachable servers and TLS verification with a CA file.
#include "aggregator/http/client.h"
#include "aggregator/http/tls.h"
#include "tests/http/http_test_util.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>

namespace dpa::http {
namespace {

using namespace std::chrono_literals;
using testing::IoThreads;
namespace net = boost::asio;

Endpoint local(int port, const char* scheme = "http") {
  auto e = Endpoint::parse(std::string(scheme) + "://127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(e.ok());
  return e.value();
}

api::Expected<Response> fetch(HttpClient& client, net::io_context& io, const Endpoint& endpoint,
                              ClientRequest request) {
  std::promise<api::Expected<Response>> result;
  client.fetch(endpoint, std::move(request), 1 << 20, net::make_strand(io),
               [&](api::Expected<Response> r) { result.set_value(std::move(r)); });
  auto f = result.get_future();
  if (f.wait_for(10s) != std::future_status::ready) {
    return api::ApiError::internal("test: fetch did not complete");
  }
  return f.get();
}

TEST(EndpointTest, Parse) {
  auto e = Endpoint::parse("https://api.example:6443/prefix/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "api.example");
  EXPECT_EQ(e->port, 6443);
  EXPECT_EQ(e->base_path, "/prefix");
  EXPECT_EQ(e->host_header(), "api.example:6443");
  auto v6 = Endpoint::parse("http://[::1]:8080");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->host_header(), "[::1]:8080");
  EXPECT_EQ(Endpoint::parse("http://h")->port, 80);
  EXPECT_FALSE(Endpoint::parse("ftp://h").ok());
  EXPECT_FALSE(Endpoint::parse("http://h:99999").ok());
  EXPECT_FALSE(Endpoint::parse("nourl").ok());
}

TEST(ClientTest, ReusesPooledConnections) {
  IoThreads io;
  std::mutex mu;
  std::set<std::string> remotes;
  auto server = testing::start_server(io.io(), {}, [&](std::shared_ptr<Exchange> ex) {
    {
      std::lock_guard<std::mutex> lock(mu);
      remotes.insert(ex->remote_address());
    }
    ex->respond(Response::text(200, "hello " + std::string(ex->path())));
  });
  HttpClient client(ClientOptions{});
  for (int i = 0; i < 5; ++i) {
    ClientRequest req;
    req.target = "/n" + std::to_string(i);
    auto res = fetch(client, io.io(), local(server->port()), req);
    ASSERT_TRUE(res.ok()) << res.error().message;
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "hello /n" + std::to_string(i));
  }
  EXPECT_EQ(remotes.size(), 1u);
  EXPECT_EQ(client.idle_connections(), 1u);
}

TEST(ClientTest, PoolsConnectionsPerIoContext) {
  // Upstream connections live on the caller's io_context: calls from one context reuse one
  // connection, a call from another context gets its own (no cross-thread socket I/O).
  IoThreads upstream_io, a, b;
  std::mutex mu;
  std::set<std::string> remotes;
  auto server = testing::start_server(upstream_io.io(), {}, [&](std::shared_ptr<Exchange> ex) {
    {
      std::lock_guard<std::mutex> lock(mu);
      remotes.insert(ex->remote_address());
    }
    ex->respond(Response::text(200, "ok"));
  });
  HttpClient client(ClientOptions{});
  // A call hands its connection back to the pool just after it delivers the response; wait for
  // that before the next call, or the next call rightly opens a second connection.
  auto fetch_and_pool = [&](net::io_context& io, std::size_t idle_after) {
    ASSERT_TRUE(fetch(client, io, local(server->port()), {}).ok());
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (client.idle_connections() != idle_after && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_EQ(client.idle_connections(), idle_after);
  };
  for (int i = 0; i < 3; ++i) fetch_and_pool(a.io(), 1);
  EXPECT_EQ(remotes.size(), 1u);
  for (int i = 0; i < 3; ++i) fetch_and_pool(b.io(), 2);
  EXPECT_EQ(remotes.size(), 2u);
  fetch_and_pool(a.io(), 2);
  EXPECT_EQ(remotes.size(), 2u);  // back on `a`: its pooled connection again
}

TEST(ClientTest, RetriesWhenPooledConnectionWasClosedByServer) {
  IoThreads io;
  ServerOptions options;
  options.idle_timeout_ms = 100ms;
  auto server = testing::start_server(io.io(), options, [](std::shared_ptr<Exchange> ex) {
    ex->respond(Response::text(200, "ok"));
  });
  HttpClient client(ClientOptions{});
  ASSERT_TRUE(fetch(client, io.io(), local(server->port()), {}).ok());
  std::this_thread::sleep_for(300ms);  // server closes the idle connection
  auto res = fetch(client, io.io(), local(server->port()), {});
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_EQ(res->body, "ok");
}

TEST(ClientTest, StreamsRequestAndResponseBodies) {
  IoThreads io;
  // The server echoes the body back in upper case, chunk by chunk.
  auto server = testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    ex->begin_stream({});
    auto pump = std::make_shared<std::function<void()>>();
    *pump = [ex, pump] {
      ex->read_body_some([ex, pump](bool ok, std::string chunk, bool last) {
        for (auto& c : chunk) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (!chunk.empty()) ex->write(chunk);
        if (!ok || last) {
          ex->finish();
          *pump = nullptr;
          return;
        }
        (*pump)();
      });
    };
    (*pump)();
  });
  HttpClient client(ClientOptions{});
  auto strand = net::make_strand(io.io());
  ClientRequest req;
  req.method = "POST";
  req.target = "/upper";
  req.body_streamed = true;
  req.body_chunked = true;
  std::promise<std::string> result;
  std::shared_ptr<ClientCall> call;
  net::dispatch(strand, [&] {
    call = client.start(local(server->port()), req, strand);
    call->write_body("abc", false, {});
    call->write_body("def", true, {});
    call->read_head([&](api::Outcome head) {
      if (!head) return result.set_value("error: " + head.error().message);
      auto body = std::make_shared<std::string>();
      auto read = std::make_shared<std::function<void()>>();
      *read = [&, body, read] {
        call->read_body_some([&, body, read](bool ok, std::string chunk, bool last) {
          body->append(chunk);
          if (!ok || last) {
            result.set_value(*body);
            *read = nullptr;
            return;
          }
          (*read)();
        });
      };
      (*read)();
    });
  });
  auto f = result.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), "ABCDEF");
}

TEST(ClientTest, UnreachableIs503AndSlowIs504) {
  IoThreads io;
  // A port that was just free: nothing listens there.
  int dead_port;
  {
    net::io_context tmp;
    testing::tcp::acceptor a(tmp, testing::tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    dead_port = a.local_endpoint().port();
  }
  HttpClient client(ClientOptions{});
  auto res = fetch(client, io.io(), local(dead_port), {});
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code, 503);
  EXPECT_NE(res.error().message.find("refused"), std::string::npos) << res.error().message;

  auto server = testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    auto timer = std::make_shared<net::steady_timer>(ex->executor(), 2s);
    timer->async_wait([ex, timer](boost::system::error_code) {
      ex->respond(Response::text(200, "late"));
    });
  });
  ClientRequest req;
  req.timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto slow = fetch(client, io.io(), local(server->port()), req);
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.error().code, 504);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
}

TEST(ClientTest, TlsVerifiesAgainstCaFile) {
  auto dir = std::filesystem::temp_directory_path() / ("dpa-client-tls-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::string cert = (dir / "c.crt").string(), key = (dir / "c.key").string();
  ASSERT_TRUE(ensure_self_signed_certificate(cert, key).ok());
  IoThreads io;
  ServerOptions options;
  options.secure_port = 0;
  options.tls_cert_file = cert;
  options.tls_key_file = key;
  auto server = testing::start_server(io.io(), options, [](std::shared_ptr<Exchange> ex) {
    ex->respond(Response::text(200, ex->is_tls() ? "tls" : "plain"));
  });
  ClientOptions trusted;
  trusted.ca_file = cert;
  HttpClient good(trusted);
  auto res = fetch(good, io.io(), local(server->secure_port(), "https"), {});
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_EQ(res->body, "tls");
  auto again = fetch(good, io.io(), local(server->secure_port(), "https"), {});
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(good.idle_connections(), 1u);

  HttpClient untrusting(ClientOptions{});  // system store: our self-signed CA is unknown
  auto bad = fetch(untrusting, io.io(), local(server->secure_port(), "https"), {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, 503);
  EXPECT_NE(bad.error().message.find("TLS"), std::string::npos) << bad.error().message;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dpa::http
