// RestHandler end to end against storage::MemoryStore through a fake Exchange: what kubectl,
// client-go and the Python client observe on the wire.
#include "aggregator/dataplaneservice/rest_handler.h"
#include "aggregator/dataplaneservice/types.h"
#include "aggregator/storage/memory_store.h"
#include "tests/support/fake_exchange.h"

#include <boost/asio/thread_pool.hpp>
#include <gtest/gtest.h>

#include <thread>

namespace dpa::dataplaneservice {
namespace {

using nlohmann::json;
using testing::FakeExchange;

const std::string kBase = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices";
const std::string kTableAccept =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s."
    "io,application/json";

std::string manifest(const std::string& group, const std::string& plugin = "p",
                     const std::string& extra_meta = "") {
  return R"({"apiVersion":"aggregation.grafana.app/v0alpha1","kind":"DataPlaneService",
    "metadata":{"name":"v1.)" + group + "\"" + extra_meta + R"(},
    "spec":{"pluginID":")" + plugin + R"(","pluginType":"datasource","group":")" + group +
         R"(","version":"v1","services":[{"type":"query"}]}})";
}

struct Reply {
  int status = 0;
  json body;
  std::string raw;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string header(const std::string& name) const {
    for (auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

class RestHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override { make(storage::StoreOptions{}); }
  void TearDown() override {
    // Callbacks of the last exchanges (a client that went away) still post into the pool.
    testing::drain_callbacks();
    handler_.reset();
    pool_->join();
    testing::drain_callbacks();
  }
  void make(storage::StoreOptions options, RestOptions rest = {}) {
    store_ = storage::make_memory_store(options);
    pool_ = std::make_unique<boost::asio::thread_pool>(2);
    handler_ = std::make_unique<RestHandler>(*store_, pool_->get_executor(), rest);
  }

  std::shared_ptr<FakeExchange> exchange(const std::string& method, const std::string& target,
                                         const std::string& body = "",
                                         std::vector<std::pair<std::string, std::string>> h = {}) {
    return testing::make_exchange(method, target, body, std::move(h));
  }

  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (!body.empty()) {
      bool has_ct = false;
      for (auto& [k, v] : headers) has_ct = has_ct || k == "Content-Type";
      if (!has_ct) headers.emplace_back("Content-Type", "application/json");
    }
    auto ex = exchange(method, target, body, headers);
    handler_->handle(ex);
    auto r = ex->wait_response();
    Reply reply;
    if (!r) return reply;
    reply.status = r->status;
    reply.raw = r->body;
    reply.headers = r->headers;
    reply.body = json::parse(r->body, nullptr, false);
    return reply;
  }

  Reply create(const std::string& group, const std::string& extra_meta = "") {
    return call("POST", kBase, manifest(group, "p", extra_meta));
  }

  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::unique_ptr<RestHandler> handler_;
};

TEST_F(RestHandlerTest, ServesItsPaths) {
  EXPECT_TRUE(handler_->serves("/apis/aggregation.grafana.app"));
  EXPECT_TRUE(handler_->serves(kBase + "/x"));
  EXPECT_TRUE(handler_->serves("/openapi/v3"));
  EXPECT_TRUE(handler_->serves("/api"));
  EXPECT_FALSE(handler_->serves("/apis"));
  EXPECT_FALSE(handler_->serves("/apis/prometheus.grafana.app/v0alpha1"));
}

TEST_F(RestHandlerTest, Discovery) {
  auto r = call("GET", "/apis/aggregation.grafana.app/v0alpha1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["kind"], "APIResourceList");
  const json& res = r.body["resources"][0];
  EXPECT_EQ(res["name"], "dataplaneservices");
  EXPECT_EQ(res["singularName"], "dataplaneservice");
  EXPECT_EQ(res["namespaced"], false);
  EXPECT_EQ(res["categories"], json::array({"dataplane"}));
  EXPECT_EQ(res["verbs"], json::parse(R"(["create","delete","deletecollection","get","list","patch","update","watch"])"));
  EXPECT_EQ(r.body["resources"][1]["name"], "dataplaneservices/status");
  r = call("GET", "/apis/aggregation.grafana.app");
  EXPECT_EQ(r.body["kind"], "APIGroup");
  EXPECT_EQ(r.body["preferredVersion"]["version"], "v0alpha1");
  EXPECT_EQ(RestHandler::aggregated_discovery_group()["versions"][0]["resources"][0]["scope"],
            "Cluster");
}

TEST_F(RestHandlerTest, CreateSetsMetadataAndDropsStatus) {
  std::string body = manifest("a.example.com");
  json obj = json::parse(body);
  obj["status"] = {{"conditions", {{{"type", "Available"}, {"status", "True"}}}}};
  auto r = call("POST", kBase + "?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
                obj.dump());
  ASSERT_EQ(r.status, 201) << r.raw;
  const json& m = r.body["metadata"];
  EXPECT_EQ(m["name"], "v1.a.example.com");
  EXPECT_EQ(m["generation"], 1);
  EXPECT_EQ(m["uid"].get<std::string>().size(), 36u);
  EXPECT_TRUE(m.contains("creationTimestamp"));
  EXPECT_FALSE(m["resourceVersion"].get<std::string>().empty());
  EXPECT_FALSE(r.body.contains("status"));
  EXPECT_EQ(m["managedFields"][0]["manager"], "kubectl-client-side-apply");
  EXPECT_EQ(m["managedFields"][0]["operation"], "Update");

  auto got = call("GET", kBase + "/v1.a.example.com");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body["metadata"]["uid"], m["uid"]);
  EXPECT_EQ(got.body["metadata"]["resourceVersion"], m["resourceVersion"]);

  auto again = call("POST", kBase, body);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.body["reason"], "AlreadyExists");
  EXPECT_EQ(again.body["message"],
            "dataplaneservices.aggregation.grafana.app \"v1.a.example.com\" already exists");
}

TEST_F(RestHandlerTest, CreateFromYaml) {
  std::string yaml =
      "apiVersion: aggregation.grafana.app/v0alpha1\nkind: DataPlaneService\nmetadata:\n"
      "  name: v1.y.example.com\nspec:\n  pluginID: p\n  pluginType: app\n"
      "  group: y.example.com\n  version: v1\n  services:\n    - type: query\n";
  auto r = call("POST", kBase, yaml, {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(r.status, 201) << r.raw;
  auto y = call("GET", kBase + "/v1.y.example.com", "", {{"Accept", "application/yaml"}});
  ASSERT_EQ(y.status, 200);
  EXPECT_EQ(y.header("Content-Type"), "application/yaml");
  EXPECT_NE(y.raw.find("pluginType: app"), std::string::npos) << y.raw;
}

TEST_F(RestHandlerTest, BadBodies) {
  EXPECT_EQ(call("POST", kBase, "{not json").status, 400);
  EXPECT_EQ(call("POST", kBase, "a: 1\n---\nb: 2\n", {{"Content-Type", "application/yaml"}}).status, 400);
  json wrong = json::parse(manifest("a.example.com"));
  wrong["kind"] = "APIService";
  EXPECT_EQ(call("POST", kBase, wrong.dump()).status, 400);
  json invalid = json::parse(manifest("a.example.com"));
  invalid["spec"]["pluginType"] = "panel";
  auto r = call("POST", kBase, invalid.dump());
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.body["details"]["causes"][0]["field"], "spec.pluginType");
  EXPECT_EQ(call("POST", kBase, manifest("a.example.com"), {{"Content-Type", "application/vnd.kubernetes.protobuf"}}).status, 415);
  EXPECT_EQ(call("GET", kBase, "", {{"Accept", "application/vnd.kubernetes.protobuf"}}).status, 406);
  EXPECT_EQ(call("POST", kBase + "?dryRun=Some", manifest("a.example.com")).status, 422);
}

TEST_F(RestHandlerTest, BodyLimitIs413) {
  TearDown();
  RestOptions small;
  small.max_body_bytes = 100;
  make(storage::StoreOptions{}, small);
  auto r = call("POST", kBase, manifest("a.example.com"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body["reason"], "RequestEntityTooLarge");
}

TEST_F(RestHandlerTest, StrictWarnAndIgnoreFieldValidation) {
  json obj = json::parse(manifest("a.example.com"));
  obj["spec"]["foo"] = 1;
  auto strict = call("POST", kBase + "?fieldValidation=Strict", obj.dump());
  EXPECT_EQ(strict.status, 422);
  EXPECT_EQ(strict.body["message"], "strict decoding error: unknown field \"spec.foo\"");
  auto warn = call("POST", kBase + "?fieldValidation=Warn", obj.dump());
  ASSERT_EQ(warn.status, 201);
  EXPECT_EQ(warn.header("Warning"), "299 - \"unknown field \\\"spec.foo\\\"\"");
  EXPECT_FALSE(warn.body["spec"].contains("foo"));
}

TEST_F(RestHandlerTest, GenerateNameAndDryRun) {
  auto dry = call("POST", kBase + "?dryRun=All", manifest("d.example.com"));
  ASSERT_EQ(dry.status, 201);
  EXPECT_EQ(call("GET", kBase + "/v1.d.example.com").status, 404);
  json gen = json::parse(manifest("g.example.com"));
  gen["metadata"].erase("name");
  gen["metadata"]["generateName"] = "v1.g.example.com-";
  auto r = call("POST", kBase, gen.dump());
  // The generated name cannot equal <version>.<group>, so validation names it.
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(r.body["details"]["causes"][0]["field"], "metadata.name");
  EXPECT_NE(r.body["details"]["name"].get<std::string>().find("v1.g.example.com-"), std::string::npos);
}

TEST_F(RestHandlerTest, UpdateConcurrencyAndGeneration) {
  auto c = create("u.example.com");
  ASSERT_EQ(c.status, 201);
  json obj = c.body;
  obj["metadata"]["labels"] = {{"team", "a"}};
  auto r = call("PUT", kBase + "/v1.u.example.com", obj.dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["metadata"]["generation"], 1);  // labels are not spec
  EXPECT_NE(r.body["metadata"]["resourceVersion"], obj["metadata"]["resourceVersion"]);

  auto stale = call("PUT", kBase + "/v1.u.example.com", obj.dump());
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.body["reason"], "Conflict");
  EXPECT_EQ(stale.body["message"],
            "Operation cannot be fulfilled on dataplaneservices.aggregation.grafana.app "
            "\"v1.u.example.com\": the object has been modified; please apply your changes to "
            "the latest version and try again");

  json next = r.body;
  next["spec"]["pluginID"] = "q";
  next["status"] = {{"conditions", {{{"type", "Available"}, {"status", "True"}}}}};
  auto r2 = call("PUT", kBase + "/v1.u.example.com", next.dump());
  ASSERT_EQ(r2.status, 200);
  EXPECT_EQ(r2.body["metadata"]["generation"], 2);
  EXPECT_FALSE(r2.body.contains("status"));  // status via the main resource is ignored

  json no_rv = r2.body;
  no_rv["metadata"].erase("resourceVersion");
  auto r3 = call("PUT", kBase + "/v1.u.example.com", no_rv.dump());
  EXPECT_EQ(r3.status, 422);
  EXPECT_EQ(r3.body["details"]["causes"][0]["field"], "metadata.resourceVersion");

  json other = r2.body;
  other["metadata"]["name"] = "v1.other.example.com";
  EXPECT_EQ(call("PUT", kBase + "/v1.u.example.com", other.dump()).status, 400);
  EXPECT_EQ(call("PUT", kBase + "/v1.missing.example.com", manifest("missing.example.com")).status, 422);
}

TEST_F(RestHandlerTest, StatusSubresource) {
  auto c = create("s.example.com");
  json obj = c.body;
  obj["status"] = {{"conditions", {{{"type", "Available"}, {"status", "False"}, {"reason", "PluginNotFound"}}}}};
  obj["spec"]["pluginID"] = "ignored";
  auto r = call("PUT", kBase + "/v1.s.example.com/status", obj.dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["status"]["conditions"][0]["reason"], "PluginNotFound");
  EXPECT_EQ(r.body["spec"]["pluginID"], "p");  // only status persists
  auto patched = call("PATCH", kBase + "/v1.s.example.com/status",
                      R"({"status":{"conditions":[{"type":"Available","status":"True"}]}})",
                      {{"Content-Type", "application/merge-patch+json"}});
  ASSERT_EQ(patched.status, 200) << patched.raw;
  EXPECT_EQ(patched.body["status"]["conditions"][0]["status"], "True");
  auto table = call("GET", kBase, "", {{"Accept", kTableAccept}});
  EXPECT_EQ(table.body["rows"][0]["cells"][4], "True");
}

TEST_F(RestHandlerTest, AvailableCondition) {
  create("c.example.com");
  ASSERT_TRUE(handler_->set_available_condition("v1.c.example.com", false, "PluginNotFound", "no plugin p").ok());
  auto a = handler_->get("v1.c.example.com");
  ASSERT_TRUE(a.ok());
  std::string rv = (*a)["metadata"]["resourceVersion"];
  std::string t = (*a)["status"]["conditions"][0]["lastTransitionTime"];
  ASSERT_TRUE(handler_->set_available_condition("v1.c.example.com", false, "PluginNotFound", "no plugin p").ok());
  EXPECT_EQ((*handler_->get("v1.c.example.com"))["metadata"]["resourceVersion"], rv);  // no-op
  auto table = call("GET", kBase, "", {{"Accept", kTableAccept}});
  EXPECT_EQ(table.body["rows"][0]["cells"][4], "False (PluginNotFound)");
  EXPECT_EQ(handler_->set_available_condition("v1.nope.example.com", true, "Passed", "").error().code, 404);
}

TEST_F(RestHandlerTest, GetIsAConsistentReadInEveryForm) {
  create("c.example.com");
  // Written to the store behind the handler's back: the GET right after must still see it (it
  // waits for the watch cache to have the store's revision).
  ASSERT_TRUE(handler_->set_available_condition("v1.c.example.com", true, "Passed", "").ok());
  const std::string rv = std::to_string(store_->current_revision());
  auto got = call("GET", kBase + "/v1.c.example.com");
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.body["metadata"]["resourceVersion"], rv);
  EXPECT_EQ(got.body["status"]["conditions"][0]["status"], "True");
  EXPECT_EQ(got.body, *handler_->get("v1.c.example.com"));  // the stored object, as served
  auto yaml = call("GET", kBase + "/v1.c.example.com", "", {{"Accept", "application/yaml"}});
  ASSERT_EQ(yaml.status, 200);
  EXPECT_NE(yaml.raw.find("resourceVersion: \"" + rv + "\""), std::string::npos) << yaml.raw;
  auto table = call("GET", kBase + "/v1.c.example.com", "", {{"Accept", kTableAccept}});
  ASSERT_EQ(table.status, 200);
  EXPECT_EQ(table.body["rows"][0]["cells"][4], "True");
  ASSERT_TRUE(store_->remove(key_of("v1.c.example.com"), 0).ok());
  auto gone = call("GET", kBase + "/v1.c.example.com");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.body["reason"], "NotFound");
}

