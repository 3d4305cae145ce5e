#include "aggregator/apimachinery/base64url.h"
#include "aggregator/apimachinery/codec.h"
#include "aggregator/apimachinery/negotiation.h"
#include "aggregator/apimachinery/object_meta.h"
#include "aggregator/apimachinery/request_options.h"
#include "aggregator/apimachinery/table.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace dpa::api {
namespace {

using nlohmann::json;

TEST(Negotiation, KubectlTableAccept) {
  auto n = negotiate_accept(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta."
      "k8s.io,application/json",
      true, true);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->kind, MediaKind::kTable);
  EXPECT_EQ(n->table_api_version, "meta.k8s.io/v1");
  auto beta = negotiate_accept("application/json;as=Table;v=v1beta1;g=meta.k8s.io", true, true);
  ASSERT_TRUE(beta.ok());
  EXPECT_EQ(beta->table_api_version, "meta.k8s.io/v1beta1");
  auto no_table = negotiate_accept(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json", false, true);
  ASSERT_TRUE(no_table.ok());
  EXPECT_EQ(no_table->kind, MediaKind::kJson);
}

TEST(Negotiation, JsonYamlAndNotAcceptable) {
  EXPECT_EQ(negotiate_accept("", true, true)->kind, MediaKind::kJson);
  EXPECT_EQ(negotiate_accept("*/*", true, true)->kind, MediaKind::kJson);
  EXPECT_EQ(negotiate_accept("application/yaml", true, true)->kind, MediaKind::kYaml);
  EXPECT_EQ(negotiate_accept("application/yaml", true, true)->content_type(), "application/yaml");
  auto proto = negotiate_accept("application/vnd.kubernetes.protobuf", true, true);
  ASSERT_FALSE(proto.ok());
  EXPECT_EQ(proto.error().code, 406);
  EXPECT_EQ(proto.error().reason, "NotAcceptable");
  EXPECT_FALSE(negotiate_accept("application/yaml", true, false).ok());
  EXPECT_EQ(negotiate_accept("application/vnd.kubernetes.protobuf;q=0.9,application/json;q=0.5",
                             true, true)->kind, MediaKind::kJson);
}

TEST(ContinueToken, RoundTripAndGarbage) {
  std::string t = encode_continue({42, "/registry/x/a"});
  auto back = decode_continue(t);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->resource_version, 42);
  EXPECT_EQ(back->start_after, "/registry/x/a");
  for (const char* bad : {"!!!", "aGVsbG8=", ""}) {
    auto r = decode_continue(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, 400);
  }
}

TEST(Base64Url, RawUrlAlphabetWithoutPadding) {
  // RFC 4648 §10 vectors, padding dropped.
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"},
      {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64url_encode(plain), encoded);
    EXPECT_EQ(base64url_decode(encoded), std::optional<std::string>(plain));
  }
  for (const char* bad : {"Zg==", "Zm9v+", "Zm9v/", "Z", "Zm9vY", "a b", "Zm9v!"}) {
    EXPECT_EQ(base64url_decode(bad), std::nullopt) << bad;
  }
}

TEST(ResourceVersion, Parsing) {
  EXPECT_EQ(*parse_resource_version(""), 0);
  EXPECT_EQ(*parse_resource_version("0"), 0);
  EXPECT_EQ(*parse_resource_version("123"), 123);
  EXPECT_EQ(parse_resource_version("abc").error().code, 400);
  EXPECT_EQ(parse_resource_version("-1").error().code, 400);
}

ApiError list_error(ListRequest r) {
  auto ok = validate_list_request(r);
  EXPECT_FALSE(ok.ok());
  return ok.ok() ? ApiError{} : ok.error();
}

TEST(ListRequest, WatchListRules) {
  ListRequest watch_list;
  watch_list.watch = true;
  watch_list.send_initial_events = true;
  watch_list.resource_version_match = "NotOlderThan";
  watch_list.allow_watch_bookmarks = true;
  EXPECT_TRUE(validate_list_request(watch_list).ok());

  ListRequest r = watch_list;
  r.resource_version_match = "";
  ApiError e = list_error(r);
  EXPECT_EQ(e.code, 422);
  EXPECT_EQ(e.details["causes"][0]["field"], "resourceVersionMatch");

  r = watch_list;
  r.watch = false;
  e = list_error(r);
  EXPECT_EQ(e.code, 422);
  EXPECT_EQ(e.details["causes"][0]["field"], "sendInitialEvents");

  ListRequest w;
  w.watch = true;
  w.resource_version_match = "NotOlderThan";
  EXPECT_EQ(list_error(w).code, 422);

  ListRequest l;
  l.resource_version_match = "Exact";
  EXPECT_EQ(list_error(l).code, 422);  // no resourceVersion
  l.resource_version = "0";
  EXPECT_EQ(list_error(l).code, 422);  // exact 0
  l.resource_version = "5";
  EXPECT_TRUE(validate_list_request(l).ok());
  l.resource_version_match = "Bogus";
  EXPECT_EQ(list_error(l).code, 422);

  ListRequest c;
  c.continue_token = "x";
  c.resource_version = "5";
  EXPECT_EQ(list_error(c).code, 400);
}

