#include "aggregator/apimachinery/managed_fields.h"

#include <gtest/gtest.h>

namespace dpa::api {
namespace {

using nlohmann::json;

ManagedFieldsConfig config() {
  ManagedFieldsConfig c;
  c.api_version = "aggregation.grafana.app/v0alpha1";
  c.list_map_keys = {{"status.conditions", "type"}};
  c.ignored_top_level = {"status"};
  return c;
}

json object(const std::string& group, const std::string& plugin) {
  return {{"apiVersion", "aggregation.grafana.app/v0alpha1"},
          {"kind", "DataPlaneService"},
          {"metadata", {{"name", "v1." + group}, {"labels", {{"a", "b"}}}}},
          {"spec", {{"group", group}, {"version", "v1"}, {"pluginID", plugin}}}};
}

TEST(ManagedFields, FieldsV1Format) {
  auto set = fields_of(object("x.example.com", "p"), config());
  json v1 = fields_to_v1(set);
  EXPECT_EQ(v1, json::parse(R"({"f:metadata":{"f:labels":{"f:a":{}}},
      "f:spec":{"f:group":{},"f:pluginID":{},"f:version":{}}})"));
  EXPECT_EQ(fields_from_v1(v1), set);
}

TEST(ManagedFields, ListMapElementsAreKeyed) {
  ManagedFieldsConfig c = config();
  c.ignored_top_level.clear();
  json obj = {{"status", {{"conditions", {{{"type", "Available"}, {"status", "True"}}}}}}};
  json v1 = fields_to_v1(fields_of(obj, c));
  EXPECT_EQ(v1, json::parse(R"({"f:status":{"f:conditions":{"k:{\"type\":\"Available\"}":{
      ".":{},"f:status":{},"f:type":{}}}}})"));
  EXPECT_EQ(field_path_string({"f:status", "f:conditions", "k:{\"type\":\"Available\"}", "f:status"}),
            ".status.conditions[type=\"Available\"].status");
}

TEST(ManagedFields, ApplyCreatesAndRecordsManager) {
  auto r = server_side_apply(nullptr, object("x.example.com", "p"), "kubectl", false,
                             "2026-01-01T00:00:00Z", config());
  ASSERT_TRUE(r.ok());
  const json& mf = (*r)["metadata"]["managedFields"];
  ASSERT_EQ(mf.size(), 1u);
  EXPECT_EQ(mf[0]["manager"], "kubectl");
  EXPECT_EQ(mf[0]["operation"], "Apply");
  EXPECT_EQ(mf[0]["fieldsType"], "FieldsV1");
  EXPECT_EQ((*r)["spec"]["pluginID"], "p");
}

TEST(ManagedFields, ConflictBetweenManagersIs409UnlessForced) {
  auto first = server_side_apply(nullptr, object("x.example.com", "p"), "alice", false,
                                 "2026-01-01T00:00:00Z", config());
  ASSERT_TRUE(first.ok());
  json bob = object("x.example.com", "other");
  auto conflict = server_side_apply(&*first, bob, "bob", false, "2026-01-01T00:00:01Z", config());
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code, 409);
  EXPECT_EQ(conflict.error().reason, "Conflict");
  EXPECT_EQ(conflict.error().message,
            "Apply failed with 1 conflict: conflict with \"alice\" using "
            "aggregation.grafana.app/v0alpha1: .spec.pluginID");
  ASSERT_EQ(conflict.error().details["causes"].size(), 1u);
  EXPECT_EQ(conflict.error().details["causes"][0]["reason"], "FieldManagerConflict");
  EXPECT_EQ(conflict.error().details["causes"][0]["field"], ".spec.pluginID");

  // Same values are shared, not conflicting.
  auto shared = server_side_apply(&*first, object("x.example.com", "p"), "bob", false,
                                  "2026-01-01T00:00:01Z", config());
  ASSERT_TRUE(shared.ok());

  auto forced = server_side_apply(&*first, bob, "bob", true, "2026-01-01T00:00:02Z", config());
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ((*forced)["spec"]["pluginID"], "other");
  for (const auto& e : (*forced)["metadata"]["managedFields"]) {
    auto owned = fields_from_v1(e["fieldsV1"]);
    bool has_plugin = owned.count({"f:spec", "f:pluginID"}) > 0;
    EXPECT_EQ(has_plugin, e["manager"] == "bob") << e.dump();
  }
}

TEST(ManagedFields, FieldsNoLongerAppliedAreRemoved) {
  json with_label = object("x.example.com", "p");
  auto first = server_side_apply(nullptr, with_label, "alice", false, "t", config());
  ASSERT_TRUE(first.ok());
  json without_label = with_label;
  without_label["metadata"].erase("labels");
  auto second = server_side_apply(&*first, without_label, "alice", false, "t", config());
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE((*second)["metadata"].contains("labels") &&
               (*second)["metadata"]["labels"].contains("a"));
}

TEST(ManagedFields, UpdateTakesOwnershipFromOthers) {
  auto applied = server_side_apply(nullptr, object("x.example.com", "p"), "alice", false, "t",
                                   config());
  ASSERT_TRUE(applied.ok());
  json after = *applied;
  after["spec"]["pluginID"] = "q";
  record_update(&*applied, after, "kubectl-edit", "t2", config());
  bool found_update = false;
  for (const auto& e : after["metadata"]["managedFields"]) {
    auto owned = fields_from_v1(e["fieldsV1"]);
    if (e["manager"] == "kubectl-edit") {
      found_update = true;
      EXPECT_EQ(e["operation"], "Update");
      EXPECT_TRUE(owned.count({"f:spec", "f:pluginID"}));
    } else {
      EXPECT_FALSE(owned.count({"f:spec", "f:pluginID"}));
    }
  }
  EXPECT_TRUE(found_update);
  // Alice re-applying her old value now conflicts with the editor.
  auto again = server_side_apply(&after, object("x.example.com", "p"), "alice", false, "t3",
                                 config());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, 409);
}

}  // namespace
}  // namespace dpa::api