TEST_F(RestHandlerTest, PatchMergeJsonAndStrategic) {
  create("m.example.com");
  auto merge = call("PATCH", kBase + "/v1.m.example.com?fieldManager=kubectl-label",
                    R"({"metadata":{"labels":{"env":"prod"}}})",
                    {{"Content-Type", "application/merge-patch+json"}});
  ASSERT_EQ(merge.status, 200) << merge.raw;
  EXPECT_EQ(merge.body["metadata"]["labels"]["env"], "prod");
  auto jp = call("PATCH", kBase + "/v1.m.example.com",
                 R"([{"op":"add","path":"/spec/services/-","value":{"type":"health"}}])",
                 {{"Content-Type", "application/json-patch+json"}});
  ASSERT_EQ(jp.status, 200) << jp.raw;
  EXPECT_EQ(jp.body["spec"]["services"].size(), 2u);
  EXPECT_EQ(jp.body["metadata"]["generation"], 2);
  auto failing = call("PATCH", kBase + "/v1.m.example.com",
                      R"([{"op":"test","path":"/spec/pluginID","value":"zzz"}])",
                      {{"Content-Type", "application/json-patch+json"}});
  EXPECT_EQ(failing.status, 422);
  auto invalid = call("PATCH", kBase + "/v1.m.example.com", R"({"spec":{"pluginType":"x"}})",
                      {{"Content-Type", "application/merge-patch+json"}});
  EXPECT_EQ(invalid.status, 422);
  auto strategic = call("PATCH", kBase + "/v1.m.example.com", "{}",
                        {{"Content-Type", "application/strategic-merge-patch+json"}});
  EXPECT_EQ(strategic.status, 415);
  EXPECT_EQ(strategic.body["message"],
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml");
  auto stale = call("PATCH", kBase + "/v1.m.example.com",
                    R"({"metadata":{"resourceVersion":"1"},"spec":{"pluginID":"z"}})",
                    {{"Content-Type", "application/merge-patch+json"}});
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(call("PATCH", kBase + "/v1.none.example.com", "{}",
                 {{"Content-Type", "application/merge-patch+json"}}).status, 404);
  EXPECT_EQ(call("PATCH", kBase + "/v1.m.example.com?force=true", "{}",
                 {{"Content-Type", "application/merge-patch+json"}}).status, 422);
}

TEST_F(RestHandlerTest, ServerSideApply) {
  const std::string url = kBase + "/v1.ssa.example.com";
  auto no_manager = call("PATCH", url, manifest("ssa.example.com"),
                         {{"Content-Type", "application/apply-patch+yaml"}});
  EXPECT_EQ(no_manager.status, 422);
  auto created = call("PATCH", url + "?fieldManager=alice", manifest("ssa.example.com"),
                      {{"Content-Type", "application/apply-patch+yaml"}});
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_EQ(created.body["metadata"]["managedFields"][0]["operation"], "Apply");
  auto same = call("PATCH", url + "?fieldManager=alice", manifest("ssa.example.com"),
                   {{"Content-Type", "application/apply-patch+yaml"}});
  EXPECT_EQ(same.status, 200);
  EXPECT_EQ(same.body["metadata"]["resourceVersion"], created.body["metadata"]["resourceVersion"]);
  auto conflict = call("PATCH", url + "?fieldManager=bob", manifest("ssa.example.com", "other"),
                       {{"Content-Type", "application/apply-patch+yaml"}});
  ASSERT_EQ(conflict.status, 409) << conflict.raw;
  EXPECT_EQ(conflict.body["details"]["causes"][0]["field"], ".spec.pluginID");
  auto forced = call("PATCH", url + "?fieldManager=bob&force=true",
                     manifest("ssa.example.com", "other"),
                     {{"Content-Type", "application/apply-patch+yaml"}});
  ASSERT_EQ(forced.status, 200) << forced.raw;
  EXPECT_EQ(forced.body["spec"]["pluginID"], "other");
}

TEST_F(RestHandlerTest, DeleteWithPreconditions) {
  auto c = create("del.example.com");
  auto wrong = call("DELETE", kBase + "/v1.del.example.com",
                    R"({"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"nope"}})");
  EXPECT_EQ(wrong.status, 409);
  auto dry = call("DELETE", kBase + "/v1.del.example.com?dryRun=All");
  EXPECT_EQ(dry.status, 200);
  EXPECT_EQ(call("GET", kBase + "/v1.del.example.com").status, 200);
  auto r = call("DELETE", kBase + "/v1.del.example.com",
                R"({"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["metadata"]["uid"], c.body["metadata"]["uid"]);
  auto gone = call("GET", kBase + "/v1.del.example.com");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.body["message"],
            "dataplaneservices.aggregation.grafana.app \"v1.del.example.com\" not found");
  EXPECT_EQ(gone.body["details"]["kind"], "dataplaneservices");
}

