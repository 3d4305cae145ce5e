// Impersonate-* headers (reference §7): the checks asked of the authorizer, the user that
// results, and the 400 for a request that names no user.
#include "aggregator/auth/auth.h"
#include "tests/auth/auth_test_util.h"

#include <gtest/gtest.h>

namespace dpa::auth {
namespace {

using testing::header;
using Groups = std::vector<std::string>;

const UserInfo kBob = testing::user("bob", {"dev", kSystemAuthenticated});

// One check in one comparable line.
std::string describe(const Attributes& a) {
  return a.user.name + " " + a.verb + " group=" + a.api_group + " version=" + a.api_version +
         " resource=" + a.resource + " sub=" + a.subresource + " ns=" + a.namespace_name +
         " name=" + a.name + (a.resource_request ? "" : " NON-RESOURCE");
}

std::vector<std::string> checks(const Impersonation& impersonation) {
  std::vector<std::string> out;
  for (const auto& check : impersonation.checks) out.push_back(describe(check));
  return out;
}

TEST(ImpersonationTest, NoHeadersNoImpersonation) {
  auto none = parse_impersonation(header({{"Authorization", "Bearer x"}}), kBob);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  auto empty_user = parse_impersonation(header({{"Impersonate-User", ""}}), kBob);
  ASSERT_TRUE(empty_user);
  EXPECT_FALSE(*empty_user);
}

TEST(ImpersonationTest, UserGroupsExtraAndUid) {
  auto parsed = parse_impersonation(header({{"Impersonate-User", "jane"},
                                            {"Impersonate-User", "ignored"},
                                            {"Impersonate-Group", "g1"},
                                            {"impersonate-group", "g2,g3"},
                                            {"Impersonate-Extra-Scopes", "s1"},
                                            {"Impersonate-Extra-scopes", "s2"},
                                            {"Impersonate-Extra-Acme.com%2Fproject", "p"},
                                            {"Impersonate-Uid", "u1"}}),
                                    kBob);
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_TRUE(*parsed);
  const Impersonation& i = **parsed;
  EXPECT_EQ(checks(i),
            (Groups{"bob impersonate group= version= resource=users sub= ns= name=jane",
                    "bob impersonate group= version= resource=groups sub= ns= name=g1",
                    "bob impersonate group= version= resource=groups sub= ns= name=g2,g3",
                    "bob impersonate group=authentication.k8s.io version=v1 resource=userextras "
                    "sub=scopes ns= name=s1",
                    "bob impersonate group=authentication.k8s.io version=v1 resource=userextras "
                    "sub=scopes ns= name=s2",
                    "bob impersonate group=authentication.k8s.io version=v1 resource=userextras "
                    "sub=acme.com/project ns= name=p",
                    "bob impersonate group=authentication.k8s.io version=v1 resource=uids sub= "
                    "ns= name=u1"}));
  EXPECT_EQ(i.checks.front().user.groups, kBob.groups);  // the requester, whole

  EXPECT_EQ(i.user.name, "jane");
  EXPECT_EQ(i.user.uid, "u1");
  EXPECT_EQ(i.user.groups, (Groups{"g1", "g2,g3", kSystemAuthenticated}));
  std::map<std::string, std::vector<std::string>> extra{{"scopes", {"s1", "s2"}},
                                                        {"acme.com/project", {"p"}}};
  EXPECT_EQ(i.user.extra, extra);
}

TEST(ImpersonationTest, PlainUserGetsOnlySystemAuthenticated) {
  auto parsed = parse_impersonation(header({{"Impersonate-User", "jane"}}), kBob);
  ASSERT_TRUE(parsed && *parsed);
  EXPECT_EQ((*parsed)->user.groups, (Groups{kSystemAuthenticated}));
  EXPECT_EQ((*parsed)->user.uid, "");
  EXPECT_TRUE((*parsed)->user.extra.empty());
}

TEST(ImpersonationTest, ServiceAccount) {
  auto parsed =
      parse_impersonation(header({{"Impersonate-User", "system:serviceaccount:ns1:sa-1.x"}}), kBob);
  ASSERT_TRUE(parsed && *parsed);
  EXPECT_EQ(checks(**parsed),
            (Groups{"bob impersonate group= version= resource=serviceaccounts sub= ns=ns1 "
                    "name=sa-1.x"}));
  EXPECT_EQ((*parsed)->user.name, "system:serviceaccount:ns1:sa-1.x");
  EXPECT_EQ((*parsed)->user.groups,
            (Groups{"system:serviceaccounts", "system:serviceaccounts:ns1", kSystemAuthenticated}));

  // Groups given replace the service account's own.
  parsed = parse_impersonation(
      header({{"Impersonate-User", "system:serviceaccount:ns1:sa"}, {"Impersonate-Group", "g"}}),
      kBob);
  ASSERT_TRUE(parsed && *parsed);
  EXPECT_EQ((*parsed)->user.groups, (Groups{"g", kSystemAuthenticated}));

  // Not a valid service account name: an ordinary user.
  for (const char* name : {"system:serviceaccount:NS:sa", "system:serviceaccount:ns:a:b",
                           "system:serviceaccount:ns:", "system:serviceaccount:-ns:sa"}) {
    parsed = parse_impersonation(header({{"Impersonate-User", name}}), kBob);
    ASSERT_TRUE(parsed && *parsed);
    EXPECT_EQ((*parsed)->checks.front().resource, "users") << name;
    EXPECT_EQ((*parsed)->checks.front().name, name);
  }
}

TEST(ImpersonationTest, UnauthenticatedAndAnonymousGroups) {
  auto parsed = parse_impersonation(
      header({{"Impersonate-User", "jane"}, {"Impersonate-Group", kSystemUnauthenticated}}), kBob);
  ASSERT_TRUE(parsed && *parsed);
  EXPECT_EQ((*parsed)->user.groups, (Groups{kSystemUnauthenticated}));

  parsed = parse_impersonation(header({{"Impersonate-User", kAnonymousUser}}), kBob);
  ASSERT_TRUE(parsed && *parsed);
  EXPECT_EQ((*parsed)->user.groups, (Groups{kSystemUnauthenticated}));

  parsed = parse_impersonation(
      header({{"Impersonate-User", kAnonymousUser}, {"Impersonate-Group", kSystemAuthenticated}}),
      kBob);
  ASSERT_TRUE(parsed && *parsed);
  EXPECT_EQ((*parsed)->user.groups, (Groups{kSystemAuthenticated, kSystemUnauthenticated}));
}

TEST(ImpersonationTest, GroupUidOrExtraWithoutUserIsBadRequest) {
  auto parsed = parse_impersonation(header({{"Impersonate-Group", "g1"}}), kBob);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, 400);
  EXPECT_EQ(parsed.error().reason, "BadRequest");
  EXPECT_EQ(parsed.error().message, "requested [{Group  g1    }] without impersonating a user");

