// Server behaviour as a client observes it on the wire: keep-alive, limits (431, 413, slowloris,
// max_connections), TLS, chunk-by-chunk streaming and graceful shutdown.
#include "aggregator/http/server.h"
#include "aggregator/http/tls.h"
#include "aggregator/observability/containment.h"
#include "tests/http/http_test_util.h"

#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace dpa::http {
namespace {

using namespace std::chrono_literals;
using testing::IoThreads;
namespace net = boost::asio;
using testing::RawClient;
using testing::get_request;
namespace bhttp = boost::beast::http;

Handler echo_path_handler() {
  return [](std::shared_ptr<Exchange> ex) {
    ex->respond(Response::text(200, std::string(ex->path()) + "|" + ex->remote_address()));
  };
}

nlohmann::json status_json(const std::string& body) { return nlohmann::json::parse(body); }

TEST(ServerTest, KeepAliveReusesOneConnection) {
  IoThreads io;
  auto server = testing::start_server(io.io(), {}, echo_path_handler());
  RawClient client(server->port());
  std::set<std::string> remotes;
  for (int i = 0; i < 3; ++i) {
    client.send(get_request("/r" + std::to_string(i)));
    auto res = client.read_response();
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_TRUE(res.keep_alive());
    auto body = res.body();
    EXPECT_EQ(body.substr(0, body.find('|')), "/r" + std::to_string(i));
    remotes.insert(body.substr(body.find('|') + 1));
  }
  EXPECT_EQ(remotes.size(), 1u);  // same client port: one connection served all three
  EXPECT_EQ(server->open_connections(), 1u);
}

TEST(ServerTest, ConnectionsAreSpreadOverSessionContexts) {
  // One io_context per I/O thread: each connection is served on one context's thread, and
  // consecutive connections go round-robin over the contexts.
  IoThreads main_io(1), a(1), b(1);
  std::mutex mu;
  std::map<std::string, std::set<std::thread::id>> threads_by_remote;
  std::set<std::thread::id> all_threads;
  ServerOptions options;
  options.port = 0;
  options.access_log = false;
  http::Server server(main_io.io(), options, [&](std::shared_ptr<Exchange> ex) {
    {
      std::lock_guard<std::mutex> lock(mu);
      threads_by_remote[ex->remote_address()].insert(std::this_thread::get_id());
      all_threads.insert(std::this_thread::get_id());
    }
    ex->respond(Response::text(200, "ok"));
  });
  server.set_session_contexts({&a.io(), &b.io()});
  ASSERT_TRUE(server.start().ok());
  {
    RawClient first(server.port()), second(server.port());
    for (int i = 0; i < 3; ++i) {
      for (RawClient* client : {&first, &second}) {
        client->send(get_request("/x"));
        EXPECT_EQ(client->read_response().result_int(), 200u);
      }
    }
  }
  testing::stop_server(server);
  EXPECT_EQ(threads_by_remote.size(), 2u);
  for (const auto& [remote, threads] : threads_by_remote) EXPECT_EQ(threads.size(), 1u) << remote;
  EXPECT_EQ(all_threads.size(), 2u);  // the two connections landed on the two contexts
}

TEST(ServerTest, PipelinedRequestsAnsweredInOrder) {
  IoThreads io;
  auto server = testing::start_server(io.io(), {}, echo_path_handler());
  RawClient client(server->port());
  client.send(get_request("/a") + get_request("/b") + get_request("/c"));
  for (const char* path : {"/a", "/b", "/c"}) {
    auto res = client.read_response();
    EXPECT_EQ(res.body().substr(0, res.body().find('|')), path);
  }
}

TEST(ServerTest, OversizedHeaderGets431Status) {
  IoThreads io;
  bool called = false;
  auto server = testing::start_server(io.io(), {}, [&](std::shared_ptr<Exchange> ex) {
    called = true;
    ex->respond(Response::text(200, "no"));
  });
  RawClient client(server->port());
  client.send(get_request("/", "X-Big: " + std::string(70 * 1024, 'a') + "\r\n"));
  auto res = client.read_response();
  EXPECT_EQ(res.result_int(), 431u);
  auto status = status_json(res.body());
  EXPECT_EQ(status["kind"], "Status");
  EXPECT_EQ(status["code"], 431);
  EXPECT_EQ(status["reason"], "RequestHeaderFieldsTooLarge");
  EXPECT_FALSE(called);
  EXPECT_TRUE(client.closed_within(2s));
}

TEST(ServerTest, OversizedBodyGets413Status) {
  IoThreads io;
  auto server = testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    ex->read_body(1024, [ex](api::Expected<std::string> body) {
      if (!body) return ex->respond_error(body.error());
      ex->respond(Response::text(200, "got " + std::to_string(body->size())));
    });
  });
  {
    RawClient client(server->port());
    client.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" +
                std::string(4096, 'b'));
    auto res = client.read_response();
    EXPECT_EQ(res.result_int(), 413u);
    auto status = status_json(res.body());
    EXPECT_EQ(status["code"], 413);
    EXPECT_EQ(status["reason"], "RequestEntityTooLarge");
  }
  {
    // Chunked bodies have no Content-Length up front: the limit applies while reading.
    RawClient client(server->port());
    std::string chunk(800, 'c');
    client.send("POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" + chunk +
                "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n");
    auto res = client.read_response();
    EXPECT_EQ(res.result_int(), 413u);
  }
  {
    RawClient client(server->port());
    client.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789");
    auto res = client.read_response();
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "got 10");
  }
}

