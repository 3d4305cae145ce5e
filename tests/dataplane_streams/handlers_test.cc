// The streaming handlers over the fake plugin: resources relayed chunk by chunk, subscriptions as
// NDJSON and WebSocket sharing one RunStream, publish, and the datasource proxy against a real
// local HTTP server.
#include "aggregator/dataplane/proxy_handler.h"
#include "aggregator/dataplane/resource_handler.h"
#include "aggregator/dataplane/stream_handler.h"
#include "aggregator/dataplane/stream_hub.h"
#include "aggregator/dataplane/websocket.h"

#include "tests/dataplane/fakes.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>

#include <atomic>
#include <thread>

namespace dpa::dataplane {
namespace {

using namespace std::chrono_literals;
using boost::beast::http::verb;
using testing::FakePluginClient;
using testing::FakeResourceStream;
using testing::FakeRunStream;

plugin::Datasource make_datasource(const std::string& uid, const std::string& type,
                                   const std::string& url = "http://127.0.0.1:1") {
  plugin::Datasource ds;
  ds.uid = uid;
  ds.name = uid + "-name";
  ds.type = type;
  ds.url = url;
  ds.org_id = 1;
  return ds;
}

pluginv2::CallResourceResponse resource_message(
    int code, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
  pluginv2::CallResourceResponse m;
  m.set_code(code);
  m.set_body(std::move(body));
  for (auto& [k, v] : headers) (*m.mutable_headers())[k].add_values(v);
  return m;
}

pluginv2::StreamPacket packet(std::string data) {
  pluginv2::StreamPacket p;
  p.set_data(std::move(data));
  return p;
}

std::optional<std::string> find_header(const std::vector<std::pair<std::string, std::string>>& h,
                                       std::string_view name) {
  for (const auto& [k, v] : h) {
    if (boost::beast::iequals(k, name)) return v;
  }
  return std::nullopt;
}

class HandlersTest : public ::testing::Test {
 protected:
  HandlersTest() { thread_ = std::thread([this] { io_.run(); }); }
  ~HandlersTest() override {
    if (hub_) hub_->stop_all();
    work_.reset();
    thread_.join();
  }

  void SetUp() override {
    plugin_ = host_.add("testds");
    datasources_ = std::make_shared<const plugin::DatasourceSet>(std::vector<plugin::Datasource>{
        make_datasource("ds1", "testds"), make_datasource("other", "otherds"),
        make_datasource("nourl", "testds", "")});
    options_.max_body_bytes = 1024;
    make_context();
    table_ = RouteTable::build({ServiceEntry{
        "v1.testds.example.com",
        {"testds",
         "datasource",
         "testds.example.com",
         "v1",
         {{"route", "", ""}, {"stream", "", ""}, {"datasource-proxy", "", ""},
          {"route", "GET", "/custom/{name}"}}}}});
  }

  void make_context() {
    context_ = std::make_shared<const DataPlaneContext>(
        DataPlaneContext{host_, [this] { return datasources_; }, options_});
    hub_ = StreamHub::create(io_.get_executor());
  }

  RouteMatch match(verb method, const std::string& target) {
    const std::string path = target.substr(0, target.find('?'));
    auto m = table_->match(std::string(boost::beast::http::to_string(method)), path);
    EXPECT_TRUE(m.has_value()) << target;
    return m ? *m : RouteMatch{};
  }

  std::shared_ptr<testing::FakeExchange> resource_request(
      verb method, const std::string& target, std::string body = {},
      std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto exchange = testing::make_exchange(method, target, std::move(body), std::move(headers));
    ResourceHandler(context_).handle(exchange, match(method, target));
    return exchange;
  }

  std::shared_ptr<testing::FakeExchange> stream_request(
      verb method, const std::string& target, std::string body = {},
      std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto exchange = testing::make_exchange(method, target, std::move(body), std::move(headers));
    StreamHandler(context_, hub_).handle(exchange, match(method, target));
    return exchange;
  }

  static bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(2ms);
    }
    return pred();
  }

  const std::string base_ = "/apis/testds.example.com/v1/namespaces/default/datasources/ds1";
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  testing::FakePluginHost host_;
  std::shared_ptr<FakePluginClient> plugin_;
  std::shared_ptr<const plugin::DatasourceSet> datasources_;
  DataPlaneOptions options_;
  std::shared_ptr<const DataPlaneContext> context_;
  std::shared_ptr<StreamHub> hub_;
  std::shared_ptr<const RouteTable> table_;
};

