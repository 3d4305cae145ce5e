#include "aggregator/plugin/datasources.h"
#include "tests/plugin/test_util.h"

#include <gtest/gtest.h>

namespace dpa::plugin {
namespace {
using namespace std::chrono_literals;
using testing::TempDir;
using testing::write_file;

EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

constexpr const char* kFull = R"(
apiVersion: 1
deleteDatasources:
  - name: Old
    orgId: 1
datasources:
  - name: Prometheus
    type: prometheus
    uid: prom
    access: proxy
    url: http://$PROM_HOST:${PROM_PORT}/api
    user: reader
    database: metrics
    basicAuth: true
    basicAuthUser: ${BASIC_USER}
    orgId: 2
    isDefault: true
    editable: false
    version: 3
    jsonData:
      httpMethod: POST
      timeout: 30
      ratio: 0.5
      enabled: true
      quoted: "42"
      nothing: null
      price: "$$5"
      nested: {list: [1, "two", $PROM_HOST]}
    secureJsonData:
      password: $SECRET
      token: "$__env{TOKEN}"
  - name: NoUid
    type: grafana-testdata-datasource
)";

TEST(DatasourceProvisioning, ParsesEveryFieldWithEnvExpansion) {
  auto env = fake_env({{"PROM_HOST", "prom.local"}, {"PROM_PORT", "9090"}, {"BASIC_USER", "bob"},
                       {"SECRET", "s3cr3t"}, {"TOKEN", "tok"}});
  auto f = parse_provisioning_yaml(kFull, "test.yaml", env);
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f->deletes.size(), 1u);
  EXPECT_EQ(f->deletes[0].first, "Old");
  ASSERT_EQ(f->datasources.size(), 2u);
  const auto& p = f->datasources[0];
  EXPECT_EQ(p.name, "Prometheus");
  EXPECT_EQ(p.type, "prometheus");
  EXPECT_EQ(p.uid, "prom");
  EXPECT_EQ(p.access, "proxy");
  EXPECT_EQ(p.url, "http://prom.local:9090/api");
  EXPECT_EQ(p.user, "reader");
  EXPECT_EQ(p.database, "metrics");
  EXPECT_TRUE(p.basic_auth);
  EXPECT_EQ(p.basic_auth_user, "bob");
  EXPECT_EQ(p.org_id, 2);
  EXPECT_TRUE(p.is_default);
  EXPECT_FALSE(p.editable);
  EXPECT_EQ(p.version, 3);
  EXPECT_EQ(p.json_data["httpMethod"], "POST");
  EXPECT_EQ(p.json_data["timeout"], 30);
  EXPECT_EQ(p.json_data["ratio"], 0.5);
  EXPECT_EQ(p.json_data["enabled"], true);
  EXPECT_EQ(p.json_data["quoted"], "42");  // quoted stays a string
  EXPECT_TRUE(p.json_data["nothing"].is_null());
  EXPECT_EQ(p.json_data["price"], "$5");
  EXPECT_EQ(p.json_data["nested"]["list"], nlohmann::json::parse(R"([1,"two","prom.local"])"));
  EXPECT_EQ(p.secure_json_data.at("password"), "s3cr3t");
  EXPECT_EQ(p.secure_json_data.at("token"), "tok");

  const auto& n = f->datasources[1];
  EXPECT_EQ(n.org_id, 1);
  EXPECT_FALSE(n.uid.empty());  // generated, and stable:
  auto again = parse_provisioning_yaml(kFull, "test.yaml", env);
  EXPECT_EQ(again->datasources[1].uid, n.uid);
}

