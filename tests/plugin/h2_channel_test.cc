// H2UnaryChannel against a real gRPC C++ server (the in-process fake plugin) and against sockets
// that misbehave: statuses, deadlines, multiplexing, large replies, limits and teardown.
#include "aggregator/plugin/h2_unary_channel.h"
#include "aggregator/plugin/plugin_client.h"
#include "tests/plugin/fake_plugin.h"
#include "tests/plugin/test_util.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <atomic>
#include <future>
#include <optional>
#include <thread>

namespace dpa::plugin {
namespace {
using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr const char* kQueryData = "/pluginv2.Data/QueryData";

struct Reply {
  grpc::Status status;
  std::string body;
  std::thread::id thread;
};

std::string query_request(const std::string& ref_id) {
  pluginv2::QueryDataRequest req;
  req.mutable_plugincontext()->set_pluginid("fake");
  req.add_queries()->set_refid(ref_id);
  return req.SerializeAsString();
}

Reply call(H2UnaryChannel& channel, testing::IoThreads& io, const std::string& method,
           std::string request, std::chrono::milliseconds timeout = 5s) {
  std::promise<Reply> promise;
  auto future = promise.get_future();
  channel.call(
      io.executor(), method, std::move(request), {}, timeout,
      [&promise](grpc::Status status, std::string body) {
        promise.set_value({std::move(status), std::move(body), std::this_thread::get_id()});
      });
  if (future.wait_for(10s) != std::future_status::ready) {
    ADD_FAILURE() << "no reply within 10 s";
    return {grpc::Status(grpc::StatusCode::UNKNOWN, "test: no reply"), {}, {}};
  }
  return future.get();
}

H2Target tcp_target(int port) {
  return parse_h2_target("ipv4:127.0.0.1:" + std::to_string(port));
}

TEST(H2Target, ParsesGrpcTargets) {
  auto u = parse_h2_target("unix:/tmp/plugin.sock");
  EXPECT_EQ(u.unix_path, "/tmp/plugin.sock");
  EXPECT_EQ(u.authority, "localhost");
  EXPECT_EQ(parse_h2_target("unix:///tmp/p").unix_path, "/tmp/p");
  EXPECT_FALSE(parse_h2_target("unix:relative").valid());
  auto v4 = parse_h2_target("ipv4:127.0.0.1:9000");
  EXPECT_EQ(v4.host, "127.0.0.1");
  EXPECT_EQ(v4.port, "9000");
  EXPECT_EQ(v4.authority, "127.0.0.1:9000");
  auto v6 = parse_h2_target("ipv6:[::1]:9000");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.authority, "[::1]:9000");
  EXPECT_EQ(parse_h2_target("dns:///plugin.local:7000").host, "plugin.local");
  EXPECT_EQ(parse_h2_target("dns:plugin.local:7000").port, "7000");
  EXPECT_EQ(parse_h2_target("localhost:7000").host, "localhost");
  EXPECT_FALSE(parse_h2_target("nohostport").valid());
  EXPECT_FALSE(parse_h2_target("host:").valid());
}

class H2ChannelTest : public ::testing::Test {
 protected:
  testing::InProcessFakePlugin server_;
  testing::IoThreads io_{1};
};

TEST_F(H2ChannelTest, QueryDataRoundTripOnTheCallersThread) {
  H2UnaryChannel channel(tcp_target(server_.port()), 1 << 20);
  std::thread::id io_thread;
  net::post(io_.executor(), [&] { io_thread = std::this_thread::get_id(); });
  auto reply = call(channel, io_, kQueryData, query_request("A"));
  ASSERT_TRUE(reply.status.ok()) << reply.status.error_message();
  EXPECT_EQ(reply.thread, io_thread);
  pluginv2::QueryDataResponse response;
  ASSERT_TRUE(response.ParseFromString(reply.body));
  auto frame = nlohmann::json::parse(response.responses().at("A").frames(0));
  EXPECT_EQ(frame["pid"], static_cast<int>(getpid()));
  EXPECT_EQ(frame["pluginId"], "fake");
}

TEST_F(H2ChannelTest, StatusesComeBackAsTheGrpcLibraryReportsThem) {
  H2UnaryChannel channel(tcp_target(server_.port()), 1 << 20);
  auto fail = call(channel, io_, kQueryData, query_request("fail"));
  EXPECT_EQ(fail.status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(fail.status.error_message(), "boom");

  auto text = call(channel, io_, kQueryData, query_request("fail-text"));
  EXPECT_EQ(text.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(text.status.error_message(), "bad: 100% \xE2\x9C\x97\nnext line");

  auto missing = call(channel, io_, "/pluginv2.Data/NoSuchMethod", query_request("A"));
  EXPECT_EQ(missing.status.error_code(), grpc::StatusCode::UNIMPLEMENTED);

  // A request the server cannot parse.
  auto garbage = call(channel, io_, kQueryData, std::string("\xff\xff\xff", 3));
  EXPECT_EQ(garbage.status.error_code(), grpc::StatusCode::INTERNAL)
      << garbage.status.error_message();

  // One connection served all of them.
  EXPECT_EQ(channel.connection_count(), 1u);
  EXPECT_TRUE(call(channel, io_, kQueryData, query_request("A")).status.ok());
}

TEST_F(H2ChannelTest, DeadlineCancelsTheCallAndTheConnectionGoesOn) {
  H2UnaryChannel channel(tcp_target(server_.port()), 1 << 20);
  const auto start = std::chrono::steady_clock::now();
  auto slow = call(channel, io_, kQueryData, query_request("slow"), 100ms);
  EXPECT_EQ(slow.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  auto next = call(channel, io_, kQueryData, query_request("A"));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(channel.connection_count(), 1u);
}

TEST_F(H2ChannelTest, ManyCallsShareOneConnection) {
  H2UnaryChannel channel(tcp_target(server_.port()), 1 << 20);
  constexpr int kCalls = 64;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kCalls; ++i) {
    // Half of them slow enough to overlap with the rest.
    // Deadlines far beyond what the calls need: they only bound a hang (ThreadSanitizer builds
    // run this several times slower).
    channel.call(io_.executor(), kQueryData, query_request(i % 2 ? "A" : "big:100000"), {}, 60s,
                 [&](grpc::Status status, std::string body) {
                   pluginv2::QueryDataResponse r;
                   if (status.ok() && r.ParseFromString(body) && r.responses_size() == 1) ++ok;
                   ++done;
                 });
  }
  ASSERT_TRUE(testing::wait_until([&] { return done.load() == kCalls; }, 120s)) << done.load();
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(channel.connection_count(), 1u);
}

TEST_F(H2ChannelTest, LargeRepliesAndTheLimit) {
  H2UnaryChannel channel(tcp_target(server_.port()), 8 << 20);
  // 5 MB: many DATA frames and flow-control windows.
  auto big = call(channel, io_, kQueryData, query_request("big:5000000"));
  ASSERT_TRUE(big.status.ok()) << big.status.error_message();
  pluginv2::QueryDataResponse response;
  ASSERT_TRUE(response.ParseFromString(big.body));
  EXPECT_EQ(response.responses().at("big:5000000").frames(0).size(), 5000000u);

  H2UnaryChannel small(tcp_target(server_.port()), 1 << 20);
  auto refused = call(small, io_, kQueryData, query_request("big:2000000"));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.status.error_message().find("larger than max"), std::string::npos)
      << refused.status.error_message();
  // The connection survives a refused reply.
  EXPECT_TRUE(call(small, io_, kQueryData, query_request("A")).status.ok());
}

TEST_F(H2ChannelTest, ServerGoneIsUnavailableAndTheNextCallRedials) {
  H2UnaryChannel channel(tcp_target(server_.port()), 1 << 20);
  ASSERT_TRUE(call(channel, io_, kQueryData, query_request("A")).status.ok());
  server_.shutdown();
  auto gone = call(channel, io_, kQueryData, query_request("A"));
  EXPECT_EQ(gone.status.error_code(), grpc::StatusCode::UNAVAILABLE) << gone.status.error_message();
  // Nothing listens any more: every later call fails fast, on a fresh connection attempt.
  auto again = call(channel, io_, kQueryData, query_request("A"), 1s);
  EXPECT_EQ(again.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << again.status.error_message();
}

// A channel destroyed before its connection got to connect (the plugin was restarted while a
// query was on its way) ends that call with UNAVAILABLE. It used to deadlock the I/O thread:
// connect() called fail() with the mutex fail() takes still held.
TEST(H2Channel, DestroyedBeforeConnectingEndsTheCall) {
  // Heap-allocated and released only when its thread returned: on a deadlock the test fails
  // instead of hanging or destroying a context still in use.
  auto* io = new net::io_context;
  std::promise<grpc::Status> result;
  {
    H2UnaryChannel channel(tcp_target(1), 1 << 20);
    channel.call(io->get_executor(), kQueryData, query_request("A"), {}, 5s,
                 [&result](grpc::Status status, std::string) { result.set_value(status); });
  }  // destroyed: the connection is abandoned before its start() ran
  auto ran = std::make_shared<std::promise<void>>();
  auto ran_future = ran->get_future();
  std::thread runner([io, ran] {
    io->run_for(5s);
    ran->set_value();
  });
  auto status = result.get_future();
  if (status.wait_for(10s) != std::future_status::ready ||
      ran_future.wait_for(10s) != std::future_status::ready) {
    runner.detach();
    FAIL() << "the I/O thread is stuck and the call never ended";
  }
  runner.join();
  delete io;
  EXPECT_EQ(status.get().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(H2Channel, NothingListeningIsUnavailable) {
  testing::IoThreads io(1);
  int port = 0;
  {
    net::io_context probe;
    tcp::acceptor acceptor(probe, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }
  H2UnaryChannel channel(tcp_target(port), 1 << 20);
  auto r = call(channel, io, kQueryData, query_request("A"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(r.status.error_message().find("cannot connect"), std::string::npos)
      << r.status.error_message();

  H2UnaryChannel missing(parse_h2_target("unix:/nonexistent/dpa-test.sock"), 1 << 20);
  EXPECT_EQ(call(missing, io, kQueryData, query_request("A")).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);

  H2UnaryChannel unusable(parse_h2_target("nohostport"), 1 << 20);
  auto bad = call(unusable, io, kQueryData, query_request("A"));
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(bad.status.error_message().find("not a unix or tcp address"), std::string::npos)
      << bad.status.error_message();
}

// A peer that answers with `bytes` (then closes) instead of speaking HTTP/2.
class RawPeer {
 public:
  explicit RawPeer(std::string bytes)
      : acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
        thread_([this, bytes = std::move(bytes)] {
          boost::system::error_code ec;
          tcp::socket s(io_);
          acceptor_.accept(s, ec);
          if (ec) return;
          std::array<char, 256> buf;
          s.read_some(net::buffer(buf), ec);  // the client preface arrives first
          net::write(s, net::buffer(bytes), ec);
          s.shutdown(tcp::socket::shutdown_both, ec);
        }) {}
  ~RawPeer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }

 private:
  net::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

TEST(H2Channel, APeerThatIsNotHttp2IsUnavailableNotACrash) {
  testing::IoThreads io(1);
  RawPeer http1("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  H2UnaryChannel channel(tcp_target(http1.port()), 1 << 20);
  auto r = call(channel, io, kQueryData, query_request("A"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
}

TEST(H2Channel, ConnectionsEndWithTheChannel) {
  testing::InProcessFakePlugin server;
  auto io = std::make_unique<testing::IoThreads>(1);
  {
    H2UnaryChannel channel(tcp_target(server.port()), 1 << 20);
    ASSERT_TRUE(call(channel, *io, kQueryData, query_request("A")).status.ok());
    io->release();
    // The idle connection keeps a read pending, so the io_context still has work.
    EXPECT_FALSE(io->finished_within(200ms));
  }
  // Destroying the channel shut its socket down: the read ends and nothing is left pending.
  EXPECT_TRUE(io->finished_within(5s));
}

// The client's QueryData path (PluginClient over a gRPC channel and this HTTP/2 channel).
TEST_F(H2ChannelTest, PluginClientQueryDataMapsErrorsToStatus) {
  const std::string target = "ipv4:127.0.0.1:" + std::to_string(server_.port());
  auto client = make_grpc_plugin_client(
      "fake", grpc::CreateChannel(target, grpc::InsecureChannelCredentials()), target);
  auto query = [&](const std::string& ref_id, std::chrono::milliseconds timeout) {
    std::promise<api::Expected<pluginv2::QueryDataResponse>> promise;
    pluginv2::QueryDataRequest req;
    req.add_queries()->set_refid(ref_id);
    client->query_data(std::move(req), timeout, io_.executor(),
                       [&](auto r) { promise.set_value(std::move(r)); });
    auto f = promise.get_future();
    EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
    return f.get();
  };
  auto ok = query("A", 5s);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->responses().at("A").frames_size(), 1);
  EXPECT_EQ(query("slow", 100ms).error().code, 504);
  auto fail = query("fail", 5s);
  EXPECT_EQ(fail.error().code, 502);
  EXPECT_EQ(fail.error().message, "plugin fake failed: boom");
}

}  // namespace
}  // namespace dpa::plugin