// --- resources -------------------------------------------------------------------------------

TEST_F(HandlersTest, ResourceChunksArriveInOrderWithHeadFromFirstMessage) {
  // Set on the plugin's thread, read on this one: atomic, so the request it holds is seen whole.
  std::atomic<std::shared_ptr<FakeResourceStream>> captured;
  plugin_->on_call_resource = [&](std::shared_ptr<FakeResourceStream> s) { captured.store(s); };
  auto exchange = resource_request(
      verb::post, base_ + "/resources/echo/a%20b?x=1&y=2", "payload",
      {{"Cookie", "grafana_session=secret"}, {"Authorization", "Bearer user-token"},
       {"x-custom-header", "v1"}, {"Connection", "keep-alive, X-Hop"}, {"X-Hop", "gone"}});
  ASSERT_TRUE(eventually([&] { return captured.load() != nullptr; }));
  const std::shared_ptr<FakeResourceStream> stream = captured.load();

  const auto& req = stream->request;
  EXPECT_EQ(req.path(), "echo/a b");
  EXPECT_EQ(req.url(), "echo/a%20b?x=1&y=2");
  EXPECT_EQ(req.method(), "POST");
  EXPECT_EQ(req.body(), "payload");
  EXPECT_EQ(req.plugincontext().datasourceinstancesettings().uid(), "ds1");
  EXPECT_EQ(req.headers().count("Cookie"), 0u);
  EXPECT_EQ(req.headers().count("Authorization"), 0u);
  EXPECT_EQ(req.headers().count("X-Hop"), 0u);
  EXPECT_EQ(req.headers().count("Connection"), 0u);
  ASSERT_EQ(req.headers().count("X-Custom-Header"), 1u);  // Go-canonical name
  EXPECT_EQ(req.headers().at("X-Custom-Header").values(0), "v1");

  stream->send(resource_message(201, "one", {{"x-plugin", "a"}, {"set-cookie", "s=1"}}));
  ASSERT_TRUE(exchange->wait_chunks(1));  // the first chunk is out before the second exists
  stream->send(resource_message(500, "two", {{"x-ignored", "b"}}));
  ASSERT_TRUE(exchange->wait_chunks(2));
  stream->send(resource_message(0, "three"));
  stream->finish();
  ASSERT_TRUE(exchange->wait());

  auto head = exchange->stream_head();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 201);
  EXPECT_EQ(find_header(head->headers, "X-Plugin"), "a");
  EXPECT_EQ(find_header(head->headers, "Content-Type"), "application/json");
  EXPECT_FALSE(find_header(head->headers, "Set-Cookie"));
  EXPECT_FALSE(find_header(head->headers, "X-Ignored"));
  EXPECT_EQ(exchange->chunks(), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_TRUE(exchange->finished());
}

TEST_F(HandlersTest, ResourceKeepsPluginContentTypeAndAllowedCookies) {
  datasources_ = std::make_shared<const plugin::DatasourceSet>([] {
    auto ds = make_datasource("ds1", "testds");
    ds.json_data = {{"keepCookies", {"keep_me"}}, {"oauthPassThru", true}};
    return std::vector<plugin::Datasource>{ds};
  }());
  plugin_->on_call_resource = [](std::shared_ptr<FakeResourceStream> s) {
    s->send(resource_message(200, "hello", {{"Content-Type", "text/plain"}}));
    s->finish();
  };
  std::shared_ptr<FakeResourceStream> seen;
  auto exchange = resource_request(verb::get, base_ + "/resources/x", "",
                                   {{"Cookie", "a=1; keep_me=2; b=3"},
                                    {"Authorization", "Bearer t"}});
  ASSERT_TRUE(exchange->wait());
  seen = plugin_->resource_streams().at(0);
  EXPECT_EQ(seen->request.headers().at("Cookie").values(0), "keep_me=2");
  EXPECT_EQ(seen->request.headers().at("Authorization").values(0), "Bearer t");
  EXPECT_EQ(find_header(exchange->stream_head()->headers, "Content-Type"), "text/plain");
}