TEST(ServerTest, ExpectContinueIsAnswered) {
  IoThreads io;
  auto server = testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    ex->read_body(1 << 20, [ex](api::Expected<std::string> body) {
      ex->respond(Response::text(200, body ? *body : "error"));
    });
  });
  RawClient client(server->port());
  client.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  std::string interim = client.read_until("\r\n\r\n");
  EXPECT_EQ(interim.rfind("HTTP/1.1 100 Continue", 0), 0u) << interim;
  client.send("hello");
  auto res = client.read_response();
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "hello");
}

TEST(ServerTest, SlowlorisIsCutWhileOthersAreServed) {
  IoThreads io;
  ServerOptions options;
  options.header_timeout_ms = 400ms;
  auto server = testing::start_server(io.io(), options, echo_path_handler());
  RawClient slow(server->port());
  auto started = std::chrono::steady_clock::now();
  std::string header = "GET /slow HTTP/1.1\r\nHost: t\r\nX-Drip: ";
  bool cut = false;
  for (int i = 0; i < 30 && !cut; ++i) {
    boost::system::error_code ec;
    net::write(slow.socket(), net::buffer(header.substr(0, 1)), ec);
    if (ec) {
      cut = true;
      break;
    }
    header = header.substr(1).empty() ? "a" : header.substr(1);
    if (i == 2) {
      // Another client is served normally while the slow one is still dripping.
      RawClient fast(server->port());
      fast.send(get_request("/fast"));
      auto res = fast.read_response();
      EXPECT_EQ(res.result_int(), 200u);
    }
    cut = slow.closed_within(50ms);
  }
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(cut) << "slow client was never disconnected";
  EXPECT_GE(elapsed, 350ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST(ServerTest, IdleKeepAliveConnectionIsClosed) {
  IoThreads io;
  ServerOptions options;
  options.idle_timeout_ms = 200ms;
  auto server = testing::start_server(io.io(), options, echo_path_handler());
  RawClient client(server->port());
  client.send(get_request("/"));
  EXPECT_EQ(client.read_response().result_int(), 200u);
  EXPECT_TRUE(client.closed_within(2s));
}

TEST(ServerTest, MaxConnectionsAnswers503Status) {
  IoThreads io;
  ServerOptions options;
  options.max_connections = 2;
  auto server = testing::start_server(io.io(), options, echo_path_handler());
  RawClient a(server->port());
  RawClient b(server->port());
  // Make sure both are accepted and counted before the third arrives.
  a.send(get_request("/a"));
  EXPECT_EQ(a.read_response().result_int(), 200u);
  b.send(get_request("/b"));
  EXPECT_EQ(b.read_response().result_int(), 200u);
  RawClient c(server->port());
  auto res = c.read_response();
  EXPECT_EQ(res.result_int(), 503u);
  auto status = status_json(res.body());
  EXPECT_EQ(status["reason"], "ServiceUnavailable");
  EXPECT_EQ(status["code"], 503);
  EXPECT_EQ(res[bhttp::field::retry_after], "1");
  EXPECT_TRUE(c.closed_within(3s));
  // The first two still work.
  a.send(get_request("/again"));
  EXPECT_EQ(a.read_response().result_int(), 200u);
}

TEST(ServerTest, TlsWithSelfSignedCertificate) {
  auto dir = std::filesystem::temp_directory_path() / ("dpa-tls-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::string cert = (dir / "tls.crt").string(), key = (dir / "tls.key").string();
  ASSERT_TRUE(ensure_self_signed_certificate(cert, key).ok());
  ASSERT_TRUE(std::filesystem::exists(cert));
  EXPECT_EQ(std::filesystem::status(key).permissions() & std::filesystem::perms::group_read,
            std::filesystem::perms::none);

  IoThreads io;
  ServerOptions options;
  options.secure_port = 0;
  options.tls_cert_file = cert;
  options.tls_key_file = key;
  auto server = testing::start_server(io.io(), options, [](std::shared_ptr<Exchange> ex) {
    ex->respond(Response::text(200, ex->is_tls() ? "secure" : "plain"));
  });
  ASSERT_GT(server->secure_port(), 0);
  EXPECT_EQ(server->port(), -1);

  net::io_context cio;
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.load_verify_file(cert);
  ctx.set_verify_mode(net::ssl::verify_peer);
  net::ssl::stream<testing::tcp::socket> stream(cio, ctx);
  SSL_set1_host(stream.native_handle(), "localhost");
  SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
  stream.next_layer().connect(testing::tcp::endpoint(net::ip::make_address("127.0.0.1"),
                                                     static_cast<unsigned short>(server->secure_port())));
  stream.handshake(net::ssl::stream_base::client);
  std::string req = get_request("/");
  net::write(stream, net::buffer(req));
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(stream, buffer, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "secure");

  // A bad certificate path is a start() error, not a crash.
  ServerOptions bad = options;
  bad.tls_cert_file = (dir / "missing.crt").string();
  Server broken(io.io(), bad, echo_path_handler());
  auto started = broken.start();
  EXPECT_FALSE(started.ok());
  std::filesystem::remove_all(dir);
}

TEST(ServerTest, PortInUseIsAnError) {
  IoThreads io;
  auto first = testing::start_server(io.io(), {}, echo_path_handler());
  ServerOptions options;
  options.port = first->port();
  Server second(io.io(), options, echo_path_handler());
  auto started = second.start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().message.find("cannot listen"), std::string::npos);
}

// Parses the chunked framing of `raw` (after the head) into chunk payloads.
std::vector<std::string> chunks_of(const std::string& raw) {
  std::vector<std::string> out;
  std::size_t pos = raw.find("\r\n\r\n");
  if (pos == std::string::npos) return out;
  pos += 4;
  while (pos < raw.size()) {
    std::size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    std::size_t size = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    out.push_back(raw.substr(eol + 2, size));
    if (size == 0) break;
    pos = eol + 2 + size + 2;
  }
  return out;
}

TEST(ServerTest, StreamedChunksArriveAsTheyAreWritten) {
  IoThreads io;
  auto server = testing::start_server(
      io.io(), {},
      testing::paced_stream_handler(
          [](int i) { return "{\"event\":" + std::to_string(i) + "}\n"; }, 3, 150ms));
  RawClient client(server->port());
  client.send(get_request("/watch"));
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  std::string all;
  while (all.find("0\r\n\r\n") == std::string::npos) {
    std::string s = client.read_some();
    ASSERT_FALSE(s.empty());
    if (s.find("{\"event\"") != std::string::npos) arrivals.push_back(std::chrono::steady_clock::now());
    all += s;
  }
  EXPECT_NE(all.find("Transfer-Encoding: chunked"), std::string::npos);
  auto chunks = chunks_of(all);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0], "{\"event\":0}\n");
  EXPECT_EQ(chunks[2], "{\"event\":2}\n");
  EXPECT_EQ(chunks[3], "");
  // Each event reached the client on its own, ~150 ms apart, not buffered until the end.
  ASSERT_EQ(arrivals.size(), 3u);
  EXPECT_GE(arrivals[1] - arrivals[0], 100ms);
  EXPECT_GE(arrivals[2] - arrivals[1], 100ms);
}