TEST_F(RestHandlerTest, FinalizersHoldDelete) {
  create("fin.example.com", R"(,"finalizers":["example.com/hold"])");
  auto r = call("DELETE", kBase + "/v1.fin.example.com");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.body["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(call("GET", kBase + "/v1.fin.example.com").status, 200);
  auto p = call("PATCH", kBase + "/v1.fin.example.com", R"({"metadata":{"finalizers":null}})",
                {{"Content-Type", "application/merge-patch+json"}});
  ASSERT_EQ(p.status, 200) << p.raw;
  EXPECT_EQ(call("GET", kBase + "/v1.fin.example.com").status, 404);
}

TEST_F(RestHandlerTest, ListSelectorsPagingAndTable) {
  for (int i = 0; i < 5; ++i) {
    std::string g = "l" + std::to_string(i) + ".example.com";
    ASSERT_EQ(create(g, std::string(R"(,"labels":{"parity":")") + (i % 2 ? "odd" : "even") + "\"}").status, 201);
  }
  auto all = call("GET", kBase);
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(all.body["kind"], "DataPlaneServiceList");
  EXPECT_EQ(all.body["items"].size(), 5u);
  EXPECT_EQ(all.body["items"][0]["apiVersion"], "aggregation.grafana.app/v0alpha1");
  EXPECT_EQ(all.body["metadata"]["resourceVersion"], std::to_string(store_->current_revision()));
  EXPECT_EQ(call("GET", kBase + "?labelSelector=parity%3Dodd").body["items"].size(), 2u);
  EXPECT_EQ(call("GET", kBase + "?labelSelector=parity+in+(odd,even),parity!=odd").body["items"].size(), 3u);
  EXPECT_EQ(call("GET", kBase + "?fieldSelector=metadata.name%3Dv1.l3.example.com").body["items"].size(), 1u);
  EXPECT_EQ(call("GET", kBase + "?fieldSelector=spec.group%3Dx").status, 400);
  EXPECT_EQ(call("GET", kBase + "?labelSelector=a%3D(b").status, 400);

  std::vector<std::string> names;
  std::string cont;
  int pages = 0;
  do {
    auto page = call("GET", kBase + "?limit=2" + (cont.empty() ? "" : "&continue=" + cont));
    ASSERT_EQ(page.status, 200) << page.raw;
    for (auto& item : page.body["items"]) names.push_back(item["metadata"]["name"]);
    cont = page.body["metadata"].value("continue", "");
    if (!cont.empty()) {
      EXPECT_GT(page.body["metadata"]["remainingItemCount"].get<int>(), 0);
    }
    ++pages;
  } while (!cont.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(names.size(), 5u);
  EXPECT_EQ(call("GET", kBase + "?continue=garbage").status, 400);

  auto table = call("GET", kBase, "", {{"Accept", kTableAccept}});
  ASSERT_EQ(table.status, 200);
  EXPECT_EQ(table.body["kind"], "Table");
  std::vector<std::string> cols;
  for (auto& c : table.body["columnDefinitions"]) cols.push_back(c["name"]);
  EXPECT_EQ(cols, (std::vector<std::string>{"Name", "Plugin", "Group/Version", "Services",
                                            "Available", "Age"}));
  EXPECT_EQ(table.body["rows"][0]["cells"][0], "v1.l0.example.com");
  EXPECT_EQ(table.body["rows"][0]["cells"][2], "l0.example.com/v1");
  EXPECT_EQ(table.body["rows"][0]["cells"][3], "query");
  EXPECT_EQ(table.body["rows"][0]["cells"][4], "Unknown");
  EXPECT_EQ(table.body["rows"][0]["object"]["kind"], "PartialObjectMetadata");

  auto deleted = call("DELETE", kBase + "?labelSelector=parity%3Deven");
  ASSERT_EQ(deleted.status, 200);
  EXPECT_EQ(deleted.body["items"].size(), 3u);
  EXPECT_EQ(call("GET", kBase).body["items"].size(), 2u);
}

TEST_F(RestHandlerTest, ListResourceVersionSemantics) {
  create("rv.example.com");
  auto big = call("GET", kBase + "?resourceVersion=99999&resourceVersionMatch=NotOlderThan");
  EXPECT_EQ(big.status, 504);
  EXPECT_EQ(call("GET", kBase + "?resourceVersion=abc").status, 400);
  EXPECT_EQ(call("GET", kBase + "?sendInitialEvents=true&resourceVersionMatch=NotOlderThan").status, 422);
}

std::vector<json> events(FakeExchange& ex) {
  std::vector<json> out;
  for (auto& l : ex.lines()) out.push_back(json::parse(l));
  return out;
}

TEST_F(RestHandlerTest, WatchInitialStateThenChanges) {
  create("w1.example.com");
  auto ex = exchange("GET", kBase + "?watch=true");
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(1));
  ASSERT_TRUE(ex->stream_head().has_value());
  EXPECT_EQ(ex->stream_head()->status, 200);
  create("w2.example.com");
  call("PATCH", kBase + "/v1.w2.example.com", R"({"spec":{"pluginID":"z"}})",
       {{"Content-Type", "application/merge-patch+json"}});
  call("DELETE", kBase + "/v1.w1.example.com");
  ASSERT_TRUE(ex->wait_lines(4));
  auto ev = events(*ex);
  EXPECT_EQ(ev[0]["type"], "ADDED");
  EXPECT_EQ(ev[0]["object"]["metadata"]["name"], "v1.w1.example.com");
  EXPECT_EQ(ev[1]["type"], "ADDED");
  EXPECT_EQ(ev[2]["type"], "MODIFIED");
  EXPECT_EQ(ev[2]["object"]["spec"]["pluginID"], "z");
  EXPECT_EQ(ev[3]["type"], "DELETED");
  EXPECT_EQ(ev[3]["object"]["metadata"]["resourceVersion"], std::to_string(store_->current_revision()));
  ex->close_client();
  EXPECT_TRUE(ex->wait_finished());
}

TEST_F(RestHandlerTest, WatchFromResourceVersionGetsOnlyLaterEvents) {
  auto a = create("r1.example.com");
  std::string rv = a.body["metadata"]["resourceVersion"];
  create("r2.example.com");
  auto ex = exchange("GET", kBase + "?watch=1&resourceVersion=" + rv + "&timeoutSeconds=2");
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(1));
  auto ev = events(*ex);
  EXPECT_EQ(ev[0]["type"], "ADDED");
  EXPECT_EQ(ev[0]["object"]["metadata"]["name"], "v1.r2.example.com");
  EXPECT_TRUE(ex->wait_finished(std::chrono::seconds(5)));  // timeoutSeconds ends it cleanly
  EXPECT_EQ(ex->lines().size(), 1u);
}