TEST(DatasourceProvisioning, ExpandsLikeGrafana) {
  auto env = fake_env({{"A", "x"}, {"B_2", "y"}});
  EXPECT_EQ(expand_env("$A-${B_2}", env), "x-y");
  EXPECT_EQ(expand_env("$UNSET.", env), ".");
  EXPECT_EQ(expand_env("$$A", env), "$A");
  EXPECT_EQ(expand_env("cost: $ 5", env), "cost: $ 5");
  EXPECT_EQ(expand_env("end$", env), "end$");
  EXPECT_EQ(expand_env("$__env{A}", env), "x");
  TempDir dir;
  write_file(dir.path() / "secret", "from-file\n");
  EXPECT_EQ(expand_env("$__file{" + (dir.path() / "secret").string() + "}", env), "from-file");
}

TEST(DatasourceProvisioning, RejectsBadFiles) {
  EXPECT_FALSE(parse_provisioning_yaml("datasources: [", "x").ok());
  EXPECT_FALSE(parse_provisioning_yaml("apiVersion: 7\n", "x").ok());
  auto noname = parse_provisioning_yaml("apiVersion: 1\ndatasources:\n  - type: x\n", "x");
  ASSERT_FALSE(noname.ok());
  EXPECT_NE(noname.error().message.find("datasources[0]: name is required"), std::string::npos)
      << noname.error().message;
  EXPECT_FALSE(
      parse_provisioning_yaml("apiVersion: 1\ndatasources:\n  - {name: a, type: x, orgId: abc}\n", "x")
          .ok());
  EXPECT_TRUE(parse_provisioning_yaml("", "empty").ok());
}

// yaml-cpp 0.7, which read these files before libyaml did, never returned on these inputs (the
// ones fuzz_body_decode found). Each must return at once (a regression hangs this test): an error,
// or, where libyaml reads a mapping, a file that provisions nothing.
TEST(DatasourceProvisioning, MalformedYamlIsAnErrorNotAHang) {
  for (const char* text : {R"({"":[{},{""}]},)", "!!str, y", "\"\"t\n?\n",
                           "apiVersion: 1\ndatasources: [{name: a, type: x}],"}) {
    auto parsed = parse_provisioning_yaml(text, "hang.yaml", fake_env({}));
    if (parsed.ok()) {
      EXPECT_TRUE(parsed->datasources.empty()) << text;
      continue;
    }
    EXPECT_EQ(parsed.error().message.rfind("datasource provisioning hang.yaml: ", 0), 0u)
        << parsed.error().message;
  }
  EXPECT_FALSE(parse_provisioning_yaml("!!str, y", "hang.yaml", fake_env({})).ok());
  EXPECT_FALSE(parse_provisioning_yaml("\"\"t\n?\n", "hang.yaml", fake_env({})).ok());
  auto invalid = parse_provisioning_yaml("datasources: [", "x.yaml", fake_env({}));
  ASSERT_FALSE(invalid.ok());
  EXPECT_NE(invalid.error().message.find("x.yaml: invalid YAML: line "), std::string::npos)
      << invalid.error().message;
}

// Fields are the text the file spells, as yaml-cpp gave them: a password of digits keeps its
// leading zeros, a version-like string its trailing zero. jsonData alone keeps YAML types.
TEST(DatasourceProvisioning, FieldsKeepTheTextTheySpell) {
  auto f = parse_provisioning_yaml(
      "apiVersion: 1\n"
      "datasources:\n"
      "  - {name: 2024, type: x, uid: 0123, database: 1.10, user: True, password: 007,\n"
      "     orgId: '3', isDefault: t, url: ~,\n"
      "     jsonData: {n: 0123, v: 1.10, q: '007', b: True, e: $E}}\n",
      "text.yaml", fake_env({{"E", "env"}}));
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f->datasources.size(), 1u);
  const auto& ds = f->datasources[0];
  EXPECT_EQ(ds.name, "2024");
  EXPECT_EQ(ds.uid, "0123");
  EXPECT_EQ(ds.database, "1.10");
  EXPECT_EQ(ds.user, "True");
  EXPECT_EQ(ds.secure_json_data.at("password"), "007");
  EXPECT_EQ(ds.org_id, 3);
  EXPECT_TRUE(ds.is_default);
  EXPECT_EQ(ds.url, "");
  EXPECT_EQ(ds.json_data, nlohmann::json::parse(R"({"n":123,"v":1.1,"q":"007","b":true,"e":"env"})"));
  auto secure = parse_provisioning_yaml(
      "datasources:\n  - {name: a, type: x, secureJsonData: {k: ~, l: [1]}}\n", "s.yaml");
  ASSERT_FALSE(secure.ok());
  EXPECT_NE(secure.error().message.find(
                "datasources[0]: secureJsonData.k must be a string; secureJsonData.l must be a string"),
            std::string::npos)
      << secure.error().message;
}