TEST_F(HandlersTest, ResourceWithoutMessagesIs502) {
  plugin_->on_call_resource = [](std::shared_ptr<FakeResourceStream> s) { s->finish(); };
  auto exchange = resource_request(verb::get, base_ + "/resources/nothing");
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 502);
  auto body = nlohmann::json::parse(exchange->body());
  EXPECT_EQ(body["kind"], "Status");
  EXPECT_EQ(body["message"], "received empty resource response");
}

TEST_F(HandlersTest, ResourceUnimplementedIs404AndUnavailableIs503) {
  auto exchange = resource_request(verb::get, base_ + "/resources/x");  // no handler: 501
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 404);

  host_.set_status("testds", plugin::PluginState::kUnavailable, "restarting");
  exchange = resource_request(verb::get, base_ + "/resources/x");
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 503);

  host_.set_status("testds", plugin::PluginState::kRunning);
  plugin_->on_call_resource = [](std::shared_ptr<FakeResourceStream> s) {
    s->finish(api::ApiError::unavailable("plugin testds unavailable: connection refused"));
  };
  exchange = resource_request(verb::get, base_ + "/resources/x");
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 503);
}

TEST_F(HandlersTest, ResourceErrorsBeforeThePluginIsCalled) {
  auto exchange = resource_request(verb::post, base_ + "/resources/x", std::string(2048, 'x'));
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 413);

  exchange = resource_request(
      verb::get, "/apis/testds.example.com/v1/namespaces/default/datasources/nope/resources/x");
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 404);

  exchange = resource_request(
      verb::get, "/apis/testds.example.com/v1/namespaces/default/datasources/other/resources/x");
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 400);
  EXPECT_TRUE(plugin_->resource_streams().empty());
}

TEST_F(HandlersTest, ResourceCallIsCancelledWhenTheClientLeaves) {
  std::atomic<std::shared_ptr<FakeResourceStream>> captured;
  plugin_->on_call_resource = [&](std::shared_ptr<FakeResourceStream> s) {
    captured.store(s);
    s->send(resource_message(200, "first"));
  };
  auto exchange = resource_request(verb::get, base_ + "/resources/stream");
  ASSERT_TRUE(exchange->wait_chunks(1));
  exchange->close_client();
  ASSERT_TRUE(eventually([&] { return captured.load()->cancelled(); }));
}

TEST_F(HandlersTest, ResourceNoContentHasNoBodyAndNoContentType) {
  plugin_->on_call_resource = [](std::shared_ptr<FakeResourceStream> s) {
    s->send(resource_message(204, ""));
    s->finish();
  };
  auto exchange = resource_request(verb::delete_, base_ + "/resources/item/1");
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 204);
  EXPECT_EQ(exchange->response_header("Content-Type"), "");
  EXPECT_EQ(exchange->body(), "");
}

TEST_F(HandlersTest, RouteServiceCallsResourceWithItsPath) {
  plugin_->on_call_resource = [](std::shared_ptr<FakeResourceStream> s) {
    s->send(resource_message(200, "{}"));
    s->finish();
  };
  auto exchange = resource_request(
      verb::get, "/apis/testds.example.com/v1/namespaces/default/custom/thing?q=1");
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->stream_head()->status, 200);
  const auto& req = plugin_->resource_streams().at(0)->request;
  EXPECT_EQ(req.path(), "custom/thing");
  EXPECT_EQ(req.url(), "custom/thing?q=1");
  EXPECT_FALSE(req.plugincontext().has_datasourceinstancesettings());
}

// --- streams ---------------------------------------------------------------------------------

class StreamsTest : public HandlersTest {
 protected:
  void SetUp() override {
    HandlersTest::SetUp();
    plugin_->on_subscribe_stream = [](const pluginv2::SubscribeStreamRequest& req)
        -> api::Expected<pluginv2::SubscribeStreamResponse> {
      pluginv2::SubscribeStreamResponse r;
      if (req.path() == "missing") {
        r.set_status(pluginv2::SubscribeStreamResponse::NOT_FOUND);
      } else if (req.path() == "denied") {
        r.set_status(pluginv2::SubscribeStreamResponse::PERMISSION_DENIED);
      } else {
        r.set_status(pluginv2::SubscribeStreamResponse::OK);
        r.set_data("{\"schema\":\n{\"fields\":[]}}");
      }
      return r;
    };
    plugin_->on_run_stream = [this](std::shared_ptr<FakeRunStream> s) {
      std::lock_guard lock(runs_mutex_);
      runs_.push_back(s);
    };
  }
  std::shared_ptr<FakeRunStream> run(std::size_t i) {
    std::lock_guard lock(runs_mutex_);
    return i < runs_.size() ? runs_[i] : nullptr;
  }
  std::size_t run_count() {
    std::lock_guard lock(runs_mutex_);
    return runs_.size();
  }