TEST_F(RestHandlerTest, WatchSelectorMoveOutIsDeleted) {
  create("sel.example.com", R"(,"labels":{"team":"a"})");
  auto ex = exchange("GET", kBase + "?watch=true&labelSelector=team%3Da");
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(1));
  call("PATCH", kBase + "/v1.sel.example.com", R"({"metadata":{"labels":{"team":"b"}}})",
       {{"Content-Type", "application/merge-patch+json"}});
  create("other.example.com", R"(,"labels":{"team":"b"})");
  call("PATCH", kBase + "/v1.other.example.com", R"({"metadata":{"labels":{"team":"a"}}})",
       {{"Content-Type", "application/merge-patch+json"}});
  ASSERT_TRUE(ex->wait_lines(3));
  auto ev = events(*ex);
  EXPECT_EQ(ev[1]["type"], "DELETED");
  EXPECT_EQ(ev[1]["object"]["metadata"]["name"], "v1.sel.example.com");
  EXPECT_EQ(ev[2]["type"], "ADDED");
  EXPECT_EQ(ev[2]["object"]["metadata"]["name"], "v1.other.example.com");
  ex->close_client();
}

TEST_F(RestHandlerTest, WatchFromARetainedRevisionReplaysExactlyTheMissedEventsInOrder) {
  auto first = create("m1.example.com");
  const std::string rv = first.body["metadata"]["resourceVersion"];
  create("m2.example.com");
  call("PATCH", kBase + "/v1.m1.example.com", R"({"spec":{"pluginID":"after"}})",
       {{"Content-Type", "application/merge-patch+json"}});
  call("DELETE", kBase + "/v1.m2.example.com");
  const int64_t deleted_at = store_->current_revision();
  auto ex = exchange("GET", kBase + "?watch=1&resourceVersion=" + rv);
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(3));
  create("m3.example.com");
  ASSERT_TRUE(ex->wait_lines(4));
  auto ev = events(*ex);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0]["type"], "ADDED");
  EXPECT_EQ(ev[0]["object"]["metadata"]["name"], "v1.m2.example.com");
  EXPECT_EQ(ev[1]["type"], "MODIFIED");
  EXPECT_EQ(ev[1]["object"]["spec"]["pluginID"], "after");
  EXPECT_EQ(ev[2]["type"], "DELETED");
  EXPECT_EQ(ev[2]["object"]["metadata"]["resourceVersion"], std::to_string(deleted_at));
  EXPECT_EQ(ev[3]["type"], "ADDED");
  EXPECT_EQ(ev[3]["object"]["metadata"]["name"], "v1.m3.example.com");
  for (std::size_t i = 1; i < ev.size(); ++i) {
    EXPECT_LT(std::stoll(ev[i - 1]["object"]["metadata"]["resourceVersion"].get<std::string>()),
              std::stoll(ev[i]["object"]["metadata"]["resourceVersion"].get<std::string>()));
  }
  ex->close_client();
}

