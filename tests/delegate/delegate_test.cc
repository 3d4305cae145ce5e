// The delegate proxy between a real client and a real upstream (both our own Server): what the
// upstream receives, what the client gets back, streaming, upgrades, TLS and every failure Status.
#include "aggregator/delegate/delegate_proxy.h"
#include "aggregator/http/tls.h"
#include "tests/http/http_test_util.h"

#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <future>

namespace dpa::delegate {
namespace {

using namespace std::chrono_literals;
using http::Exchange;
using http::Response;
using http::testing::IoThreads;
using http::testing::RawClient;
namespace net = boost::asio;

// Upstream that answers with a JSON description of the request it received.
http::Handler echo_upstream() {
  return [](std::shared_ptr<Exchange> ex) {
    ex->read_body(1 << 20, [ex](api::Expected<std::string> body) {
      nlohmann::json headers = nlohmann::json::object();
      for (const auto& f : ex->header()) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        headers[name] = std::string(f.value());
      }
      nlohmann::json out = {{"method", std::string(ex->header().method_string())},
                            {"path", std::string(ex->path())},
                            {"query", std::string(ex->query())},
                            {"body", body ? *body : "<error>"},
                            {"headers", headers}};
      auto r = Response::json(200, out.dump());
      r.headers.emplace_back("X-Upstream", "yes");
      r.headers.emplace_back("Keep-Alive", "timeout=5");
      ex->respond(std::move(r));
    });
  };
}

struct ProxySetup {
  explicit ProxySetup(net::io_context& io, DelegateOptions options) : proxy(io, std::move(options)) {
    server = http::testing::start_server(io, {}, [this](std::shared_ptr<Exchange> ex) {
      proxy.forward(std::move(ex));
    });
  }
  DelegateProxy proxy;
  http::testing::ServerPtr server;
};

std::string url(int port, const char* scheme = "http") {
  return std::string(scheme) + "://127.0.0.1:" + std::to_string(port);
}

TEST(DelegateTest, RequestPassesIntactAndHopByHopHeadersAreDropped) {
  IoThreads io;
  auto upstream = http::testing::start_server(io.io(), {}, echo_upstream());
  ProxySetup setup(io.io(), {.url = url(upstream->port())});
  RawClient client(setup.server->port());
  std::string body = "{\"spec\":{\"x\":1}}";
  client.send("PATCH /apis/g.example/v1/things/a%20b?labelSelector=x%3Dy&watch=1 HTTP/1.1\r\n"
              "Host: front.example\r\n"
              "Content-Type: application/merge-patch+json\r\n"
              "Content-Length: " + std::to_string(body.size()) + "\r\n"
              "Authorization: Bearer t0k3n\r\n"
              "X-Custom: kept\r\n"
              "Connection: keep-alive, X-Hop\r\n"
              "X-Hop: dropped\r\n"
              "Keep-Alive: timeout=5\r\n"
              "Proxy-Authorization: Basic Zm9v\r\n"
              "TE: trailers\r\n"
              "X-Forwarded-For: 10.1.2.3\r\n"
              "\r\n" + body);
  auto res = client.read_response();
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  auto seen = nlohmann::json::parse(res.body());
  EXPECT_EQ(seen["method"], "PATCH");
  EXPECT_EQ(seen["path"], "/apis/g.example/v1/things/a%20b");
  EXPECT_EQ(seen["query"], "labelSelector=x%3Dy&watch=1");
  EXPECT_EQ(seen["body"], body);
  auto& h = seen["headers"];
  EXPECT_EQ(h["content-type"], "application/merge-patch+json");
  EXPECT_EQ(h["authorization"], "Bearer t0k3n");
  EXPECT_EQ(h["x-custom"], "kept");
  EXPECT_FALSE(h.contains("x-hop"));
  EXPECT_FALSE(h.contains("keep-alive"));
  EXPECT_FALSE(h.contains("proxy-authorization"));
  EXPECT_FALSE(h.contains("te"));
  EXPECT_EQ(h["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
  EXPECT_EQ(h["x-forwarded-proto"], "http");
  EXPECT_EQ(h["x-forwarded-host"], "front.example");
  EXPECT_EQ(h["host"], "127.0.0.1:" + std::to_string(upstream->port()));
  // Response headers pass, hop-by-hop ones do not.
  EXPECT_EQ(res["X-Upstream"], "yes");
  EXPECT_EQ(res.find("Keep-Alive"), res.end());
  EXPECT_TRUE(res.keep_alive());

  // Same client connection, next request: the upstream connection is pooled and reused.
  client.send("GET /api HTTP/1.1\r\nHost: front.example\r\n\r\n");
  auto again = client.read_response();
  EXPECT_EQ(again.result_int(), 200u);
  EXPECT_EQ(nlohmann::json::parse(again.body())["method"], "GET");
  EXPECT_EQ(setup.proxy.idle_connections(), 1u);
}

// The delegate gets the request's trace context: as sent when valid, else a new trace (and no
// tracestate, which belonged to the invalid one). One trace per request, never one per process.
TEST(DelegateTest, TraceContextPassesOrStartsANewTrace) {
  IoThreads io;
  auto upstream = http::testing::start_server(io.io(), {}, echo_upstream());
  ProxySetup setup(io.io(), {.url = url(upstream->port())});
  RawClient client(setup.server->port());
  auto headers_for = [&](const std::string& extra) {
    client.send("GET /api HTTP/1.1\r\nHost: front.example\r\n" + extra + "\r\n");
    auto res = client.read_response();
    EXPECT_EQ(res.result_int(), 200u) << res.body();
    return nlohmann::json::parse(res.body())["headers"];
  };
  const std::string sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto kept = headers_for("traceparent: " + sent + "\r\ntracestate: congo=t61rcWkgMzE\r\n");
  EXPECT_EQ(kept["traceparent"], sent);
  EXPECT_EQ(kept["tracestate"], "congo=t61rcWkgMzE");

  auto replaced = headers_for(
      "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n"
      "tracestate: congo=t61rcWkgMzE\r\n");
  ASSERT_TRUE(replaced.contains("traceparent"));
  EXPECT_TRUE(obs::valid_traceparent(replaced["traceparent"].get<std::string>())) << replaced;
  EXPECT_FALSE(replaced.contains("tracestate"));

  auto first = headers_for("")["traceparent"].get<std::string>();
  auto second = headers_for("")["traceparent"].get<std::string>();
  EXPECT_TRUE(obs::valid_traceparent(first)) << first;
  EXPECT_TRUE(obs::valid_traceparent(second)) << second;
  EXPECT_NE(first.substr(3, 32), second.substr(3, 32));
}

TEST(DelegateTest, ChunkedRequestBodyStreamsThrough) {
  IoThreads io;
  auto upstream = http::testing::start_server(io.io(), {}, echo_upstream());
  ProxySetup setup(io.io(), {.url = url(upstream->port())});
  RawClient client(setup.server->port());
  client.send("POST /apis/x HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  auto res = client.read_response();
  ASSERT_EQ(res.result_int(), 200u);
  EXPECT_EQ(nlohmann::json::parse(res.body())["body"], "hello world");
}

TEST(DelegateTest, StreamingResponseArrivesEventByEvent) {
  IoThreads io;
  auto upstream = http::testing::start_server(
      io.io(), {},
      http::testing::paced_stream_handler(
          [](int i) { return "{\"type\":\"ADDED\",\"n\":" + std::to_string(i) + "}\n"; }, 3,
          200ms));
  ProxySetup setup(io.io(), {.url = url(upstream->port())});
  RawClient client(setup.server->port());
  client.send(http::testing::get_request("/apis/g/v1/things?watch=true"));
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  std::string all;
  while (all.find("0\r\n\r\n") == std::string::npos) {
    std::string s = client.read_some();
    ASSERT_FALSE(s.empty());
    std::size_t events = 0;
    for (std::size_t p = s.find("ADDED"); p != std::string::npos; p = s.find("ADDED", p + 1)) ++events;
    for (std::size_t i = 0; i < events; ++i) arrivals.push_back(std::chrono::steady_clock::now());
    all += s;
  }
  ASSERT_EQ(arrivals.size(), 3u);
  EXPECT_GE(arrivals[1] - arrivals[0], 150ms);
  EXPECT_GE(arrivals[2] - arrivals[1], 150ms);
  EXPECT_NE(all.find("\"n\":2"), std::string::npos);
}

TEST(DelegateTest, UnreachableDelegateIs503Status) {
  IoThreads io;
  int dead_port;
  {
    net::io_context tmp;
    http::testing::tcp::acceptor a(tmp, {net::ip::make_address("127.0.0.1"), 0});
    dead_port = a.local_endpoint().port();
  }
  ProxySetup setup(io.io(), {.url = url(dead_port)});
  RawClient client(setup.server->port());
  client.send(http::testing::get_request("/apis/foo"));
  auto res = client.read_response();
  EXPECT_EQ(res.result_int(), 503u);
  auto status = nlohmann::json::parse(res.body());
  EXPECT_EQ(status["kind"], "Status");
  EXPECT_EQ(status["reason"], "ServiceUnavailable");
  EXPECT_EQ(status["code"], 503);
  EXPECT_EQ(status["message"].get<std::string>().rfind("delegate unavailable: ", 0), 0u)
      << status["message"];
}

TEST(DelegateTest, NoDelegateIs404Status) {
  IoThreads io;
  ProxySetup setup(io.io(), {});
  EXPECT_FALSE(setup.proxy.configured());
  RawClient client(setup.server->port());
  client.send(http::testing::get_request("/apis/unknown"));
  auto res = client.read_response();
  EXPECT_EQ(res.result_int(), 404u);
  auto status = nlohmann::json::parse(res.body());
  EXPECT_EQ(status["reason"], "NotFound");
  EXPECT_EQ(status["code"], 404);
}

TEST(DelegateTest, SlowDelegateIs504Status) {
  IoThreads io;
  auto upstream = http::testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    auto timer = std::make_shared<net::steady_timer>(ex->executor(), 3s);
    timer->async_wait([ex, timer](boost::system::error_code) { ex->respond(Response::text(200, "late")); });
  });
  ProxySetup setup(io.io(), {.url = url(upstream->port()), .response_timeout = 1s});
  RawClient client(setup.server->port());
  client.send(http::testing::get_request("/apis/slow"));
  auto res = client.read_response();
  EXPECT_EQ(res.result_int(), 504u);
  EXPECT_EQ(nlohmann::json::parse(res.body())["reason"], "Timeout");
}

TEST(DelegateTest, ClientGoneCancelsUpstream) {
  IoThreads io;
  std::promise<void> upstream_closed;
  auto upstream = http::testing::start_server(io.io(), {}, [&](std::shared_ptr<Exchange> ex) {
    ex->on_close([&] { upstream_closed.set_value(); });
    ex->begin_stream({});
    ex->write("{\"type\":\"ADDED\"}\n");
  });
  ProxySetup setup(io.io(), {.url = url(upstream->port())});
  {
    RawClient client(setup.server->port());
    client.send(http::testing::get_request("/apis/g/v1/w?watch=1"));
    client.read_until("ADDED");
  }
  EXPECT_EQ(upstream_closed.get_future().wait_for(3s), std::future_status::ready);
}

TEST(DelegateTest, UpgradeIsTunnelled) {
  IoThreads io;
  // Upstream: 101, then echoes every byte back.
  auto upstream = http::testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    if (ex->header().find("Upgrade") == ex->header().end()) {
      return ex->respond(Response::text(400, "want upgrade"));
    }
    http::ResponseHead head;
    head.status = 101;
    head.headers = {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"X-Tunnel", "1"}};
    ex->upgrade(head, [](std::unique_ptr<http::ByteStream> s) {
      std::shared_ptr<http::ByteStream> stream(std::move(s));
      auto echo = std::make_shared<std::function<void()>>();
      *echo = [stream, echo] {
        stream->read_some([stream, echo](bool ok, std::string bytes) {
          if (!ok) {
            *echo = nullptr;
            return;
          }
          stream->write(bytes, [echo](bool ok) {
            if (ok && *echo) (*echo)();
          });
        });
      };
      (*echo)();
    });
  });
  ProxySetup setup(io.io(), {.url = url(upstream->port())});
  RawClient client(setup.server->port());
  client.send("GET /api/v1/namespaces/default/pods/p/exec HTTP/1.1\r\nHost: f\r\n"
              "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  std::string head = client.read_until("\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  EXPECT_NE(head.find("X-Tunnel: 1"), std::string::npos);
  std::string rest = head.substr(head.find("\r\n\r\n") + 4);
  client.send("ping-1");
  std::string echoed = rest + client.read_until("ping-1");
  EXPECT_NE(echoed.find("ping-1"), std::string::npos);
  client.send("second message");
  EXPECT_NE(client.read_until("message").find("second message"), std::string::npos);
}

