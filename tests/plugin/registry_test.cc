#include "aggregator/plugin/plugin_registry.h"
#include "tests/plugin/test_util.h"

#include <gtest/gtest.h>

namespace dpa::plugin {
namespace {
using testing::TempDir;
using testing::write_file;
using testing::write_script;

TEST(PluginRegistry, FindsBackendPluginsInGrafanaLayout) {
  TempDir dir;
  // A plain plugin folder.
  write_file(dir.path() / "basic" / "plugin.json",
             R"({"id":"grafana-basic-datasource","type":"datasource","name":"Basic",
                 "backend":true,"executable":"gpx_basic","info":{"version":"1.2.3"}})");
  write_script(dir.path() / "basic" / "gpx_basic_linux_amd64", "exit 0\n");
  // A folder with dist/, and a nested datasource with a relative executable (like Zabbix).
  write_file(dir.path() / "app" / "dist" / "plugin.json",
             R"({"id":"acme-thing-app","type":"app","name":"App"})");
  write_file(dir.path() / "app" / "dist" / "datasource" / "plugin.json",
             R"({"id":"acme-thing-datasource","type":"datasource","backend":true,
                 "executable":"../gpx_thing"})");
  write_script(dir.path() / "app" / "dist" / "gpx_thing_linux_amd64", "exit 0\n");

  auto reg = PluginRegistry::scan({dir.path()}, "amd64");
  EXPECT_TRUE(reg.errors().empty()) << reg.errors().front();
  ASSERT_EQ(reg.plugins().size(), 3u);

  const PluginInfo* basic = reg.find("grafana-basic-datasource");
  ASSERT_NE(basic, nullptr);
  EXPECT_EQ(basic->type, "datasource");
  EXPECT_EQ(basic->name, "Basic");
  EXPECT_EQ(basic->version, "1.2.3");
  EXPECT_TRUE(basic->backend);
  EXPECT_EQ(basic->executable_path, dir.path() / "basic" / "gpx_basic_linux_amd64");

  const PluginInfo* app = reg.find("acme-thing-app");
  ASSERT_NE(app, nullptr);
  EXPECT_FALSE(app->backend);
  EXPECT_EQ(app->dir, dir.path() / "app" / "dist");

  const PluginInfo* nested = reg.find("acme-thing-datasource");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->executable_path, dir.path() / "app" / "dist" / "gpx_thing_linux_amd64");
}

TEST(PluginRegistry, SkipsMissingBinaryAndBadJson) {
  TempDir dir;
  write_file(dir.path() / "nobinary" / "plugin.json",
             R"({"id":"x-nobinary-datasource","type":"datasource","backend":true,"executable":"gpx_none"})");
  write_file(dir.path() / "badjson" / "plugin.json", R"({"id": "x-bad-datasource", )");
  write_file(dir.path() / "noid" / "plugin.json", R"({"type":"datasource"})");
  write_file(dir.path() / "ok" / "plugin.json",
             R"({"id":"x-ok-datasource","type":"datasource","backend":true,"executable":"gpx_ok"})");
  write_script(dir.path() / "ok" / "gpx_ok_linux_arm64", "exit 0\n");

  auto reg = PluginRegistry::scan({dir.path(), dir.path() / "does-not-exist"}, "arm64");
  ASSERT_EQ(reg.plugins().size(), 1u);
  EXPECT_EQ(reg.plugins()[0].id, "x-ok-datasource");
  ASSERT_EQ(reg.errors().size(), 4u);
  std::string all;
  for (const auto& e : reg.errors()) all += e + "\n";
  EXPECT_NE(all.find("gpx_none_linux_arm64 not found"), std::string::npos) << all;
  EXPECT_NE(all.find("invalid JSON"), std::string::npos) << all;
  EXPECT_NE(all.find("missing \"id\""), std::string::npos) << all;
  EXPECT_NE(all.find("plugins directory not found"), std::string::npos) << all;
}

TEST(PluginRegistry, FirstPluginWithAnIdWins) {
  TempDir a;
  TempDir b;
  for (const auto* d : {&a, &b}) {
    write_file(d->path() / "p" / "plugin.json",
               R"({"id":"x-dup-datasource","type":"datasource","backend":true,"executable":"gpx"})");
    write_script(d->path() / "p" / "gpx_linux_amd64", "exit 0\n");
  }
  auto reg = PluginRegistry::scan({a.path(), b.path()}, "amd64");
  ASSERT_EQ(reg.plugins().size(), 1u);
  EXPECT_EQ(reg.plugins()[0].dir, a.path() / "p");
  EXPECT_EQ(reg.errors().size(), 1u);
}

TEST(PluginRegistry, HostArchIsGoStyle) {
  auto arch = host_arch();
  EXPECT_FALSE(arch.empty());
  EXPECT_NE(arch, "x86_64");
  EXPECT_NE(arch, "aarch64");
}

}  // namespace
}  // namespace dpa::plugin
