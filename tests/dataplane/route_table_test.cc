#include "aggregator/dataplane/route_table.h"

#include <gtest/gtest.h>

#include <chrono>

namespace dpa::dataplane {
namespace {

using dataplaneservice::Service;
using dataplaneservice::Spec;

ServiceEntry entry(const std::string& group, const std::string& version,
                   std::vector<Service> services, const std::string& plugin = "testdata") {
  ServiceEntry e;
  e.name = version + "." + group;
  e.spec.plugin_id = plugin;
  e.spec.plugin_type = "datasource";
  e.spec.group = group;
  e.spec.version = version;
  e.spec.services = std::move(services);
  return e;
}

std::vector<Service> all_types() {
  return {{"query", "", ""},      {"health", "", ""},     {"route", "", ""},
          {"stream", "", ""},     {"datasource-proxy", "", ""}, {"metrics", "", ""},
          {"admission", "", ""},  {"conversion", "", ""}};
}

constexpr const char* kBase = "/apis/td.example.com/v1";

std::string p(const std::string& rest) { return std::string(kBase) + rest; }

TEST(RouteTableTest, EveryServiceTypeRoutes) {
  auto table = RouteTable::build({entry("td.example.com", "v1", all_types())});
  struct Case {
    const char* method;
    std::string path;
    Endpoint endpoint;
  };
  const Case cases[] = {
      {"POST", p("/namespaces/default/datasources/abc/query"), Endpoint::kQuery},
      {"POST", p("/namespaces/default/connections/abc/query"), Endpoint::kQuery},
      {"GET", p("/namespaces/default/datasources/abc/health"), Endpoint::kHealth},
      {"PUT", p("/namespaces/default/datasources/abc/resources/x/y"), Endpoint::kResource},
      {"GET", p("/namespaces/default/datasources/abc/stream/counter"), Endpoint::kStream},
      {"POST", p("/namespaces/default/datasources/abc/stream/counter"), Endpoint::kStream},
      {"DELETE", p("/namespaces/default/datasources/abc/proxy/api/v1"), Endpoint::kDatasourceProxy},
      {"GET", p("/metrics"), Endpoint::kMetrics},
      {"POST", p("/admission/validate"), Endpoint::kAdmissionValidate},
      {"POST", p("/admission/mutate"), Endpoint::kAdmissionMutate},
      {"POST", p("/conversion"), Endpoint::kConversion},
  };
  for (const auto& c : cases) {
    auto m = table->match(c.method, c.path);
    ASSERT_TRUE(m.has_value()) << c.path;
    EXPECT_EQ(m->endpoint, c.endpoint) << c.path;
    EXPECT_TRUE(m->method_allowed) << c.path;
    EXPECT_EQ(m->service->name, "v1.td.example.com");
  }
  auto q = table->match("POST", p("/namespaces/org-2/datasources/my%20ds/query"));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->namespace_name, "org-2");
  EXPECT_EQ(q->datasource_uid, "my ds");
  auto r = table->match("GET", p("/namespaces/default/datasources/abc/resources/a/b%2Fc?x"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->sub_path, "a/b%2Fc?x");
  auto s = table->match("GET", p("/namespaces/default/datasources/abc/stream"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sub_path, "");
}

TEST(RouteTableTest, ChangesMakeANewTableAndLeaveTheOldOneAlone) {
  std::vector<ServiceEntry> many;
  for (int i = 0; i < 1000; ++i) {
    many.push_back(entry("g" + std::to_string(i) + ".example.com", "v1", {{"query", "", ""}}));
  }
  auto before = RouteTable::build(std::move(many));
  ASSERT_EQ(before->size(), 1000u);
  const auto kept = before->find("g1.example.com", "v1");
  auto added = std::make_shared<const ServiceEntry>(
      entry("new.example.com", "v1", {{"query", "", ""}}));
  auto after = before->with_changes({{"new.example.com/v1", added},
                                     {"g0.example.com/v1", nullptr}});
  EXPECT_EQ(after->size(), 1000u);
  EXPECT_EQ(after->find("new.example.com", "v1"), added);
  EXPECT_EQ(after->find("g0.example.com", "v1"), nullptr);
  EXPECT_EQ(after->find("g1.example.com", "v1"), kept);  // shared, not rebuilt
  EXPECT_TRUE(after->match("POST", "/apis/new.example.com/v1/namespaces/default/datasources/x/query"));
  // The table others may still hold is unchanged.
  EXPECT_EQ(before->find("new.example.com", "v1"), nullptr);
  EXPECT_NE(before->find("g0.example.com", "v1"), nullptr);
  EXPECT_FALSE(before->match("POST", "/apis/new.example.com/v1/namespaces/default/datasources/x/query"));
  EXPECT_EQ(RouteTable::route_key(added->spec), "new.example.com/v1");
  auto unroutable = entry("a/b", "v1", {});
  EXPECT_EQ(RouteTable::route_key(unroutable.spec), std::nullopt);
}

TEST(RouteTableTest, UnlistedTypesAreNotRouted) {
  auto table = RouteTable::build({entry("td.example.com", "v1", {{"query", "", ""}})});
  EXPECT_TRUE(table->match("POST", p("/namespaces/default/datasources/abc/query")));
  EXPECT_FALSE(table->match("GET", p("/namespaces/default/datasources/abc/health")));
  EXPECT_FALSE(table->match("GET", p("/namespaces/default/datasources/abc/resources/x")));
  EXPECT_FALSE(table->match("GET", p("/namespaces/default/datasources/abc/stream/x")));
  EXPECT_FALSE(table->match("GET", p("/namespaces/default/datasources/abc/proxy/x")));
  EXPECT_FALSE(table->match("GET", p("/metrics")));
  EXPECT_FALSE(table->match("POST", p("/admission/validate")));
  EXPECT_FALSE(table->match("POST", p("/conversion")));
  // An empty services list routes nothing at all (Grafana §2.4: everything is delegated).
  auto none = RouteTable::build({entry("td.example.com", "v1", {})});
  EXPECT_FALSE(none->match("POST", p("/namespaces/default/datasources/abc/query")));
}

TEST(RouteTableTest, NonDataPlanePathsAreDelegated) {
  auto table = RouteTable::build({entry("td.example.com", "v1", all_types())});
  EXPECT_FALSE(table->match("GET", "/apis/td.example.com/v1"));
  EXPECT_FALSE(table->match("GET", "/apis/td.example.com/v1/"));
  EXPECT_FALSE(table->match("GET", "/apis/td.example.com"));
  EXPECT_FALSE(table->match("GET", "/apis"));
  EXPECT_FALSE(table->match("GET", "/api/v1/pods"));
  EXPECT_FALSE(table->match("GET", p("/namespaces/default/foos/bar")));
  EXPECT_FALSE(table->match("POST", "/apis/wrongds.example.com/v1/namespaces/default/datasources/123/query"));
  EXPECT_FALSE(table->match("POST", "/apis/td.example.com/v2/namespaces/default/datasources/123/query"));
  // Grafana's mux: trailing slash and extra segments fall through to the delegate.
  EXPECT_FALSE(table->match("POST", p("/namespaces/default/datasources/abc/query/")));
  EXPECT_FALSE(table->match("POST", p("/namespaces/default/datasources/abc/query/x")));
  EXPECT_FALSE(table->match("POST", p("/namespaces//datasources/abc/query")));
  EXPECT_FALSE(table->match("POST", p("/namespaces/default/datasources//query")));
  EXPECT_FALSE(table->match("GET", p("/metrics/")));
  // Dot segments are never handed to a plugin.
  EXPECT_FALSE(table->match("GET", p("/namespaces/default/datasources/abc/resources/../../x")));
  EXPECT_FALSE(table->match("GET", p("/namespaces/default/datasources/abc/resources/%2e%2e/x")));
}

TEST(RouteTableTest, WrongMethodIs405) {
  auto table = RouteTable::build({entry("td.example.com", "v1", all_types())});
  auto q = table->match("GET", p("/namespaces/default/datasources/abc/query"));
  ASSERT_TRUE(q);
  EXPECT_FALSE(q->method_allowed);
  EXPECT_EQ(q->allow, "POST");
  auto h = table->match("POST", p("/namespaces/default/datasources/abc/health"));
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->method_allowed);
  EXPECT_EQ(h->allow, "GET");
  auto s = table->match("DELETE", p("/namespaces/default/datasources/abc/stream/x"));
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->method_allowed);
  EXPECT_EQ(s->allow, "GET, POST");
  auto m = table->match("POST", p("/metrics"));
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->method_allowed);
  auto a = table->match("GET", p("/admission/mutate"));
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->method_allowed);
  auto c = table->match("PUT", p("/conversion"));
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->method_allowed);
}

