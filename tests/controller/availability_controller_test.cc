#include "aggregator/controller/availability_controller.h"

#include "tests/dataplane/fakes.h"

#include <gtest/gtest.h>

#include <thread>

namespace dpa::controller {
namespace {

using namespace std::chrono_literals;
using testing::FakePluginHost;

dataplane::ServiceEntry service(const std::string& plugin, std::vector<std::string> types) {
  dataplane::ServiceEntry e;
  e.spec.plugin_id = plugin;
  e.spec.plugin_type = "datasource";
  e.spec.group = plugin + ".example.com";
  e.spec.version = "v1";
  e.name = "v1." + e.spec.group;
  for (auto& t : types) e.spec.services.push_back({t, "", ""});
  return e;
}

struct Written {
  std::mutex mutex;
  std::vector<std::tuple<std::string, bool, std::string, std::string>> calls;
  void add(const std::string& n, bool a, const std::string& r, const std::string& m) {
    std::lock_guard lock(mutex);
    calls.emplace_back(n, a, r, m);
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return calls.size();
  }
};

struct Fixture {
  FakePluginHost host;
  std::shared_ptr<const plugin::DatasourceSet> datasources =
      std::make_shared<const plugin::DatasourceSet>(std::vector<plugin::Datasource>{});
  std::shared_ptr<const dataplane::DataPlaneContext> context =
      std::make_shared<const dataplane::DataPlaneContext>(dataplane::DataPlaneContext{
          host, [this] { return datasources; }, {}});
  Written written;
  AvailabilityController controller{
      context,
      [this](const std::string& n, bool a, const std::string& r, const std::string& m) {
        written.add(n, a, r, m);
      },
      AvailabilityOptions{std::chrono::milliseconds(200), std::chrono::milliseconds(1000)}};