TEST(DatasourceProvisioning, DirectoryMergesInOrderWithDeletes) {
  TempDir dir;
  write_file(dir.path() / "a.yaml",
             "apiVersion: 1\ndatasources:\n  - {name: One, type: t, uid: one}\n"
             "  - {name: Two, type: t, uid: two, isDefault: true}\n");
  write_file(dir.path() / "b.yml",
             "apiVersion: 1\ndeleteDatasources:\n  - {name: One, orgId: 1}\n"
             "datasources:\n  - {name: Two, type: t, uid: two, url: http://b, isDefault: true}\n");
  write_file(dir.path() / "ignored.txt", "not yaml: [");
  auto all = load_provisioning(dir.path(), fake_env({}));
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].uid, "two");
  EXPECT_EQ((*all)[0].url, "http://b");

  write_file(dir.path() / "c.yaml",
             "apiVersion: 1\ndatasources:\n  - {name: Three, type: t, uid: three, isDefault: true}\n");
  auto two_defaults = load_provisioning(dir.path(), fake_env({}));
  ASSERT_FALSE(two_defaults.ok());
  EXPECT_NE(two_defaults.error().message.find("only one datasource per organization"),
            std::string::npos);
}

TEST(DatasourceProvider, ReloadBumpsLastUpdatedOnlyForChangedDatasources) {
  TempDir dir;
  auto file = dir.path() / "ds.yaml";
  write_file(file,
             "apiVersion: 1\ndatasources:\n  - {name: A, type: t, uid: a, url: http://one}\n"
             "  - {name: B, type: t, uid: b}\n");
  DatasourceProvider provider(file, fake_env({}));
  ASSERT_TRUE(provider.reload().ok());
  auto a1 = provider.find("a");
  auto b1 = provider.find("b");
  ASSERT_TRUE(a1 && b1);
  EXPECT_GT(a1->last_updated_ms, 0);
  EXPECT_NE(a1->id, b1->id);
  auto snap1 = provider.snapshot();

  std::this_thread::sleep_for(5ms);
  write_file(file,
             "apiVersion: 1\ndatasources:\n  - {name: A, type: t, uid: a, url: http://two}\n"
             "  - {name: B, type: t, uid: b}\n");
  ASSERT_TRUE(provider.reload().ok());
  auto a2 = provider.find("a");
  auto b2 = provider.find("b");
  EXPECT_EQ(a2->url, "http://two");
  EXPECT_GT(a2->last_updated_ms, a1->last_updated_ms);
  EXPECT_EQ(b2->last_updated_ms, b1->last_updated_ms);
  EXPECT_EQ(a2->id, a1->id);
  // The old snapshot is immutable and still usable by whoever holds it.
  EXPECT_EQ(snap1->find("a")->url, "http://one");

  // A bad file keeps the previous snapshot.
  write_file(file, "apiVersion: 1\ndatasources: [\n");
  EXPECT_FALSE(provider.reload().ok());
  EXPECT_EQ(provider.find("a")->url, "http://two");
  EXPECT_FALSE(provider.find("missing").has_value());
}