TEST(RouteTableTest, RouteServicesMatchTemplatesUnderNamespace) {
  auto table = RouteTable::build({entry("td.example.com", "v1",
                                        {{"route", "GET", "/test/{name}/example"},
                                         {"route", "POST", "/test/{name}/example"},
                                         {"route", "", "/all"},
                                         {"route", "GET", "/files/{rest...}"}})});
  auto g = table->match("GET", p("/namespaces/ns1/test/a%20b/example"));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->endpoint, Endpoint::kRoute);
  EXPECT_TRUE(g->method_allowed);
  EXPECT_EQ(g->namespace_name, "ns1");
  ASSERT_EQ(g->path_params.size(), 1u);
  EXPECT_EQ(g->path_params[0].first, "name");
  EXPECT_EQ(g->path_params[0].second, "a b");
  ASSERT_NE(g->route, nullptr);
  EXPECT_EQ(g->route->method, "GET");
  EXPECT_EQ(g->sub_path, "test/a%20b/example");
  auto post = table->match("POST", p("/namespaces/ns1/test/x/example"));
  ASSERT_TRUE(post);
  EXPECT_EQ(post->route->method, "POST");
  auto del = table->match("DELETE", p("/namespaces/ns1/test/x/example"));
  ASSERT_TRUE(del);
  EXPECT_FALSE(del->method_allowed);
  EXPECT_EQ(del->allow, "GET, POST");
  // A route without a method accepts every method.
  EXPECT_TRUE(table->match("PATCH", p("/namespaces/ns1/all"))->method_allowed);
  // `/all/{test}` does not match route `/all` (Grafana route_test.go).
  EXPECT_FALSE(table->match("GET", p("/namespaces/ns1/all/x")));
  auto files = table->match("GET", p("/namespaces/ns1/files/a/b/c"));
  ASSERT_TRUE(files);
  EXPECT_EQ(files->path_params[0].second, "a/b/c");
  // Not under a namespace: not a route.
  EXPECT_FALSE(table->match("GET", p("/all")));
  // A route service also turns on the datasource resources endpoint.
  EXPECT_TRUE(table->match("GET", p("/namespaces/ns1/datasources/u/resources/x")));
}