TEST(ServerTest, ClientGoneFiresOnClose) {
  IoThreads io;
  std::promise<void> closed;
  auto server = testing::start_server(io.io(), {}, [&](std::shared_ptr<Exchange> ex) {
    ex->on_close([&closed] { closed.set_value(); });
    ex->begin_stream({});
    ex->write("first\n");
  });
  {
    RawClient client(server->port());
    client.send(get_request("/watch"));
    client.read_until("first");
  }
  EXPECT_EQ(closed.get_future().wait_for(3s), std::future_status::ready);
}

TEST(ServerTest, GracefulShutdownFinishesInFlightAndEndsStreams) {
  IoThreads io;
  std::atomic<bool> stream_closed{false};
  auto server = testing::start_server(io.io(), {}, [&](std::shared_ptr<Exchange> ex) {
    if (ex->path() == "/slow") {
      auto timer = std::make_shared<net::steady_timer>(ex->executor(), 400ms);
      timer->async_wait([ex, timer](boost::system::error_code) {
        ex->respond(Response::text(200, "finished"));
      });
    } else if (ex->path() == "/watch") {
      // A streaming handler keeps its exchange until the stream ends (here: until it is closed);
      // one it drops is abandoned, and the server cuts it.
      ex->on_close([&stream_closed, ex] { stream_closed = true; });
      ex->begin_stream({});
      ex->write("event\n");
    } else {
      ex->respond(Response::text(200, "ok"));
    }
  });
  RawClient slow(server->port()), watch(server->port()), idle(server->port());
  idle.send(get_request("/"));
  EXPECT_EQ(idle.read_response().result_int(), 200u);
  watch.send(get_request("/watch"));
  std::string watch_bytes = watch.read_until("event");
  slow.send(get_request("/slow"));
  std::this_thread::sleep_for(100ms);  // the slow request is in flight

  std::promise<void> done;
  server->shutdown(5s, [&done] { done.set_value(); });

  auto res = slow.read_response();
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "finished");
  EXPECT_FALSE(res.keep_alive());
  watch_bytes += watch.read_until("0\r\n\r\n");
  EXPECT_NE(watch_bytes.find("0\r\n\r\n"), std::string::npos);  // terminating chunk
  EXPECT_TRUE(idle.closed_within(2s));
  ASSERT_EQ(done.get_future().wait_for(3s), std::future_status::ready);
  EXPECT_TRUE(stream_closed);
  EXPECT_EQ(server->open_connections(), 0u);
  // No new connections after shutdown.
  boost::system::error_code ec;
  net::io_context cio;
  testing::tcp::socket s(cio);
  s.connect(testing::tcp::endpoint(net::ip::make_address("127.0.0.1"),
                                   static_cast<unsigned short>(server->port())),
            ec);
  EXPECT_TRUE(ec);
}