TEST_F(RestHandlerTest, ASelectorWatchFromARevisionSeesObjectsEnterAndLeave) {
  // No initial state: whether an object was visible is decided from the event's previous
  // object, not from a per-watcher list of names.
  create("in.example.com", R"(,"labels":{"team":"a"})");
  create("out.example.com", R"(,"labels":{"team":"b"})");
  auto ex = exchange("GET", kBase + "?watch=1&labelSelector=team%3Da&resourceVersion=" +
                                std::to_string(store_->current_revision()));
  handler_->handle(ex);
  call("PATCH", kBase + "/v1.in.example.com", R"({"metadata":{"labels":{"team":"b"}}})",
       {{"Content-Type", "application/merge-patch+json"}});
  const int64_t left_at = store_->current_revision();
  call("PATCH", kBase + "/v1.out.example.com", R"({"spec":{"pluginID":"unseen"}})",
       {{"Content-Type", "application/merge-patch+json"}});
  call("PATCH", kBase + "/v1.out.example.com", R"({"metadata":{"labels":{"team":"a"}}})",
       {{"Content-Type", "application/merge-patch+json"}});
  call("PATCH", kBase + "/v1.out.example.com", R"({"spec":{"pluginID":"seen"}})",
       {{"Content-Type", "application/merge-patch+json"}});
  call("DELETE", kBase + "/v1.in.example.com");  // not visible any more: no event
  call("DELETE", kBase + "/v1.out.example.com");
  ASSERT_TRUE(ex->wait_lines(4));
  auto ev = events(*ex);
  ASSERT_EQ(ev.size(), 4u);
  // Leaving: DELETED with the object as the watcher last saw it, at the event's revision.
  EXPECT_EQ(ev[0]["type"], "DELETED");
  EXPECT_EQ(ev[0]["object"]["metadata"]["name"], "v1.in.example.com");
  EXPECT_EQ(ev[0]["object"]["metadata"]["labels"]["team"], "a");
  EXPECT_EQ(ev[0]["object"]["metadata"]["resourceVersion"], std::to_string(left_at));
  EXPECT_EQ(ev[1]["type"], "ADDED");
  EXPECT_EQ(ev[1]["object"]["metadata"]["name"], "v1.out.example.com");
  EXPECT_EQ(ev[1]["object"]["spec"]["pluginID"], "unseen");
  EXPECT_EQ(ev[2]["type"], "MODIFIED");
  EXPECT_EQ(ev[2]["object"]["spec"]["pluginID"], "seen");
  EXPECT_EQ(ev[3]["type"], "DELETED");
  EXPECT_EQ(ev[3]["object"]["metadata"]["name"], "v1.out.example.com");
  ex->close_client();
}

