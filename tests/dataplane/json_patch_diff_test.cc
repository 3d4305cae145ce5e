#include "aggregator/dataplane/json_patch_diff.h"

#include <gtest/gtest.h>

namespace dpa::dataplane {
namespace {

using json = nlohmann::json;

// Applies the patch with nlohmann's RFC 6902 implementation and checks it produces `to`.
void expect_round_trip(const json& from, const json& to) {
  auto patch = json_patch_diff(from, to);
  json applied = from.patch(json::parse(patch.dump()));
  EXPECT_EQ(applied, to) << patch.dump();
}

TEST(JsonPatchDiffTest, GrafanaMutationExample) {
  auto patch = json_patch_diff(json::parse(R"({"foo":"bar"})"), json::parse(R"({"foo": "foo"})"));
  EXPECT_EQ(patch.dump(), R"([{"op":"replace","path":"/foo","value":"foo"}])");
}

TEST(JsonPatchDiffTest, EqualIsEmpty) {
  EXPECT_EQ(json_patch_diff(json::parse(R"({"a":[1,2]})"), json::parse(R"({"a":[1,2]})")).dump(),
            "[]");
}

TEST(JsonPatchDiffTest, AddRemoveNestedArraysAndEscapes) {
  expect_round_trip(json::parse(R"({"a":1,"b":{"c":[1,2,3],"d":"x"},"e/f":1,"g~h":2})"),
                    json::parse(R"({"b":{"c":[1,5],"d":"x","n":null},"e/f":2,"new":[{"k":1}]})"));
  expect_round_trip(json::parse(R"([1,2])"), json::parse(R"([1,2,3,4])"));
  expect_round_trip(json::parse(R"({"a":[1,2,3,4]})"), json::parse(R"({"a":[]})"));
  expect_round_trip(json::parse(R"({"a":1})"), json::parse(R"([1])"));
  expect_round_trip(json::parse(R"({"metadata":{"labels":{"x":"y"}},"spec":{}})"),
                    json::parse(R"({"metadata":{"labels":{"x":"y","added":"true"}},"spec":{"r":2}})"));
  auto p = json_patch_diff(json::parse(R"({"a/b":1})"), json::parse(R"({})"));
  EXPECT_EQ(p[0]["path"], "/a~1b");
}

}  // namespace
}  // namespace dpa::dataplane
