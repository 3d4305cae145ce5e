// One test per validation rule of DESIGN §2.1: each asserts 422 Invalid and the field named.
#include "aggregator/dataplaneservice/types.h"

#include <gtest/gtest.h>

namespace dpa::dataplaneservice {
namespace {

using nlohmann::json;

json valid_object() {
  return json::parse(R"({
    "apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
    "metadata": {"name": "v0alpha1.testdata.datasource.grafana.app"},
    "spec": {"pluginID": "grafana-testdata-datasource", "pluginType": "datasource",
             "group": "testdata.datasource.grafana.app", "version": "v0alpha1",
             "services": [{"type": "query"}, {"type": "health"}, {"type": "route"}]}})");
}

// Asserts validate() fails with 422 and a cause on `field` with `reason`.
void expect_invalid(const json& object, const std::string& field, const std::string& reason) {
  auto r = validate(object);
  ASSERT_FALSE(r.ok()) << object.dump();
  EXPECT_EQ(r.error().code, 422);
  EXPECT_EQ(r.error().reason, "Invalid");
  bool found = false;
  for (const auto& c : r.error().details["causes"]) {
    if (c["field"] == field) {
      found = true;
      EXPECT_EQ(c["reason"], reason) << c.dump();
    }
  }
  EXPECT_TRUE(found) << "no cause for " << field << " in " << r.error().body();
  EXPECT_NE(r.error().message.find("DataPlaneService.aggregation.grafana.app"), std::string::npos);
}

TEST(Validate, ValidObjectPasses) {
  auto r = validate(valid_object());
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().body());
}

TEST(Validate, NameMustBeVersionDotGroup) {
  json o = valid_object();
  o["metadata"]["name"] = "testdata";
  expect_invalid(o, "metadata.name", "FieldValueInvalid");
}

TEST(Validate, NameRequired) {
  json o = valid_object();
  o["metadata"].erase("name");
  expect_invalid(o, "metadata.name", "FieldValueRequired");
}

TEST(Validate, GroupMustBeDnsSubdomain) {
  json o = valid_object();
  o["spec"]["group"] = "Bad_Group";
  o["metadata"]["name"] = "v0alpha1.Bad_Group";
  expect_invalid(o, "spec.group", "FieldValueInvalid");
}

TEST(Validate, GroupRequired) {
  json o = valid_object();
  o["spec"].erase("group");
  expect_invalid(o, "spec.group", "FieldValueRequired");
}

TEST(Validate, VersionMustBeKubernetesVersion) {
  json o = valid_object();
  o["spec"]["version"] = "1.0";
  o["metadata"]["name"] = "1.0.testdata.datasource.grafana.app";
  expect_invalid(o, "spec.version", "FieldValueInvalid");
  for (const char* good : {"v1", "v2beta3", "v0alpha1", "v10"}) {
    json g = valid_object();
    g["spec"]["version"] = good;
    g["metadata"]["name"] = std::string(good) + ".testdata.datasource.grafana.app";
    EXPECT_TRUE(validate(g).ok()) << good;
  }
}

TEST(Validate, VersionRequired) {
  json o = valid_object();
  o["spec"]["version"] = "";
  expect_invalid(o, "spec.version", "FieldValueRequired");
}

TEST(Validate, PluginIdRequired) {
  json o = valid_object();
  o["spec"]["pluginID"] = "";
  expect_invalid(o, "spec.pluginID", "FieldValueRequired");
}

TEST(Validate, PluginTypeAppOrDatasource) {
  json o = valid_object();
  o["spec"]["pluginType"] = "panel";
  expect_invalid(o, "spec.pluginType", "FieldValueNotSupported");
  o["spec"]["pluginType"] = "app";
  EXPECT_TRUE(validate(o).ok());
}

TEST(Validate, PluginTypeRequired) {
  json o = valid_object();
  o["spec"].erase("pluginType");
  expect_invalid(o, "spec.pluginType", "FieldValueRequired");
}

TEST(Validate, ServiceTypeMustBeKnown) {
  json o = valid_object();
  o["spec"]["services"][2]["type"] = "settings";
  expect_invalid(o, "spec.services[2].type", "FieldValueNotSupported");
}

TEST(Validate, ServiceTypeRequired) {
  json o = valid_object();
  o["spec"]["services"][0] = json::object();
  expect_invalid(o, "spec.services[0].type", "FieldValueRequired");
}

TEST(Validate, EveryServiceTypeIsAccepted) {
  json o = valid_object();
  o["spec"]["services"] = json::array();
  for (const char* t : {"query", "stream", "route", "datasource-proxy", "admission", "conversion",
                        "health", "metrics"}) {
    o["spec"]["services"].push_back({{"type", t}});
  }
  auto r = validate(o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().body());
  o["spec"]["services"] = json::array({{{"type", "datsource-proxy"}}});  // Grafana's old spelling
  EXPECT_TRUE(validate(o).ok());
}

TEST(Validate, DuplicateServiceType) {
  json o = valid_object();
  o["spec"]["services"] = json::array({{{"type", "query"}}, {{"type", "query"}}});
  expect_invalid(o, "spec.services[1].type", "FieldValueDuplicate");
}

TEST(Validate, BothProxySpellingsCountAsOneType) {
  json o = valid_object();
  o["spec"]["services"] = json::array({{{"type", "datasource-proxy"}}, {{"type", "datsource-proxy"}}});
  expect_invalid(o, "spec.services[1].type", "FieldValueDuplicate");
}