  std::mutex runs_mutex_;
  std::vector<std::shared_ptr<FakeRunStream>> runs_;
};

TEST_F(StreamsTest, TwoNdjsonSubscribersShareOneRunStream) {
  auto a = stream_request(verb::get, base_ + "/stream/counter?data=%7B%22i%22%3A1%7D");
  auto b = stream_request(verb::get, base_ + "/stream/counter?data=%7B%22i%22%3A1%7D");
  ASSERT_TRUE(a->wait_chunks(1));
  ASSERT_TRUE(b->wait_chunks(1));
  ASSERT_TRUE(eventually([&] { return hub_->stats().subscribers == 2; }));
  EXPECT_EQ(run_count(), 1u);
  EXPECT_EQ(run(0)->request.path(), "counter");
  EXPECT_EQ(run(0)->request.data(), "{\"i\":1}");
  EXPECT_EQ(plugin_->subscribe_requests().at(0).data(), "{\"i\":1}");
  EXPECT_EQ(a->stream_head()->status, 200);
  EXPECT_EQ(find_header(a->stream_head()->headers, "Content-Type"), "application/x-ndjson");
  // The subscribe response data comes first, on one line.
  EXPECT_EQ(a->chunks().at(0), "{\"schema\": {\"fields\":[]}}\n");

  run(0)->send(packet("{\"n\":1}"));
  run(0)->send(packet("{\"n\":\n2}"));
  ASSERT_TRUE(a->wait_chunks(3));
  ASSERT_TRUE(b->wait_chunks(3));
  EXPECT_EQ(a->chunks().at(1), "{\"n\":1}\n");
  EXPECT_EQ(a->chunks().at(2), "{\"n\": 2}\n");
  EXPECT_EQ(b->chunks(), a->chunks());

  a->close_client();
  ASSERT_TRUE(eventually([&] { return hub_->stats().subscribers == 1; }));
  EXPECT_FALSE(run(0)->cancelled());
  b->close_client();
  ASSERT_TRUE(eventually([&] { return run(0)->cancelled(); }));
  EXPECT_EQ(hub_->stats().channels, 0u);
}

TEST_F(StreamsTest, SubscribeRefusalsAreStatusErrors) {
  auto missing = stream_request(verb::get, base_ + "/stream/missing");
  ASSERT_TRUE(missing->wait());
  EXPECT_EQ(missing->status(), 404);
  auto denied = stream_request(verb::get, base_ + "/stream/denied");
  ASSERT_TRUE(denied->wait());
  EXPECT_EQ(denied->status(), 403);
  EXPECT_EQ(nlohmann::json::parse(denied->body())["reason"], "Forbidden");
  EXPECT_EQ(run_count(), 0u);

  plugin_->on_subscribe_stream = nullptr;  // the plugin has no Stream service
  auto unimplemented = stream_request(verb::get, base_ + "/stream/counter");
  ASSERT_TRUE(unimplemented->wait());
  EXPECT_EQ(unimplemented->status(), 404);
}

TEST_F(StreamsTest, EofFinishesSubscribersAndDataComesFromTheBody) {
  auto a = stream_request(verb::get, base_ + "/stream/counter", "{\"from\":\"body\"}",
                          {{"Content-Length", "17"}});
  ASSERT_TRUE(eventually([&] { return run_count() == 1; }));
  EXPECT_EQ(run(0)->request.data(), "{\"from\":\"body\"}");
  run(0)->send(packet("{\"last\":true}"));
  run(0)->finish();
  ASSERT_TRUE(a->wait());
  EXPECT_TRUE(a->finished());
  EXPECT_EQ(a->chunks().back(), "{\"last\":true}\n");
}

