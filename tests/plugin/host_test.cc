#include "aggregator/plugin/process_plugin_host.h"
#include "tests/plugin/fake_plugin.h"
#include "tests/plugin/test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <stdlib.h>

#include <future>

namespace dpa::plugin {
namespace {
using namespace std::chrono_literals;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr const char* kId = "dpa-fake-datasource";

// A plugin directory whose binary is this test executable (which becomes the fake plugin).
void make_fake_plugin_dir(const std::filesystem::path& root) {
  testing::write_file(root / "fake" / "plugin.json",
                      R"({"id":"dpa-fake-datasource","type":"datasource","name":"Fake",
                          "backend":true,"executable":"gpx_fake","info":{"version":"0.0.1"}})");
  std::filesystem::create_symlink(testing::self_exe(),
                                  root / "fake" / ("gpx_fake_linux_" + host_arch()));
}

template <class T>
api::Expected<T> call_sync(const std::function<void(Callback<T>)>& start) {
  auto promise = std::make_shared<std::promise<api::Expected<T>>>();
  auto future = promise->get_future();
  start([promise](api::Expected<T> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(10s) != std::future_status::ready) {
    return api::ApiError::internal("test: no callback within 10 s");
  }
  return future.get();
}

api::Expected<pluginv2::QueryDataResponse> query(PluginClient& client, const std::string& ref_id,
                                                 std::chrono::milliseconds timeout = 5s) {
  return call_sync<pluginv2::QueryDataResponse>([&](auto done) {
    pluginv2::QueryDataRequest req;
    req.mutable_plugincontext()->set_pluginid(client.plugin_id());
    req.add_queries()->set_refid(ref_id);
    static testing::IoThreads io(1);  // QueryData runs on its caller's io_context
    client.query_data(std::move(req), timeout, io.executor(), std::move(done));
  });
}

nlohmann::json frame_json(const pluginv2::QueryDataResponse& resp, const std::string& ref_id) {
  return nlohmann::json::parse(resp.responses().at(ref_id).frames(0));
}

// Records every status change, so tests can wait for transitions.
struct StatusLog {
  std::mutex mu;
  std::vector<PluginState> states;
  void add(PluginState s) {
    std::lock_guard<std::mutex> lock(mu);
    states.push_back(s);
  }
  std::size_t count(PluginState s) {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<std::size_t>(std::count(states.begin(), states.end(), s));
  }
};

class ProcessHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_fake_plugin_dir(plugins_.path());
    // Must be scrubbed from the plugin's environment (reference §2.3).
    setenv("PLUGIN_CLIENT_CERT", "-----BEGIN CERTIFICATE-----", 1);
    PluginHostOptions o;
    o.plugins_dirs = {plugins_.path()};
    o.start_timeout = 20s;
    o.grafana_version = "11.3.0";
    // TMPDIR: the fake plugin puts its socket there, so a SIGKILLed one leaves nothing behind.
    o.extra_env = {{"DPA_TEST_FAKE_PLUGIN", "1"},
                   {"DPA_TEST_MARKER_DIR", markers_.path().string()},
                   {"TMPDIR", markers_.path().string()}};
    o.plugin_settings = {{kId, {{"custom_setting", "from-ini"}}}};
    o.backoff = {.initial = 100ms, .max = 1s, .healthy_reset = 60s};
    o.exit_poll = 20ms;
    host_ = std::make_unique<ProcessPluginHost>(o);
    host_->on_status_change([this](const std::string& id, PluginStatus s) {
      if (id == kId) log_.add(s.state);
    });
    host_->start_all();
  }
  void TearDown() override {
    host_.reset();
    unsetenv("PLUGIN_CLIENT_CERT");
  }
  bool wait_running() {
    return testing::wait_until([&] { return host_->status(kId).state == PluginState::kRunning; },
                               20s);
  }

  TempDir plugins_;
  TempDir markers_;
  StatusLog log_;
  std::unique_ptr<ProcessPluginHost> host_;
};

