#include "aggregator/apimachinery/selectors.h"

#include <gtest/gtest.h>

namespace dpa::api {
namespace {

using nlohmann::json;

bool label_match(const char* selector, const json& labels) {
  auto s = LabelSelector::parse(selector);
  EXPECT_TRUE(s.ok()) << selector;
  return s.ok() && s->matches(labels);
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
  json obj = {{"metadata", {{"name", "v1.a.example.com"}}}};
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