  parsed = parse_impersonation(header({{"Impersonate-User", ""},
                                       {"Impersonate-Extra-Scopes", "s1"},
                                       {"Impersonate-Uid", "u1"}}),
                               kBob);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message,
            "requested [{UserExtra  s1  authentication.k8s.io/v1  scopes} "
            "{UID  u1  authentication.k8s.io/v1  }] without impersonating a user");
}

TEST(ImpersonationTest, RefusedCheckReadsAsKubesForbidden) {
  auto parsed = parse_impersonation(
      header({{"Impersonate-User", "jane"}, {"Impersonate-Extra-Scopes", "view"}}), kBob);
  ASSERT_TRUE(parsed && *parsed);
  EXPECT_EQ(forbidden((*parsed)->checks[0], "").message,
            R"(users "jane" is forbidden: User "bob" cannot impersonate resource "users" in API )"
            R"(group "" at the cluster scope)");
  EXPECT_EQ(forbidden((*parsed)->checks[1], "").message,
            R"(userextras.authentication.k8s.io "view" is forbidden: User "bob" cannot )"
            R"(impersonate resource "userextras/scopes" in API group "authentication.k8s.io" at )"
            R"(the cluster scope)");

  // Through an ABAC policy that lets bob impersonate users but nothing else.
  testing::TempDir dir;
  auto policy = load_abac_policy(
      dir.write("p", R"({"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",)"
                     R"("spec":{"user":"bob","resource":"users"}})"));
  ASSERT_TRUE(policy);
  auto chain = make_authorizer_chain({*policy});
  EXPECT_EQ(testing::authorize(*chain, (*parsed)->checks[0]).decision,
            AuthzResult::Decision::kAllow);
  EXPECT_EQ(testing::authorize(*chain, (*parsed)->checks[1]).decision,
            AuthzResult::Decision::kDeny);
}

}  // namespace
}  // namespace dpa::auth