TEST(WriteOptions, DryRunFieldValidationFieldManager) {
  EXPECT_TRUE(validate_dry_run({"All"}, "CreateOptions").ok());
  auto bad = validate_dry_run({"Some"}, "CreateOptions");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, 422);
  EXPECT_EQ(bad.error().details["causes"][0]["field"], "dryRun");
  EXPECT_EQ(*parse_field_validation("", "PatchOptions"), FieldValidation::kWarn);
  EXPECT_EQ(*parse_field_validation("Strict", "PatchOptions"), FieldValidation::kStrict);
  EXPECT_EQ(parse_field_validation("Loose", "PatchOptions").error().code, 422);
  EXPECT_FALSE(validate_field_manager(std::string(129, 'a'), "PatchOptions").ok());
  EXPECT_TRUE(validate_field_manager("kubectl-client-side-apply", "PatchOptions").ok());
  EXPECT_EQ(field_manager_from_user_agent("kubectl/v1.32.4 (linux/amd64)"), "kubectl");
}

TEST(ObjectMeta, UidTimestampsSuffixGeneration) {
  std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string u = new_uid();
    EXPECT_TRUE(std::regex_match(u, uuid)) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 100u);
  std::string ts = now_rfc3339();
  EXPECT_TRUE(std::regex_match(ts, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << ts;
  std::chrono::system_clock::time_point t;
  ASSERT_TRUE(parse_rfc3339("2026-07-01T12:00:00Z", &t));
  EXPECT_EQ(format_rfc3339(t), "2026-07-01T12:00:00Z");
  // Found by fuzzing: a year past what a nanosecond time_point holds overflowed (UBSan), and out
  // of range fields were normalised into another date.
  for (const char* bad : {"4052-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-13-01T00:00:00Z",
                          "2026-01-32T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:61:00Z"}) {
    EXPECT_FALSE(parse_rfc3339(bad, &t)) << bad;
  }
  EXPECT_TRUE(std::regex_match(generate_name_suffix(), std::regex("[bcdfghjklmnpqrstvwxz2456789]{5}")));
  json a = {{"metadata", {{"labels", {{"x", "1"}}}}}, {"spec", {{"group", "g"}}}};
  json b = a;
  b["metadata"]["labels"]["x"] = "2";
  b["status"] = {{"conditions", json::array()}};
  EXPECT_FALSE(spec_changed(a, b));
  b["spec"]["group"] = "h";
  EXPECT_TRUE(spec_changed(a, b));
}

TEST(ObjectMeta, HumanDuration) {
  EXPECT_EQ(human_duration(std::chrono::seconds(45)), "45s");
  EXPECT_EQ(human_duration(std::chrono::seconds(200)), "3m20s");
  EXPECT_EQ(human_duration(std::chrono::seconds(3600 * 5)), "5h");
  EXPECT_EQ(human_duration(std::chrono::seconds(86400 * 12)), "12d");
}

TEST(Table, RowsColumnsAndObjects) {
  std::vector<TableColumn> cols = {{"Name", "string", "name", "the name", 0},
                                   {"Age", "string", "", "age", 0}};
  json obj = {{"kind", "K"}, {"metadata", {{"name", "a"}, {"labels", {{"x", "y"}}}}}};
  json t = make_table("meta.k8s.io/v1", cols, {{json::array({"a", "1m"}), obj}},
                      IncludeObject::kMetadata, "7", "");
  EXPECT_EQ(t["kind"], "Table");
  EXPECT_EQ(t["apiVersion"], "meta.k8s.io/v1");
  EXPECT_EQ(t["metadata"]["resourceVersion"], "7");
  EXPECT_EQ(t["columnDefinitions"].size(), 2u);
  EXPECT_EQ(t["columnDefinitions"][0]["format"], "name");
  EXPECT_EQ(t["rows"][0]["cells"], json::array({"a", "1m"}));
  EXPECT_EQ(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
  EXPECT_EQ(t["rows"][0]["object"]["metadata"]["labels"]["x"], "y");
  json none = make_table("meta.k8s.io/v1", cols, {{json::array({"a", "1m"}), obj}},
                         IncludeObject::kNone, "7", "", false);
  EXPECT_TRUE(none["columnDefinitions"].empty());
  EXPECT_FALSE(none["rows"][0].contains("object"));
  EXPECT_EQ(parse_include_object("Bogus").error().code, 400);
}

TEST(Table, EncodedOneRowAtATimeIsTheSameText) {
  std::vector<TableColumn> cols = {{"Name", "string", "name", "the name", 0}};
  std::vector<TableRow> rows;
  for (int i = 0; i < 3; ++i) {
    json obj = {{"kind", "K"}, {"metadata", {{"name", "n" + std::to_string(i)}}}, {"spec", {}}};
    rows.push_back({json::array({"n" + std::to_string(i)}), obj});
  }
  for (auto include : {IncludeObject::kNone, IncludeObject::kMetadata, IncludeObject::kObject}) {
    for (std::size_t count : {0u, 1u, 3u}) {
      std::vector<TableRow> some(rows.begin(), rows.begin() + count);
      std::size_t made = 0;
      auto text = encode_table("meta.k8s.io/v1", cols, count,
                               [&](std::size_t i) {
                                 ++made;
                                 return rows[i];
                               },
                               include, "7", count == 3 ? "token" : "");
      EXPECT_EQ(text, dump_json(make_table("meta.k8s.io/v1", cols, some, include, "7",
                                           count == 3 ? "token" : "")));
      EXPECT_EQ(made, count);
    }
  }
}

TEST(WatchEncoding, EventLines) {
  std::string line = encode_watch_event("ADDED", {{"a", 1}});
  EXPECT_EQ(line, "{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n");
  json b = bookmark_object("g/v", "K", "12", true);
  EXPECT_EQ(b["metadata"]["resourceVersion"], "12");
  EXPECT_EQ(b["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}

}  // namespace
}  // namespace dpa::api