TEST_F(ProcessHostTest, StartsQueriesRestartsAndStops) {
  ASSERT_TRUE(wait_running()) << host_->status(kId).message;
  EXPECT_GE(log_.count(PluginState::kStarting), 1u);
  auto info = host_->info(kId);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->version, "0.0.1");
  EXPECT_EQ(host_->status("nobody-datasource").state, PluginState::kNotFound);
  EXPECT_EQ(host_->client("nobody-datasource"), nullptr);

  auto client = host_->client(kId);
  ASSERT_NE(client, nullptr);
  auto r = query(*client, "A");
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto j = frame_json(*r, "A");
  EXPECT_EQ(j["pluginId"], kId);
  const pid_t first_pid = j["pid"].get<int>();
  EXPECT_EQ(first_pid, host_->pid(kId));
  // The go-plugin environment, as the plugin saw it.
  EXPECT_EQ(j["env"]["GF_VERSION"], "11.3.0");
  EXPECT_EQ(j["env"]["grafana_plugin_type"], "datasource");
  EXPECT_EQ(j["env"]["PLUGIN_PROTOCOL_VERSIONS"], "2");
  EXPECT_EQ(j["env"]["PLUGIN_MIN_PORT"], "10000");
  EXPECT_EQ(j["env"]["PLUGIN_MAX_PORT"], "25000");
  EXPECT_TRUE(j["env"]["PLUGIN_CLIENT_CERT"].is_null());
  EXPECT_EQ(j["env"]["GF_PLUGIN_CUSTOM_SETTING"], "from-ini");

  // Crash: SIGKILL the plugin -> Unavailable -> restarted -> calls work again.
  const auto unavailable_before = log_.count(PluginState::kUnavailable);
  ASSERT_EQ(kill(first_pid, SIGKILL), 0);
  ASSERT_TRUE(testing::wait_until(
      [&] { return log_.count(PluginState::kUnavailable) > unavailable_before; }, 5s));
  ASSERT_TRUE(testing::wait_until(
      [&] {
        return host_->status(kId).state == PluginState::kRunning && host_->pid(kId) != first_pid &&
               host_->pid(kId) > 0;
      },
      20s))
      << host_->status(kId).message;
  EXPECT_TRUE(testing::process_gone(first_pid));
  auto client2 = host_->client(kId);
  ASSERT_NE(client2, nullptr);
  auto r2 = query(*client2, "B");
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  const pid_t second_pid = frame_json(*r2, "B")["pid"].get<int>();
  EXPECT_NE(second_pid, first_pid);
  // The old client's process is gone: its calls fail as 503, never hang.
  auto stale = query(*client, "C", 2s);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, 503) << stale.error().message;

  // stop_all: Shutdown is sent and the process is gone within the 2 s grace.
  auto start = Clock::now();
  host_->stop_all();
  EXPECT_LT(Clock::now() - start, 2500ms);
  EXPECT_TRUE(testing::process_gone(second_pid));
  EXPECT_TRUE(std::filesystem::exists(markers_.path() / ("shutdown-" + std::to_string(second_pid))));
  EXPECT_NE(host_->status(kId).state, PluginState::kRunning);
  EXPECT_EQ(host_->client(kId), nullptr);
}