TEST_F(StreamsTest, FailedRunStreamIsReRun) {
  auto a = stream_request(verb::get, base_ + "/stream/counter");
  ASSERT_TRUE(eventually([&] { return run_count() == 1; }));
  run(0)->finish(api::ApiError::bad_gateway("plugin testds failed: boom"));
  ASSERT_TRUE(eventually([&] { return run_count() == 2; }));  // after 100 ms back-off
  run(1)->send(packet("{\"again\":true}"));
  ASSERT_TRUE(a->wait_chunks(2));
  EXPECT_EQ(a->chunks().back(), "{\"again\":true}\n");
  EXPECT_FALSE(a->finished());
}

TEST_F(StreamsTest, PublishReachesSubscribers) {
  plugin_->on_publish_stream = [](const pluginv2::PublishStreamRequest& req)
      -> api::Expected<pluginv2::PublishStreamResponse> {
    pluginv2::PublishStreamResponse r;
    if (req.path() == "denied") {
      r.set_status(pluginv2::PublishStreamResponse::PERMISSION_DENIED);
      return r;
    }
    r.set_status(pluginv2::PublishStreamResponse::OK);
    r.set_data(req.data());
    return r;
  };
  auto a = stream_request(verb::get, base_ + "/stream/echo");
  auto b = stream_request(verb::get, base_ + "/stream/echo?data=other");
  ASSERT_TRUE(eventually([&] { return hub_->stats().subscribers == 2; }));
  EXPECT_EQ(run_count(), 2u);  // different subscription data: two channels

  auto publish = stream_request(verb::post, base_ + "/stream/echo", "{\"hello\":\"world\"}");
  ASSERT_TRUE(publish->wait());
  EXPECT_EQ(publish->status(), 200);
  EXPECT_EQ(publish->body(), "{}");
  EXPECT_EQ(plugin_->publish_requests().at(0).data(), "{\"hello\":\"world\"}");
  ASSERT_TRUE(a->wait_chunks(2));
  ASSERT_TRUE(b->wait_chunks(2));
  EXPECT_EQ(a->chunks().back(), "{\"hello\":\"world\"}\n");
  EXPECT_EQ(b->chunks().back(), "{\"hello\":\"world\"}\n");

  auto denied = stream_request(verb::post, base_ + "/stream/denied", "{}");
  ASSERT_TRUE(denied->wait());
  EXPECT_EQ(denied->status(), 403);
}

TEST_F(StreamsTest, StopAllEndsSubscribersAndRefusesNewOnes) {
  auto a = stream_request(verb::get, base_ + "/stream/counter");
  ASSERT_TRUE(eventually([&] { return hub_->stats().subscribers == 1; }));
  // The plugin's RunStream starts asynchronously after the subscription: wait for it, or
  // stop_all may come first and run(0) below is null.
  ASSERT_TRUE(eventually([&] { return run_count() == 1; }));
  hub_->stop_all();
  ASSERT_TRUE(a->wait());
  EXPECT_TRUE(a->finished());
  EXPECT_TRUE(eventually([&] { return run(0)->cancelled(); }));
  auto late = stream_request(verb::get, base_ + "/stream/counter");
  ASSERT_TRUE(late->wait());
  EXPECT_EQ(late->status(), 503);
}

TEST_F(StreamsTest, WebSocketSubscriberGetsTextFrames) {
  auto ndjson = stream_request(verb::get, base_ + "/stream/counter");
  ASSERT_TRUE(eventually([&] { return hub_->stats().subscribers == 1; }));

  const std::string target = base_ + "/stream/counter";
  auto ws = testing::make_exchange(verb::get, target, "",
                                   {{"Connection", "Upgrade"},
                                    {"Upgrade", "websocket"},
                                    {"Sec-WebSocket-Version", "13"},
                                    {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}});
  StreamHandler(context_, hub_).handle(ws, match(verb::get, target));
  ASSERT_TRUE(ws->wait_upgraded());
  EXPECT_EQ(ws->upgrade_head()->status, 101);
  EXPECT_EQ(find_header(ws->upgrade_head()->headers, "Sec-WebSocket-Accept"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  ASSERT_TRUE(eventually([&] { return hub_->stats().subscribers == 2; }));
  EXPECT_EQ(run_count(), 1u);  // the WebSocket joined the existing channel

  run(0)->send(packet("{\"n\":1}"));
  WsDecoder client(WsDecoder::Limits{.max_message_bytes = 1 << 20, .require_masked = false});
  std::vector<std::string> messages;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (messages.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    client.feed(ws->client_side()->take_written_by_peer(1, 100ms));
    for (WsEvent e = client.next(); e.kind != WsEvent::Kind::kNeedMore; e = client.next()) {
      if (e.kind == WsEvent::Kind::kMessage) messages.push_back(e.payload);
    }
  }
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0], "{\"schema\": {\"fields\":[]}}");
  EXPECT_EQ(messages[1], "{\"n\":1}");

  // The WebSocket client closes: it is unsubscribed, the NDJSON one keeps the channel.
  ws->client_side()->write(encode_frame(WsOpcode::kClose, close_payload(1000, ""), true,
                                      std::array<std::uint8_t, 4>{1, 2, 3, 4}),
                         {});
  ASSERT_TRUE(eventually([&] { return hub_->stats().subscribers == 1; }));
  EXPECT_FALSE(run(0)->cancelled());
  ndjson->close_client();
  ASSERT_TRUE(eventually([&] { return run(0)->cancelled(); }));
  ws->client_side()->close();
}