  // Waits until the service's condition has the given reason.
  bool reason_becomes(const std::string& name, const std::string& reason) {
    for (int i = 0; i < 3000; ++i) {
      auto c = controller.condition(name);
      if (c && c->reason == reason) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
};

TEST(AvailabilityControllerTest, PluginStatesGiveReasons) {
  Fixture f;
  auto client = f.host.add("running");
  f.controller.start();
  f.controller.set_services(dataplane::RouteTable::build(
      {service("missing", {"query"}), service("running", {"query"})}));
  ASSERT_TRUE(f.reason_becomes("v1.missing.example.com", kReasonPluginNotFound));
  EXPECT_FALSE(f.controller.condition("v1.missing.example.com")->available);
  ASSERT_TRUE(f.reason_becomes("v1.running.example.com", kReasonPassed));
  EXPECT_TRUE(f.controller.condition("v1.running.example.com")->available);

  f.host.set_status("running", plugin::PluginState::kStarting);
  ASSERT_TRUE(f.reason_becomes("v1.running.example.com", kReasonPluginStarting));
  f.host.set_status("running", plugin::PluginState::kUnavailable, "exited with signal 9");
  ASSERT_TRUE(f.reason_becomes("v1.running.example.com", kReasonPluginUnavailable));
  EXPECT_NE(f.controller.condition("v1.running.example.com")->message.find("signal 9"),
            std::string::npos);
  f.host.set_status("running", plugin::PluginState::kRunning);
  ASSERT_TRUE(f.reason_becomes("v1.running.example.com", kReasonPassed));
}

TEST(AvailabilityControllerTest, HealthCheckUsesDatasourceAndFails) {
  Fixture f;
  plugin::Datasource ds;
  ds.uid = "ds1";
  ds.type = "hc";
  ds.name = "ds1";
  f.datasources = std::make_shared<const plugin::DatasourceSet>(std::vector<plugin::Datasource>{ds});
  auto client = f.host.add("hc");
  std::atomic<bool> healthy{false};
  client->on_check_health = [&](const pluginv2::CheckHealthRequest&) {
    pluginv2::CheckHealthResponse r;
    r.set_status(healthy ? pluginv2::CheckHealthResponse::OK : pluginv2::CheckHealthResponse::ERROR);
    r.set_message(healthy ? "ok" : "cannot reach upstream");
    return r;
  };
  f.controller.start();
  f.controller.set_services(dataplane::RouteTable::build({service("hc", {"query", "health"})}));
  ASSERT_TRUE(f.reason_becomes("v1.hc.example.com", kReasonHealthCheckFailed));
  auto c = f.controller.condition("v1.hc.example.com");
  EXPECT_FALSE(c->available);
  EXPECT_NE(c->message.find("cannot reach upstream"), std::string::npos);
  ASSERT_FALSE(client->health_requests().empty());
  EXPECT_EQ(client->health_requests()[0].plugincontext().datasourceinstancesettings().uid(), "ds1");
  // The periodic resync picks up recovery.
  healthy = true;
  ASSERT_TRUE(f.reason_becomes("v1.hc.example.com", kReasonPassed));
  EXPECT_TRUE(f.controller.condition("v1.hc.example.com")->available);
}

TEST(AvailabilityControllerTest, PluginLevelHealthWhenNoDatasource) {
  Fixture f;
  auto client = f.host.add("app");
  client->on_check_health = [](const pluginv2::CheckHealthRequest&) {
    pluginv2::CheckHealthResponse r;
    r.set_status(pluginv2::CheckHealthResponse::OK);
    return r;
  };
  f.controller.start();
  f.controller.set_services(dataplane::RouteTable::build({service("app", {"health"})}));
  ASSERT_TRUE(f.reason_becomes("v1.app.example.com", kReasonPassed));
  EXPECT_FALSE(client->health_requests()[0].plugincontext().has_datasourceinstancesettings());
}

TEST(AvailabilityControllerTest, WritesOnlyOnChange) {
  Fixture f;
  f.host.add("p");
  f.controller.start();
  f.controller.set_services(dataplane::RouteTable::build({service("p", {"query"})}));
  ASSERT_TRUE(f.reason_becomes("v1.p.example.com", kReasonPassed));
  // Several resync periods and explicit resyncs later: still exactly one write.
  for (int i = 0; i < 5; ++i) {
    f.controller.resync();
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(f.written.size(), 1u);
  f.host.set_status("p", plugin::PluginState::kUnavailable);
  ASSERT_TRUE(f.reason_becomes("v1.p.example.com", kReasonPluginUnavailable));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(f.written.size(), 2u);
}

TEST(AvailabilityControllerTest, ATableChangeChecksOnlyTheServicesItChanged) {
  Fixture f;
  auto client = f.host.add("p");
  client->on_check_health = [](const pluginv2::CheckHealthRequest&) {
    pluginv2::CheckHealthResponse r;
    r.set_status(pluginv2::CheckHealthResponse::OK);
    return r;
  };
  std::vector<std::shared_ptr<const dataplane::ServiceEntry>> entries;
  for (int i = 0; i < 50; ++i) {
    auto e = service("p", {"health"});
    e.spec.group = "g" + std::to_string(i) + ".example.com";
    e.name = "v1." + e.spec.group;
    entries.push_back(std::make_shared<const dataplane::ServiceEntry>(std::move(e)));
  }
  f.controller.start();
  f.controller.set_services(dataplane::RouteTable::build(entries));
  ASSERT_TRUE(f.reason_becomes("v1.g49.example.com", kReasonPassed));
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(f.reason_becomes("v1.g" + std::to_string(i) + ".example.com", kReasonPassed));
  }
  const std::size_t before = client->health_requests().size();
  EXPECT_EQ(before, 50u);
  // One more service: one more health check, not 51.
  auto added = service("p", {"health"});
  added.spec.group = "added.example.com";
  added.name = "v1.added.example.com";
  entries.push_back(std::make_shared<const dataplane::ServiceEntry>(std::move(added)));
  f.controller.set_services(dataplane::RouteTable::build(entries));
  ASSERT_TRUE(f.reason_becomes("v1.added.example.com", kReasonPassed));
  EXPECT_EQ(client->health_requests().size(), before + 1);
}

}  // namespace
}  // namespace dpa::controller