TEST_F(ProcessHostTest, ErrorsStreamsAndCancellation) {
  ASSERT_TRUE(wait_running()) << host_->status(kId).message;
  auto client = host_->client(kId);
  ASSERT_NE(client, nullptr);

  auto slow = query(*client, "slow", 100ms);
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.error().code, 504);

  auto fail = query(*client, "fail");
  ASSERT_FALSE(fail.ok());
  EXPECT_EQ(fail.error().code, 502);
  EXPECT_EQ(fail.error().message, std::string("plugin ") + kId + " failed: boom");

  auto conv = call_sync<pluginv2::ConversionResponse>([&](auto done) {
    client->convert_objects(pluginv2::ConversionRequest(), 5s, std::move(done));
  });
  ASSERT_FALSE(conv.ok());
  EXPECT_EQ(conv.error().code, 501);
  EXPECT_EQ(conv.error().message, std::string("plugin ") + kId + " does not implement ConvertObjects");

  auto health = call_sync<pluginv2::CheckHealthResponse>([&](auto done) {
    client->check_health(pluginv2::CheckHealthRequest(), 5s, std::move(done));
  });
  ASSERT_TRUE(health.ok()) << health.error().message;
  EXPECT_EQ(health->status(), pluginv2::CheckHealthResponse::OK);

  // CallResource: messages in order, then done once.
  {
    std::mutex mu;
    std::vector<std::string> bodies;
    int first_code = 0;
    std::promise<api::Outcome> done;
    pluginv2::CallResourceRequest req;
    req.set_path("hello");
    auto call = client->call_resource(
        std::move(req), 5s,
        [&](pluginv2::CallResourceResponse m) {
          std::lock_guard<std::mutex> lock(mu);
          if (bodies.empty()) first_code = m.code();
          bodies.push_back(m.body());
        },
        [&](api::Outcome o) { done.set_value(std::move(o)); });
    auto f = done.get_future();
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(f.get().ok());
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(first_code, 200);
    EXPECT_EQ(bodies, (std::vector<std::string>{"path=hello;", "b;", "c;"}));
    call->cancel();  // after completion: harmless
  }

  // RunStream: packets flow until cancel(); done arrives exactly once, as 503.
  {
    std::atomic<int> packets{0};
    std::atomic<int> dones{0};
    std::promise<api::Outcome> done;
    pluginv2::RunStreamRequest req;
    req.set_path("ticks");
    auto call = client->run_stream(
        std::move(req), {}, [&](pluginv2::StreamPacket) { ++packets; },
        [&](api::Outcome o) {
          if (dones++ == 0) done.set_value(std::move(o));
        });
    ASSERT_TRUE(testing::wait_until([&] { return packets.load() >= 3; }, 10s));
    std::thread other([&] { call->cancel(); });  // from another thread
    other.join();
    auto f = done.get_future();
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    auto outcome = f.get();
    ASSERT_FALSE(outcome.ok());
    EXPECT_EQ(outcome.error().code, 503);
    call->cancel();
    call.reset();
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(dones.load(), 1);
  }

  // Dropping the handle does not cancel: the call still completes by itself.
  {
    std::promise<api::Outcome> done;
    client->call_resource(pluginv2::CallResourceRequest(), 5s, [](auto) {},
                          [&](api::Outcome o) { done.set_value(std::move(o)); });
    auto f = done.get_future();
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(f.get().ok());
  }
}

TEST(AttachedPlugin, FollowsChannelConnectivity) {
  auto server = std::make_unique<testing::InProcessFakePlugin>();
  ASSERT_GT(server->port(), 0);
  PluginHostOptions o;
  o.plugin_addresses = {"attached-datasource=127.0.0.1:" + std::to_string(server->port())};
  ProcessPluginHost host(o);
  host.start_all();
  ASSERT_TRUE(testing::wait_until(
      [&] { return host.status("attached-datasource").state == PluginState::kRunning; }))
      << host.status("attached-datasource").message;
  EXPECT_EQ(host.pid("attached-datasource"), -1);
  auto info = host.info("attached-datasource");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->id, "attached-datasource");
  auto client = host.client("attached-datasource");
  ASSERT_NE(client, nullptr);
  auto r = query(*client, "A");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(frame_json(*r, "A")["pid"].get<int>(), static_cast<int>(getpid()));

  server->shutdown();
  EXPECT_TRUE(testing::wait_until(
      [&] { return host.status("attached-datasource").state == PluginState::kUnavailable; }))
      << to_string(host.status("attached-datasource").state);
  EXPECT_EQ(host.client("attached-datasource"), nullptr);
  host.stop_all();
}

TEST(AttachedPlugin, ParsesAddresses) {
  auto a = parse_attach_spec("x=unix:/tmp/p.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->plugin_id, "x");
  EXPECT_EQ(a->target, "unix:/tmp/p.sock");
  EXPECT_EQ(parse_attach_spec("x=unix:///tmp/p.sock")->target, "unix:/tmp/p.sock");
  EXPECT_EQ(parse_attach_spec("x=127.0.0.1:9000")->target, "ipv4:127.0.0.1:9000");
  EXPECT_EQ(parse_attach_spec("x=tcp:127.0.0.1:9000")->target, "ipv4:127.0.0.1:9000");
  EXPECT_FALSE(parse_attach_spec("127.0.0.1:9000").ok());
  EXPECT_FALSE(parse_attach_spec("x=unix:relative").ok());
  EXPECT_FALSE(parse_attach_spec("x=nohostport").ok());
  EXPECT_THROW(ProcessPluginHost(PluginHostOptions{.plugin_addresses = {"bad"}}),
               std::invalid_argument);
}

}  // namespace
}  // namespace dpa::plugin