TEST_F(StreamsTest, BadWebSocketHandshakeIs400BeforeSubscribing) {
  auto exchange = stream_request(verb::get, base_ + "/stream/counter", "",
                                 {{"Connection", "Upgrade"},
                                  {"Upgrade", "websocket"},
                                  {"Sec-WebSocket-Version", "12"}});
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 400);
  EXPECT_TRUE(plugin_->subscribe_requests().empty());
}

// --- datasource proxy ----------------------------------------------------------------------------

// A one-request-at-a-time HTTP server on 127.0.0.1:0 that records requests and answers with a
// chunked body in two parts (or never answers, for timeout tests).
class LocalUpstream {
 public:
  LocalUpstream() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { serve(); });
  }
  ~LocalUpstream() {
    stop_ = true;
    {
      // A pooled keep-alive connection may still be open: end the blocked read on it.
      std::lock_guard lock(socket_mutex_);
      if (current_fd_ >= 0) ::shutdown(current_fd_, SHUT_RDWR);
    }
    boost::system::error_code ec;
    // Wake the accept with a throwaway connection.
    boost::asio::ip::tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }

  std::atomic<bool> hang{false};
  std::mutex mutex;
  std::vector<boost::beast::http::request<boost::beast::http::string_body>> requests;

 private:
  void serve() {
    namespace bh = boost::beast::http;
    while (!stop_) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_) return;
      {
        std::lock_guard lock(socket_mutex_);
        current_fd_ = socket.native_handle();
      }
      serve_connection(socket);
      std::lock_guard lock(socket_mutex_);
      current_fd_ = -1;
    }
  }

  void serve_connection(boost::asio::ip::tcp::socket& socket) {
    namespace bh = boost::beast::http;
    boost::system::error_code ec;
    {
      boost::beast::flat_buffer buffer;
      for (;;) {
        bh::request<bh::string_body> req;
        bh::read(socket, buffer, req, ec);
        if (ec) break;
        {
          std::lock_guard lock(mutex);
          requests.push_back(req);
        }
        if (hang) {
          std::this_thread::sleep_for(600ms);
          break;
        }
        bh::response<bh::string_body> res{bh::status::ok, 11};
        res.set(bh::field::content_type, "text/plain");
        res.set(bh::field::set_cookie, "upstream=1");
        res.set("X-Upstream", "yes");
        res.body() = "path=" + std::string(req.target());
        res.prepare_payload();
        bh::write(socket, res, ec);
        if (ec || !req.keep_alive()) break;
      }
    }
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  std::mutex socket_mutex_;
  int current_fd_ = -1;
  std::thread thread_;
};