TEST_F(RestHandlerTest, AStalledWatcherIsCutOffWhileTheOthersKeepReceiving) {
  TearDown();
  RestOptions rest;
  rest.max_watch_pending_bytes = 64 << 10;
  make(storage::StoreOptions{}, rest);
  const std::string rv = std::to_string(store_->current_revision());
  std::vector<std::shared_ptr<FakeExchange>> watchers;
  for (int i = 0; i < 100; ++i) {
    watchers.push_back(exchange("GET", kBase + "?watch=1&resourceVersion=" + rv));
    handler_->handle(watchers.back());
  }
  auto stalled = exchange("GET", kBase + "?watch=1&resourceVersion=" + rv);
  handler_->handle(stalled);
  create("s0.example.com");
  ASSERT_TRUE(stalled->wait_lines(1));
  // Its client stops reading: 64 KiB are waiting in its socket buffers.
  stalled->set_pending_bytes(64 << 10);
  for (int i = 1; i < 20; ++i) create("s" + std::to_string(i) + ".example.com");
  EXPECT_TRUE(stalled->wait_finished());
  EXPECT_EQ(stalled->lines().size(), 1u);
  for (auto& w : watchers) {
    ASSERT_TRUE(w->wait_lines(20));
    EXPECT_FALSE(w->finished());
    w->close_client();
  }
}