// A long remainder routes like a short one: only the first segments decide the endpoint, so a
// proxy, resource or {rest...} path of any length reaches its plugin, never the delegate.
TEST(RouteTableTest, PathsOfAnyLengthRoute) {
  auto table = RouteTable::build({entry("td.example.com", "v1",
                                        {{"query", "", ""}, {"datasource-proxy", "", ""},
                                         {"route", "GET", "/files/{rest...}"}})});
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "/s" + std::to_string(i);
  auto proxy = table->match("GET", p("/namespaces/default/datasources/abc/proxy" + deep));
  ASSERT_TRUE(proxy);
  EXPECT_EQ(proxy->endpoint, Endpoint::kDatasourceProxy);
  EXPECT_EQ(proxy->sub_path, deep.substr(1));
  auto files = table->match("GET", p("/namespaces/ns1/files" + deep + "/a%2Fb"));
  ASSERT_TRUE(files);
  EXPECT_EQ(files->endpoint, Endpoint::kRoute);
  EXPECT_EQ(files->path_params[0].second, deep.substr(1) + "/a/b");
  // Dot segments are refused wherever they are.
  EXPECT_FALSE(table->match("GET", p("/namespaces/default/datasources/abc/proxy" + deep + "/..")));
  EXPECT_FALSE(table->match("GET", p("/namespaces/ns1/files" + deep + "/%2E")));
  // Fixed endpoints still need their exact segment count.
  EXPECT_FALSE(table->match("POST", p("/namespaces/default/datasources/abc/query" + deep)));
}

TEST(RouteTableTest, DuplicateGroupVersionFirstNameWins) {
  auto a = entry("td.example.com", "v1", {{"query", "", ""}});
  a.name = "b-name";
  auto b = entry("td.example.com", "v1", {{"health", "", ""}});
  b.name = "a-name";
  auto table = RouteTable::build({a, b});
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(table->find("td.example.com", "v1")->name, "a-name");
  EXPECT_FALSE(table->match("POST", p("/namespaces/d/datasources/u/query")));
}

TEST(RouteTableTest, FlatCostWithTenThousandServices) {
  std::vector<ServiceEntry> many;
  for (int i = 0; i < 10000; ++i) {
    many.push_back(entry("g" + std::to_string(i) + ".example.com", "v1", all_types()));
  }
  auto small = RouteTable::build({entry("g5.example.com", "v1", all_types())});
  auto big = RouteTable::build(many);
  EXPECT_EQ(big->size(), 10000u);
  const std::string path = "/apis/g5.example.com/v1/namespaces/default/datasources/abc/query";
  auto time_it = [&](const RouteTable& t) {
    auto start = std::chrono::steady_clock::now();
    int hits = 0;
    for (int i = 0; i < 20000; ++i) hits += t.match("POST", path).has_value();
    EXPECT_EQ(hits, 20000);
    return std::chrono::steady_clock::now() - start;
  };
  time_it(*small);  // warm up
  auto t_small = time_it(*small);
  auto t_big = time_it(*big);
  // Hash lookup: the big table may be slower only by cache effects, not by a factor of its size.
  EXPECT_LT(t_big, t_small * 5 + std::chrono::milliseconds(20));
  EXPECT_TRUE(big->match("GET", "/apis/g9999.example.com/v1/metrics"));
  EXPECT_FALSE(big->match("GET", "/apis/g10000.example.com/v1/metrics"));
}

}  // namespace
}  // namespace dpa::dataplane