TEST(DelegateTest, TlsDelegateVerifiedWithCaFile) {
  auto dir = std::filesystem::temp_directory_path() / ("dpa-delegate-tls-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::string cert = (dir / "d.crt").string(), key = (dir / "d.key").string();
  ASSERT_TRUE(http::ensure_self_signed_certificate(cert, key).ok());
  IoThreads io;
  http::ServerOptions options;
  options.secure_port = 0;
  options.tls_cert_file = cert;
  options.tls_key_file = key;
  auto upstream = http::testing::start_server(io.io(), options, echo_upstream());
  {
    ProxySetup setup(io.io(), {.url = url(upstream->secure_port(), "https"), .ca_file = cert});
    ASSERT_TRUE(setup.proxy.status().ok());
    RawClient client(setup.server->port());
    client.send(http::testing::get_request("/apis/secure?x=1"));
    auto res = client.read_response();
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    EXPECT_EQ(nlohmann::json::parse(res.body())["query"], "x=1");
  }
  {
    // Without the CA the delegate's certificate is not trusted: 503, never a silent success.
    ProxySetup setup(io.io(), {.url = url(upstream->secure_port(), "https")});
    RawClient client(setup.server->port());
    client.send(http::testing::get_request("/apis/secure"));
    auto res = client.read_response();
    EXPECT_EQ(res.result_int(), 503u);
  }
  {
    ProxySetup setup(io.io(), {.url = url(upstream->secure_port(), "https"),
                               .ca_file = (dir / "missing.pem").string()});
    EXPECT_FALSE(setup.proxy.status().ok());
  }
  std::filesystem::remove_all(dir);
}

TEST(DelegateTest, FetchReturnsWholeBody) {
  IoThreads io;
  auto upstream = http::testing::start_server(io.io(), {}, echo_upstream());
  DelegateProxy proxy(io.io(), {.url = url(upstream->port())});
  std::promise<api::Expected<Response>> result;
  proxy.fetch("/apis", {{"Accept", "application/json"}}, 2s,
              [&](api::Expected<Response> r) { result.set_value(std::move(r)); });
  auto f = result.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto r = f.get();
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  auto seen = nlohmann::json::parse(r->body);
  EXPECT_EQ(seen["path"], "/apis");
  EXPECT_EQ(seen["headers"]["accept"], "application/json");
}

}  // namespace
}  // namespace dpa::delegate
