#include "aggregator/apimachinery/selectors.h"

#include <gtest/gtest.h>

namespace dpa::api {
namespace {

using nlohmann::json;

bool label_match(const char* selector, const json& labels) {
  auto s = LabelSelector::parse(selector);
  EXPECT_TRUE(s.ok()) << selector;
  return s.ok() && s->matches(Attributes::of({{"metadata", {{"labels", labels}}}}));
}

TEST(LabelSelector, EqualityOperators) {
  json labels = {{"app", "grafana"}, {"tier", "backend"}};
  EXPECT_TRUE(label_match("app=grafana", labels));
  EXPECT_TRUE(label_match("app==grafana", labels));
  EXPECT_FALSE(label_match("app!=grafana", labels));
  EXPECT_TRUE(label_match("app=grafana,tier=backend", labels));
  EXPECT_FALSE(label_match("app=grafana,tier=frontend", labels));
  // != matches objects without the key, as in Kubernetes.
  EXPECT_TRUE(label_match("env!=prod", labels));
}

TEST(LabelSelector, SetBasedOperators) {
  json labels = {{"env", "prod"}};
  EXPECT_TRUE(label_match("env in (prod, staging)", labels));
  EXPECT_FALSE(label_match("env notin (prod,staging)", labels));
  EXPECT_TRUE(label_match("tier notin (a)", labels));
  EXPECT_TRUE(label_match("env", labels));
  EXPECT_FALSE(label_match("!env", labels));
  EXPECT_TRUE(label_match("!tier", labels));
  EXPECT_TRUE(label_match("env in (prod),!tier", labels));
  EXPECT_FALSE(label_match("env", json()));
  EXPECT_TRUE(label_match("", json()));
}

TEST(LabelSelector, PrefixedKeys) {
  json labels = {{"app.kubernetes.io/name", "x"}};
  EXPECT_TRUE(label_match("app.kubernetes.io/name=x", labels));
}

TEST(LabelSelector, BadSyntaxIs400) {
  for (const char* bad : {"app=(x", "env in prod", "a b", "-bad=x", "a=b=c", "env in (a,b", "=x",
                          "k=value with space"}) {
    auto s = LabelSelector::parse(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.error().code, 400) << bad;
    EXPECT_EQ(s.error().reason, "BadRequest");
    EXPECT_NE(s.error().message.find("unable to parse requirement"), std::string::npos);
  }
}

TEST(FieldSelector, NameAndNamespace) {
  const auto obj = Attributes::of({{"metadata", {{"name", "v1.a.example.com"}}}});
  auto s = FieldSelector::parse("metadata.name=v1.a.example.com");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->matches(obj));
  s = FieldSelector::parse("metadata.name!=v1.a.example.com");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->matches(obj));
  s = FieldSelector::parse("metadata.namespace==");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->matches(obj));  // cluster scoped: namespace is empty
  s = FieldSelector::parse("metadata.name==other,metadata.namespace=");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->matches(obj));
}

TEST(Attributes, ReadFromAnObject) {
  auto a = Attributes::of({{"metadata",
                            {{"name", "n"},
                             {"namespace", "ns"},
                             {"labels", {{"tier", "web"}, {"app", "x"}, {"count", 3}}}}},
                           {"spec", {{"name", "not this"}}}});
  EXPECT_EQ(a.name, "n");
  EXPECT_EQ(a.namespace_, "ns");
  // Sorted by key; a value that is not a string is no label.
  ASSERT_EQ(a.labels.size(), 2u);
  EXPECT_EQ(a.labels[0].first, "app");
  EXPECT_EQ(a.labels[1].first, "tier");
  ASSERT_NE(a.label("tier"), nullptr);
  EXPECT_EQ(*a.label("tier"), "web");
  EXPECT_EQ(a.label("count"), nullptr);
  EXPECT_EQ(a.label("zzz"), nullptr);
  // Not an object, or no metadata: nothing to select on.
  EXPECT_EQ(Attributes::of(json::array()), Attributes{});
  EXPECT_EQ(Attributes::of({{"metadata", "x"}}), Attributes{});
}

TEST(FieldSelector, UnsupportedFieldIs400) {
  auto s = FieldSelector::parse("spec.group=x");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, 400);
  EXPECT_EQ(s.error().message, "field label not supported: spec.group");
  s = FieldSelector::parse("metadata.name");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, 400);
}

}  // namespace
}  // namespace dpa::api