class ProxyTest : public HandlersTest {
 protected:
  void SetUp() override {
    HandlersTest::SetUp();
    auto ds = make_datasource("ds1", "testds",
                              "http://127.0.0.1:" + std::to_string(upstream_.port()) + "/base");
    ds.basic_auth = true;
    ds.basic_auth_user = "alice";
    ds.secure_json_data["basicAuthPassword"] = "s3cret";
    // A port nobody listens on: bind one, note it, close it.
    boost::asio::ip::tcp::acceptor probe(io_, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const int closed_port = probe.local_endpoint().port();
    probe.close();
    datasources_ = std::make_shared<const plugin::DatasourceSet>(std::vector<plugin::Datasource>{
        ds, make_datasource("down", "testds", "http://127.0.0.1:" + std::to_string(closed_port)),
        make_datasource("nourl", "testds", "")});
    client_ = std::make_shared<http::HttpClient>(http::ClientOptions{});
    client_thread_ = std::thread([this] { client_io_.run(); });
  }
  void TearDown() override {
    client_work_.reset();
    client_.reset();
    client_io_.stop();
    client_thread_.join();
  }

  std::shared_ptr<testing::FakeExchange> proxy_request(
      verb method, const std::string& target, std::string body = {},
      std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto exchange = testing::make_exchange(method, target, std::move(body), std::move(headers));
    ProxyHandler(context_, client_).handle(exchange, match(method, target));
    return exchange;
  }

  LocalUpstream upstream_;
  boost::asio::io_context client_io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> client_work_ =
      boost::asio::make_work_guard(client_io_);
  std::thread client_thread_;
  std::shared_ptr<http::HttpClient> client_;
};

TEST_F(ProxyTest, ForwardsPathQueryBodyWithBasicAuth) {
  auto exchange = proxy_request(verb::post, base_ + "/proxy/api/v1/query?query=up&time=1",
                                "q=1", {{"Authorization", "Bearer caller"},
                                        {"Cookie", "grafana_session=x"},
                                        {"Content-Type", "application/x-www-form-urlencoded"},
                                        {"X-Custom", "kept"}});
  ASSERT_TRUE(exchange->wait());
  EXPECT_EQ(exchange->status(), 200) << exchange->body();
  EXPECT_EQ(exchange->body(), "path=/base/api/v1/query?query=up&time=1");
  EXPECT_EQ(exchange->response_header("X-Upstream"), "yes");
  EXPECT_EQ(exchange->response_header("Set-Cookie"), "");

  std::lock_guard lock(upstream_.mutex);
  ASSERT_EQ(upstream_.requests.size(), 1u);
  const auto& req = upstream_.requests[0];
  EXPECT_EQ(req.method(), verb::post);
  EXPECT_EQ(req.target(), "/base/api/v1/query?query=up&time=1");
  EXPECT_EQ(req.body(), "q=1");
  // base64("alice:s3cret")
  EXPECT_EQ(req[boost::beast::http::field::authorization], "Basic YWxpY2U6czNjcmV0");
  EXPECT_EQ(req.count(boost::beast::http::field::cookie), 0u);
  EXPECT_EQ(req["X-Custom"], "kept");
  EXPECT_EQ(req["X-Forwarded-For"], "127.0.0.1");
  EXPECT_EQ(req[boost::beast::http::field::content_type], "application/x-www-form-urlencoded");
}

TEST_F(ProxyTest, UpstreamErrors) {
  auto down = proxy_request(
      verb::get, "/apis/testds.example.com/v1/namespaces/default/datasources/down/proxy/x");
  ASSERT_TRUE(down->wait());
  EXPECT_EQ(down->status(), 502);
  EXPECT_EQ(nlohmann::json::parse(down->body())["reason"], "BadGateway");

  auto unknown = proxy_request(
      verb::get, "/apis/testds.example.com/v1/namespaces/default/datasources/nope/proxy/x");
  ASSERT_TRUE(unknown->wait());
  EXPECT_EQ(unknown->status(), 404);

  auto no_url = proxy_request(
      verb::get, "/apis/testds.example.com/v1/namespaces/default/datasources/nourl/proxy/x");
  ASSERT_TRUE(no_url->wait());
  EXPECT_EQ(no_url->status(), 400);

  // Dot segments would climb out of the datasource's base path (the route table already keeps
  // most of them away; the proxy checks again).
  auto climbing_match = match(verb::get, base_ + "/proxy/a/b");
  climbing_match.sub_path = "a/%2E%2E/secret";
  auto climbing = testing::make_exchange(verb::get, base_ + "/proxy/a/%2E%2E/secret");
  ProxyHandler(context_, client_).handle(climbing, climbing_match);
  ASSERT_TRUE(climbing->wait());
  EXPECT_EQ(climbing->status(), 400);

  upstream_.hang = true;
  auto slow = proxy_request(verb::get, base_ + "/proxy/slow?timeout=200ms");
  ASSERT_TRUE(slow->wait());
  EXPECT_EQ(slow->status(), 504);
}

}  // namespace
}  // namespace dpa::dataplane