TEST(ServerTest, ObserverSeesEveryRequest) {
  IoThreads io;
  std::mutex mu;
  std::vector<std::pair<std::string, int>> seen;
  ServerOptions options;
  options.port = 0;
  options.access_log = false;
  Server server(io.io(), options, [](std::shared_ptr<Exchange> ex) {
    ex->respond_error(api::ApiError::not_found("nothing at " + std::string(ex->path())));
  });
  server.set_observer([&](const RequestRecord& r) {
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(std::string(r.method) + " " + std::string(r.path), r.status);
  });
  ASSERT_TRUE(server.start().ok());
  RawClient client(server.port());
  client.send(get_request("/a?x=1"));
  auto res = client.read_response();
  EXPECT_EQ(res.result_int(), 404u);
  EXPECT_EQ(status_json(res.body())["reason"], "NotFound");
  std::this_thread::sleep_for(50ms);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, "GET /a");
  EXPECT_EQ(seen[0].second, 404);
}

TEST(ServerTest, QueryParameters) {
  IoThreads io;
  auto server = testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    std::string out = std::string(ex->query()) + "|" + ex->query_param("labelSelector") + "|" +
                      (ex->has_query_param("watch") ? "w" : "-") + "|" +
                      (ex->has_query_param("missing") ? "m" : "-");
    ex->respond(Response::text(200, out));
  });
  RawClient client(server->port());
  client.send(get_request("/apis?watch=true&labelSelector=app%3Dweb%2Ctier+x"));
  EXPECT_EQ(client.read_response().body(),
            "watch=true&labelSelector=app%3Dweb%2Ctier+x|app=web,tier x|w|-");
}

}  // namespace
}  // namespace dpa::http

// --- containment and framing (DESIGN §8) ---------------------------------------------------------