TEST_F(RestHandlerTest, ListsAtAPastRevisionAndPagesFromASnapshot) {
  create("p1.example.com");
  create("p3.example.com");
  const std::string then = std::to_string(store_->current_revision());
  call("PATCH", kBase + "/v1.p1.example.com", R"({"spec":{"pluginID":"later"}})",
       {{"Content-Type", "application/merge-patch+json"}});
  // Exact: the state at that revision, not the current one.
  auto exact = call("GET", kBase + "?resourceVersion=" + then + "&resourceVersionMatch=Exact");
  ASSERT_EQ(exact.status, 200) << exact.raw;
  EXPECT_EQ(exact.body["metadata"]["resourceVersion"], then);
  ASSERT_EQ(exact.body["items"].size(), 2u);
  EXPECT_EQ(exact.body["items"][0]["spec"]["pluginID"], "p");

  // A paged list continues from the first page's snapshot: objects created, changed or deleted
  // after it do not show.
  auto page1 = call("GET", kBase + "?limit=1");
  ASSERT_EQ(page1.status, 200);
  ASSERT_EQ(page1.body["items"].size(), 1u);
  const std::string token = page1.body["metadata"]["continue"];
  create("p2.example.com");
  call("PATCH", kBase + "/v1.p3.example.com", R"({"spec":{"pluginID":"later"}})",
       {{"Content-Type", "application/merge-patch+json"}});
  auto page2 = call("GET", kBase + "?limit=5&continue=" + token);
  ASSERT_EQ(page2.status, 200) << page2.raw;
  ASSERT_EQ(page2.body["items"].size(), 1u);
  EXPECT_EQ(page2.body["items"][0]["metadata"]["name"], "v1.p3.example.com");
  EXPECT_EQ(page2.body["items"][0]["spec"]["pluginID"], "p");
  EXPECT_EQ(page2.body["metadata"]["resourceVersion"], page1.body["metadata"]["resourceVersion"]);
  // And a list right after a write sees it (a consistent read).
  create("p4.example.com");
  EXPECT_EQ(call("GET", kBase).body["items"].size(), 4u);
}