TEST(DatasourceProvider, WatcherReloadsWhenTheFileChanges) {
  TempDir dir;
  auto file = dir.path() / "ds.yaml";
  write_file(file, "apiVersion: 1\ndatasources:\n  - {name: A, type: t, uid: a, url: http://one}\n");
  DatasourceProvider provider(dir.path(), fake_env({}));
  ASSERT_TRUE(provider.reload().ok());
  std::atomic<int> changes{0};
  provider.on_change([&](std::shared_ptr<const DatasourceSet>) { ++changes; });
  provider.start_watching(50ms);
  write_file(file,
             "apiVersion: 1\ndatasources:\n  - {name: A, type: t, uid: a, url: http://changed}\n");
  EXPECT_TRUE(testing::wait_until([&] { return provider.find("a")->url == "http://changed"; }, 5s));
  // Listeners run right after the new snapshot is published, so they may trail find() a little.
  EXPECT_TRUE(testing::wait_until([&] { return changes.load() >= 1; }, 5s));
  write_file(dir.path() / "more.yaml", "apiVersion: 1\ndatasources:\n  - {name: N, type: t, uid: n}\n");
  EXPECT_TRUE(testing::wait_until([&] { return provider.find("n").has_value(); }, 5s));
  provider.stop_watching();
}

TEST(PluginContext, CarriesDatasourceUserAndGrafanaSettings) {
  PluginInfo plugin;
  plugin.id = "grafana-x-datasource";
  plugin.type = "datasource";
  plugin.version = "2.1.0";
  Datasource ds;
  ds.id = 7;
  ds.uid = "u1";
  ds.name = "X";
  ds.url = "http://x";
  ds.user = "usr";
  ds.database = "db";
  ds.basic_auth = true;
  ds.basic_auth_user = "ba";
  ds.org_id = 3;
  ds.api_version = "v1";
  ds.json_data = {{"k", "v"}};
  ds.secure_json_data = {{"password", "p"}};
  ds.last_updated_ms = 1700000000123;
  RequestUser user{"admin", "Admin", "a@x", "Admin"};
  auto ctx = build_plugin_context(plugin, &ds, &user, "org-3", {{"GF_SQL_ROW_LIMIT", "1000"}},
                                  grafana_user_agent("12.0.0"));
  EXPECT_EQ(ctx.pluginid(), "grafana-x-datasource");
  EXPECT_EQ(ctx.pluginversion(), "2.1.0");
  EXPECT_EQ(ctx.orgid(), 3);
  EXPECT_EQ(ctx.namespace_(), "org-3");
  EXPECT_EQ(ctx.useragent(), "Grafana/12.0.0 (linux; " + host_arch() + ")");
  EXPECT_EQ(ctx.grafanaconfig().at("GF_SQL_ROW_LIMIT"), "1000");
  EXPECT_EQ(ctx.user().login(), "admin");
  EXPECT_EQ(ctx.user().role(), "Admin");
  const auto& s = ctx.datasourceinstancesettings();
  EXPECT_EQ(s.id(), 7);
  EXPECT_EQ(s.uid(), "u1");
  EXPECT_EQ(s.name(), "X");
  EXPECT_EQ(s.url(), "http://x");
  EXPECT_EQ(s.user(), "usr");
  EXPECT_EQ(s.database(), "db");
  EXPECT_TRUE(s.basicauthenabled());
  EXPECT_EQ(s.basicauthuser(), "ba");
  EXPECT_EQ(nlohmann::json::parse(s.jsondata()), ds.json_data);
  EXPECT_EQ(s.decryptedsecurejsondata().at("password"), "p");
  EXPECT_EQ(s.lastupdatedms(), 1700000000123);
  EXPECT_EQ(s.apiversion(), "v1");

  auto bare = build_plugin_context(plugin, nullptr, nullptr, "default", {}, "ua");
  EXPECT_EQ(bare.orgid(), 1);
  EXPECT_FALSE(bare.has_user());
  EXPECT_FALSE(bare.has_datasourceinstancesettings());
  EXPECT_EQ(org_id_from_namespace("default"), 1);
  EXPECT_EQ(org_id_from_namespace("org-12"), 12);
  EXPECT_EQ(org_id_from_namespace("org-x"), 1);
}

}  // namespace
}  // namespace dpa::plugin