namespace dpa::http {
namespace {

nlohmann::json status_of(const boost::beast::http::response<boost::beast::http::string_body>& res) {
  return nlohmann::json::parse(res.body(), nullptr, false);
}

TEST(ContainmentTest, HandlerThatThrowsGets500AndTheServerGoesOn) {
  IoThreads io(1);
  const auto before = obs::escaped_exceptions();
  auto server = testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    if (ex->path() == "/throw") throw std::runtime_error("handler bug");
    if (ex->path() == "/throw-later") {
      // The exception escapes a completion handler on the I/O thread, after the handler returned.
      net::post(ex->executor(), [ex] { throw std::out_of_range("callback bug"); });
      return;
    }
    ex->respond(Response::text(200, "ok"));
  });
  for (const char* path : {"/throw", "/throw-later"}) {
    RawClient client(server->port());
    client.send(get_request(path));
    auto res = client.read_response();
    EXPECT_EQ(res.result_int(), 500u) << path;
    auto status = status_of(res);
    EXPECT_EQ(status["kind"], "Status");
    EXPECT_EQ(status["reason"], "InternalError");
    EXPECT_EQ(status["code"], 500);
  }
  RawClient after(server->port());
  after.send(get_request("/"));
  EXPECT_EQ(after.read_response().result_int(), 200u);
  EXPECT_EQ(obs::escaped_exceptions() - before, 4u);  // each exception, and each dropped request
}

TEST(ContainmentTest, AbandonedStreamIsCut) {
  IoThreads io(1);
  auto server = testing::start_server(io.io(), {}, [](std::shared_ptr<Exchange> ex) {
    ex->begin_stream({});
    ex->write("first\n");
    // Returns without keeping the exchange: nobody will ever finish this stream.
  });
  RawClient client(server->port());
  client.send(get_request("/watch"));
  client.read_until("first");
  EXPECT_TRUE(client.closed_within(3s));
}

struct FramingCase {
  const char* name;
  std::string request;
  unsigned code;
};

TEST(FramingTest, AmbiguousRequestsAreRefusedAndTheConnectionCloses) {
  IoThreads io(1);
  std::atomic<int> handled{0};
  auto server = testing::start_server(io.io(), {}, [&](std::shared_ptr<Exchange> ex) {
    ++handled;
    ex->respond(Response::text(200, "ok"));
  });
  const std::vector<FramingCase> cases = {
      // RFC 9112 §6.3: a final coding other than chunked leaves the length unknown.
      {"identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"gzip only", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      // §6.1: a coding we do not implement.
      {"gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501},
      {"split codings", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
      {"length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
      {"no host", "GET / HTTP/1.1\r\n\r\n", 400},
      // One request, one meaning: authorization and routing must see the path the upstream sees.
      {"absolute form", "GET http://x/apis/g/v/r HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"dot segments", "GET /apis/g/v/namespaces/n/datasources/u/proxy/../../etc HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"encoded dot segments", "GET /apis/g/%2e%2E/x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"single dot", "GET /a/./b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
  };
  for (const auto& c : cases) {
    RawClient client(server->port());
    client.send(c.request);
    auto res = client.read_response();
    EXPECT_EQ(res.result_int(), c.code) << c.name;
    EXPECT_EQ(status_of(res)["code"], c.code) << c.name;
    EXPECT_FALSE(res.keep_alive()) << c.name;
    EXPECT_TRUE(client.closed_within(2s)) << c.name;
  }
  EXPECT_EQ(handled.load(), 0);
  // HTTP/1.0 without Host is still served, and so are names that merely contain dots.
  RawClient old(server->port());
  old.send("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(old.read_response().result_int(), 200u);
  RawClient dots(server->port());
  dots.send(get_request("/apis/aggregation.grafana.app/v0alpha1/x/...a./.hidden"));
  EXPECT_EQ(dots.read_response().result_int(), 200u);
  EXPECT_EQ(handled.load(), 2);
}

TEST(FramingTest, RequestBodyHasADeadline) {
  IoThreads io(1);
  ServerOptions options;
  options.body_timeout_ms = 300ms;
  std::promise<bool> body_ok;
  auto server = testing::start_server(io.io(), options, [&](std::shared_ptr<Exchange> ex) {
    ex->read_body(1 << 20, [&body_ok, ex](api::Expected<std::string> body) {
      body_ok.set_value(body.ok());
      ex->respond(Response::text(200, "ok"));
    });
  });
  RawClient client(server->port());
  client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
  auto result = body_ok.get_future();
  ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(result.get());
  EXPECT_TRUE(client.closed_within(2s));
}

}  // namespace
}  // namespace dpa::http