TEST(Validate, RouteMayRepeat) {
  json o = valid_object();
  o["spec"]["services"] = json::array({{{"type", "route"}, {"path", "/a"}, {"method", "GET"}},
                                       {{"type", "route"}, {"path", "/b/{name}"}}});
  auto r = validate(o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().body());
}

TEST(Validate, RoutePathMustBeAbsolute) {
  json o = valid_object();
  o["spec"]["services"] = json::array({{{"type", "query"}}, {{"type", "route"}, {"path", "foo"}}});
  expect_invalid(o, "spec.services[1].path", "FieldValueInvalid");
}

TEST(Validate, RoutePathMustBeWellFormed) {
  for (const char* bad : {"/a/../b", "/a//b", "/a?x=1", "/a b", "/a#frag", "/{bad name}"}) {
    json o = valid_object();
    o["spec"]["services"] = json::array({{{"type", "query"}}, {{"type", "route"}, {"path", bad}}});
    expect_invalid(o, "spec.services[1].path", "FieldValueInvalid");
  }
}

TEST(Validate, DuplicateRoute) {
  json o = valid_object();
  o["spec"]["services"] = json::array({{{"type", "route"}, {"path", "/a"}},
                                       {{"type", "route"}, {"path", "/a"}}});
  expect_invalid(o, "spec.services[1].path", "FieldValueDuplicate");
}

TEST(Validate, RouteMethodMustBeValid) {
  json o = valid_object();
  o["spec"]["services"] = json::array({{{"type", "query"}},
                                       {{"type", "route"}, {"path", "/a"}, {"method", "FETCH"}}});
  expect_invalid(o, "spec.services[1].method", "FieldValueNotSupported");
  o["spec"]["services"][1]["method"] = "get";  // methods are case-sensitive tokens
  expect_invalid(o, "spec.services[1].method", "FieldValueNotSupported");
}

TEST(Validate, PathAndMethodOnlyForRoutes) {
  json o = valid_object();
  o["spec"]["services"] = json::array({{{"type", "query"}, {"path", "/a"}}});
  expect_invalid(o, "spec.services[0].path", "FieldValueForbidden");
  o["spec"]["services"] = json::array({{{"type", "query"}, {"method", "GET"}}});
  expect_invalid(o, "spec.services[0].method", "FieldValueForbidden");
}

TEST(Validate, IllTypedFields) {
  json o = valid_object();
  o["spec"]["group"] = 5;
  expect_invalid(o, "spec.group", "FieldValueTypeInvalid");
  o = valid_object();
  o["spec"]["services"] = "query";
  expect_invalid(o, "spec.services", "FieldValueTypeInvalid");
}

TEST(Validate, SpecRequired) {
  json o = valid_object();
  o.erase("spec");
  expect_invalid(o, "spec", "FieldValueRequired");
}

TEST(Validate, AllViolationsReportedTogether) {
  json o = valid_object();
  o["spec"]["pluginID"] = "";
  o["spec"]["pluginType"] = "x";
  auto r = validate(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details["causes"].size(), 2u);
}

TEST(ValidateStatus, ConditionRules) {
  json o = valid_object();
  o["status"] = {{"conditions", {{{"type", "Available"}, {"status", "Maybe"}}}}};
  auto r = validate_status(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details["causes"][0]["field"], "status.conditions[0].status");
  o["status"] = {{"conditions", {{{"type", "Available"}, {"status", "True"}},
                                 {{"type", "Available"}, {"status", "False"}}}}};
  r = validate_status(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details["causes"][0]["field"], "status.conditions[1].type");
  o["status"] = {{"conditions", {{{"type", "Available"}, {"status", "True"},
                                  {"lastTransitionTime", "yesterday"}}}}};
  EXPECT_FALSE(validate_status(o).ok());
}

TEST(UnknownFields, ListedWithPaths) {
  json o = valid_object();
  o["spec"]["foo"] = 1;
  o["spec"]["services"][1]["bar"] = 2;
  o["metadata"]["baz"] = 3;
  o["extra"] = 4;
  auto unknown = unknown_fields(o);
  EXPECT_EQ(unknown, (std::vector<std::string>{"extra", "metadata.baz", "spec.foo",
                                                "spec.services[1].bar"}));
  prune_unknown_fields(o);
  EXPECT_TRUE(unknown_fields(o).empty());
  EXPECT_EQ(o, valid_object());
}

TEST(TypeMeta, WrongKindOrApiVersionIs400) {
  json o = valid_object();
  o["kind"] = "APIService";
  EXPECT_EQ(check_type_meta(o).error().code, 400);
  o = valid_object();
  o["apiVersion"] = "apiregistration.k8s.io/v1";
  EXPECT_EQ(check_type_meta(o).error().code, 400);
  o = valid_object();
  o.erase("kind");
  EXPECT_EQ(check_type_meta(o).error().code, 400);
  EXPECT_TRUE(check_type_meta(valid_object()).ok());
}

TEST(DecodeSpec, ReadsFields) {
  auto spec = decode_spec(valid_object());
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->plugin_id, "grafana-testdata-datasource");
  EXPECT_EQ(spec->group, "testdata.datasource.grafana.app");
  EXPECT_EQ(spec->services.size(), 3u);
  EXPECT_TRUE(spec->has_service("health"));
  EXPECT_FALSE(spec->has_service("stream"));
}

}  // namespace
}  // namespace dpa::dataplaneservice