TEST_F(RestHandlerTest, WatchListEndsInitialEventsWithBookmark) {
  create("wl.example.com");
  auto ex = exchange("GET", kBase + "?watch=true&sendInitialEvents=true&resourceVersionMatch="
                            "NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30");
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(2));
  auto ev = events(*ex);
  EXPECT_EQ(ev[0]["type"], "ADDED");
  EXPECT_EQ(ev[1]["type"], "BOOKMARK");
  EXPECT_EQ(ev[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
  EXPECT_EQ(ev[1]["object"]["metadata"]["resourceVersion"], std::to_string(store_->current_revision()));
  ex->close_client();
}

TEST_F(RestHandlerTest, PeriodicBookmarks) {
  TearDown();
  RestOptions fast;
  fast.bookmark_interval = std::chrono::seconds(1);
  make(storage::StoreOptions{}, fast);
  create("bm.example.com");
  auto ex = exchange("GET", kBase + "?watch=true&allowWatchBookmarks=true&resourceVersion=" +
                            std::to_string(store_->current_revision()));
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(1, std::chrono::seconds(5)));
  auto ev = events(*ex);
  EXPECT_EQ(ev[0]["type"], "BOOKMARK");
  EXPECT_EQ(ev[0]["object"]["kind"], "DataPlaneService");
  EXPECT_EQ(ev[0]["object"]["metadata"]["resourceVersion"], std::to_string(store_->current_revision()));
  ex->close_client();
}

TEST_F(RestHandlerTest, WatchFromCompactedVersionIsExpired) {
  TearDown();
  storage::StoreOptions options;
  options.memory_history_limit = 2;
  make(options);
  for (int i = 0; i < 6; ++i) create("c" + std::to_string(i) + ".example.com");
  ASSERT_GT(store_->compacted_revision(), 1);
  auto ex = exchange("GET", kBase + "?watch=true&resourceVersion=1");
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(1));
  EXPECT_EQ(ex->stream_head()->status, 200);
  auto ev = events(*ex);
  EXPECT_EQ(ev[0]["type"], "ERROR");
  EXPECT_EQ(ev[0]["object"]["code"], 410);
  EXPECT_EQ(ev[0]["object"]["reason"], "Expired");
  EXPECT_TRUE(ex->wait_finished());
}

TEST_F(RestHandlerTest, WatchTableEvents) {
  create("t.example.com");
  auto ex = exchange("GET", kBase + "?watch=true", "", {{"Accept", kTableAccept}});
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(1));
  create("t2.example.com");
  ASSERT_TRUE(ex->wait_lines(2));
  auto ev = events(*ex);
  EXPECT_EQ(ev[0]["object"]["kind"], "Table");
  EXPECT_EQ(ev[0]["object"]["columnDefinitions"].size(), 6u);
  EXPECT_TRUE(ev[1]["object"]["columnDefinitions"].empty());
  EXPECT_EQ(ev[1]["object"]["rows"][0]["cells"][0], "v1.t2.example.com");
  ex->close_client();
}

TEST_F(RestHandlerTest, SingleObjectWatchViaFieldSelector) {
  create("one.example.com");
  create("two.example.com");
  auto ex = exchange("GET", kBase + "?watch=true&fieldSelector=metadata.name%3Dv1.two.example.com");
  handler_->handle(ex);
  ASSERT_TRUE(ex->wait_lines(1));
  call("DELETE", kBase + "/v1.one.example.com");
  call("DELETE", kBase + "/v1.two.example.com");
  ASSERT_TRUE(ex->wait_lines(2));
  auto ev = events(*ex);
  EXPECT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1]["type"], "DELETED");
  EXPECT_EQ(ev[1]["object"]["metadata"]["name"], "v1.two.example.com");
  ex->close_client();
}

TEST_F(RestHandlerTest, OpenApiV3) {
  auto index = call("GET", "/openapi/v3");
  ASSERT_EQ(index.status, 200);
  std::string url = index.body["paths"]["apis/aggregation.grafana.app/v0alpha1"]["serverRelativeURL"];
  EXPECT_EQ(url.rfind("/openapi/v3/apis/aggregation.grafana.app/v0alpha1?hash=", 0), 0u);
  auto doc = call("GET", url);
  ASSERT_EQ(doc.status, 200);
  const json& patch = doc.body["paths"][kBase + "/{name}"]["patch"];
  EXPECT_EQ(patch["x-kubernetes-group-version-kind"]["kind"], "DataPlaneService");
  bool has_validation = false;
  for (auto& p : patch["parameters"]) has_validation |= p["name"] == "fieldValidation" && p["in"] == "query";
  EXPECT_TRUE(has_validation);
  EXPECT_TRUE(patch["requestBody"]["content"].contains("application/apply-patch+yaml"));
  EXPECT_FALSE(patch["requestBody"]["content"].contains("application/strategic-merge-patch+json"));
  EXPECT_EQ(doc.body["components"]["schemas"]["com.grafana.aggregation.v0alpha1.DataPlaneServiceSpec"]
                    ["properties"]["pluginType"]["enum"], json::array({"app", "datasource"}));
  std::string etag = doc.header("ETag");
  ASSERT_FALSE(etag.empty());
  auto ex = exchange("GET", url, "", {{"If-None-Match", etag}});
  handler_->handle(ex);
  EXPECT_EQ(ex->wait_response()->status, 304);
  EXPECT_EQ(call("GET", "/openapi/v2").status, 404);
}

TEST_F(RestHandlerTest, UnknownPathsAndMethods) {
  EXPECT_EQ(call("GET", "/apis/aggregation.grafana.app/v0alpha1/foos").status, 404);
  EXPECT_EQ(call("PUT", kBase).status, 405);
  EXPECT_EQ(call("POST", kBase + "/x/status").status, 405);
  auto api = call("GET", "/api");
  EXPECT_EQ(api.body["kind"], "APIVersions");
}

}  // namespace
}  // namespace dpa::dataplaneservice
