// Authorization (reference §4, §5, §8): ABAC policy files, the ordered chain, and the exact 403
// text a client sees.
#include "aggregator/auth/auth.h"
#include "tests/auth/auth_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <thread>

namespace dpa::auth {
namespace {

using testing::authorize;
using testing::TempDir;
using Decision = AuthzResult::Decision;

constexpr const char* kOwn = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices";
constexpr const char* kDatasources =
    "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources";

Attributes as(UserInfo user, std::string_view method, std::string_view path,
              std::string_view query = "") {
  Attributes a = request_attributes(method, path, query);
  a.user = std::move(user);
  return a;
}

UserInfo authenticated(std::string name, std::vector<std::string> groups = {}) {
  groups.emplace_back(kSystemAuthenticated);
  return testing::user(std::move(name), std::move(groups));
}

const UserInfo kAnonymous = testing::user(kAnonymousUser, {kSystemUnauthenticated});

// --- ABAC ----------------------------------------------------------------------------------------

// A v1beta1 policy line around `spec`.
std::string v1beta1(const std::string& spec) {
  return R"({"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":)" +
         spec + "}";
}

class AbacTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::vector<std::string> lines = {
        "# who may do what",
        "",
        v1beta1(R"({"user":"alice","apiGroup":"aggregation.grafana.app",)"
                R"("resource":"dataplaneservices","readonly":true})"),
        v1beta1(R"({"user":"bob","apiGroup":"testdata.datasource.grafana.app",)"
                R"("namespace":"default","resource":"datasources"})"),
        "  # indented comment",
        v1beta1(R"({"group":"system:authenticated","readonly":true,"nonResourcePath":"/healthz"})"),
        v1beta1(R"({"user":"carol","nonResourcePath":"/openapi/*"})"),
        v1beta1(R"({"user":"*","readonly":true,"nonResourcePath":"/version"})"),
        v1beta1(R"({"group":"system:unauthenticated","readonly":true,"nonResourcePath":"/livez"})"),
        v1beta1(
            R"({"user":"frank","group":"admins","apiGroup":"*","namespace":"*","resource":"*"})"),
        // Neither user nor group: matches nobody. Written with a CRLF ending.
        v1beta1(R"({"apiGroup":"*","namespace":"*","resource":"*","nonResourcePath":"*"})") + "\r",
        // The legacy v0 form.
        R"({"user":"dave","readonly":true})",
        R"({"user":"erin","namespace":"prod","resource":"datasources"})",
        R"({"group":"ops"})",
    };
    std::string content;
    for (const auto& line : lines) content += line + "\n";
    std::string path = dir_.write("policy.jsonl", content);
    auto loaded = load_abac_policy(path);
    ASSERT_TRUE(loaded) << loaded.error().message;
    policy_ = std::move(loaded).value();
  }

  Decision decide(const Attributes& a) {
    AuthzResult r = authorize(*policy_, a);
    if (r.decision != Decision::kAllow) {
      EXPECT_EQ(r.reason, "No policy matched.");
    }
    return r.decision;
  }

  TempDir dir_;
  std::shared_ptr<const Authorizer> policy_;
};

TEST_F(AbacTest, ReadOnlyOnTheOwnApi) {
  const std::string own = kOwn;
  UserInfo alice = authenticated("alice");
  EXPECT_EQ(decide(as(alice, "GET", own)), Decision::kAllow);
  EXPECT_EQ(decide(as(alice, "GET", own, "watch=1")), Decision::kAllow);
  EXPECT_EQ(decide(as(alice, "GET", own + "/prom")), Decision::kAllow);
  EXPECT_EQ(decide(as(alice, "GET", own + "/prom/status")), Decision::kAllow);
  EXPECT_EQ(decide(as(alice, "POST", own)), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(alice, "PUT", own + "/prom/status")), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(alice, "DELETE", own)), Decision::kNoOpinion);
  // Another group's resource of the same name, or a namespaced one, is not covered.
  EXPECT_EQ(decide(as(alice, "GET", "/apis/other.app/v1/dataplaneservices")), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(alice, "GET",
                      "/apis/aggregation.grafana.app/v0alpha1/namespaces/x/"
                      "dataplaneservices")),
            Decision::kNoOpinion);
}

TEST_F(AbacTest, SubresourceAndNameAreIgnored) {
  const std::string ds = kDatasources;
  UserInfo bob = authenticated("bob");
  EXPECT_EQ(decide(as(bob, "POST", ds + "/uid1/query")), Decision::kAllow);
  EXPECT_EQ(decide(as(bob, "GET", ds + "/uid1/health")), Decision::kAllow);
  EXPECT_EQ(decide(as(bob, "GET", ds + "/uid1/stream/x")), Decision::kAllow);
  EXPECT_EQ(decide(as(bob, "DELETE", ds + "/uid1")), Decision::kAllow);
  EXPECT_EQ(decide(as(bob, "POST",
                      "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/"
                      "other/datasources/uid1/query")),
            Decision::kNoOpinion);
  EXPECT_EQ(decide(as(bob, "POST",
                      "/apis/prometheus.datasource.grafana.app/v0alpha1/namespaces/"
                      "default/datasources/uid1/query")),
            Decision::kNoOpinion);
  EXPECT_EQ(decide(as(bob, "POST", kOwn)), Decision::kNoOpinion);
}

TEST_F(AbacTest, NonResourcePaths) {
  UserInfo carol = authenticated("carol");
  EXPECT_EQ(decide(as(carol, "GET", "/healthz")), Decision::kAllow);
  EXPECT_EQ(decide(as(carol, "HEAD", "/healthz")), Decision::kNoOpinion);  // head is not read-only
  EXPECT_EQ(decide(as(carol, "GET", "/healthz/etcd")), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(carol, "GET", "/openapi/v2")), Decision::kAllow);
  EXPECT_EQ(decide(as(carol, "POST", "/openapi/v3/x")), Decision::kAllow);
  EXPECT_EQ(decide(as(carol, "GET", "/openapi/")), Decision::kAllow);
  EXPECT_EQ(decide(as(carol, "GET", "/openapi")), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(carol, "GET", "/metrics")), Decision::kNoOpinion);
  // A non-resource rule never covers a resource request.
  EXPECT_EQ(decide(as(carol, "GET", kOwn)), Decision::kNoOpinion);
}

TEST_F(AbacTest, StarMeansAuthenticated) {
  EXPECT_EQ(decide(as(authenticated("anyone"), "GET", "/version")), Decision::kAllow);
  EXPECT_EQ(decide(as(kAnonymous, "GET", "/version")), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(kAnonymous, "GET", "/healthz")), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(kAnonymous, "GET", "/livez")), Decision::kAllow);
}

TEST_F(AbacTest, UserAndGroupMustBothMatch) {
  const std::string ds = kDatasources;
  EXPECT_EQ(decide(as(authenticated("frank", {"admins"}), "DELETE", ds)), Decision::kAllow);
  EXPECT_EQ(decide(as(authenticated("frank"), "DELETE", ds)), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(authenticated("gina", {"admins"}), "DELETE", ds)), Decision::kNoOpinion);
}

TEST_F(AbacTest, LegacyV0Lines) {
  const std::string ds = kDatasources;
  // {"user":"dave","readonly":true}: read anything in any group, namespace and path.
  UserInfo dave = authenticated("dave");
  EXPECT_EQ(decide(as(dave, "GET", ds + "/uid1/health")), Decision::kAllow);
  EXPECT_EQ(decide(as(dave, "GET", "/metrics")), Decision::kAllow);
  EXPECT_EQ(decide(as(dave, "POST", ds + "/uid1/query")), Decision::kNoOpinion);
  // {"user":"erin","namespace":"prod","resource":"datasources"}: any group, no paths.
  UserInfo erin = authenticated("erin");
  EXPECT_EQ(decide(as(erin, "POST", "/apis/any.group/v1/namespaces/prod/datasources/u/query")),
            Decision::kAllow);
  EXPECT_EQ(decide(as(erin, "POST", ds + "/uid1/query")), Decision::kNoOpinion);
  EXPECT_EQ(decide(as(erin, "GET", "/metrics")), Decision::kNoOpinion);
  // {"group":"ops"}: everything.
  UserInfo olga = authenticated("olga", {"ops"});
  EXPECT_EQ(decide(as(olga, "DELETE", kOwn)), Decision::kAllow);
  EXPECT_EQ(decide(as(olga, "POST", "/anything")), Decision::kAllow);
}

TEST(AbacLoadTest, EmptySubjectV0LineIsEveryAuthenticatedUser) {
  TempDir dir;
  auto loaded = load_abac_policy(dir.write("p", "{}\n"));
  ASSERT_TRUE(loaded);
  EXPECT_EQ(authorize(**loaded, as(authenticated("x"), "DELETE", kOwn)).decision, Decision::kAllow);
  EXPECT_EQ(authorize(**loaded, as(kAnonymous, "GET", "/metrics")).decision, Decision::kNoOpinion);
}

TEST(AbacLoadTest, BadLinesStopLoadingWithTheirNumberAndText) {
  TempDir dir;
  auto error = [&](const std::string& content) {
    std::string path = dir.write("policy", content);
    auto loaded = load_abac_policy(path);
    EXPECT_FALSE(loaded);
    return loaded ? std::string() : loaded.error().message;
  };
  std::string path = dir.path("policy");
  EXPECT_EQ(error("# comment\n\n{\"user\": 5}\n"), "error reading policy file " + path +
                                                       ", line 3: {\"user\": 5}: user: expected a "
                                                       "string, got number");
  const std::string readonly_text = v1beta1(R"({"readonly":"yes"})");
  EXPECT_EQ(error(readonly_text), "error reading policy file " + path +
                                      ", line 1: " + readonly_text +
                                      ": spec.readonly: expected a boolean, got string");
  const std::string role =
      R"({"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Role"})";
  EXPECT_EQ(error(role), "error reading policy file " + path + ", line 1: " + role +
                             R"(: no kind "Role" is registered for version )"
                             R"("abac.authorization.kubernetes.io/v1beta1")");
  EXPECT_EQ(error("[1]\n"), "error reading policy file " + path +
                                ", line 1: [1]: expected a JSON object, got array");
  std::string bad_json = error("{}\n{not json\n");
  EXPECT_EQ(bad_json.rfind("error reading policy file " + path + ", line 2: {not json: ", 0), 0u)
      << bad_json;
  // Found by fuzz_auth_files: a number beyond a double made nlohmann throw out_of_range, which
  // escaped the loader (an aborted process at start or on a policy file reload).
  std::string huge = error("-333333e3333333333333~\n");
  EXPECT_EQ(huge.rfind("error reading policy file " + path + ", line 1: -333333e3333333333333~: "
                       "number overflow",
                       0),
            0u)
      << huge;

  auto missing = load_abac_policy(dir.path("absent"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "error reading policy file " + dir.path("absent") + ": No such file or directory");
}

// --- the chain -----------------------------------------------------------------------------------

class FixedAuthorizer : public Authorizer {
 public:
  FixedAuthorizer(Decision decision, std::string reason, std::string error = {}) {
    result_.decision = decision;
    result_.reason = std::move(reason);
    result_.error = std::move(error);
  }
  void authorize(const Attributes&, std::function<void(AuthzResult)> done) const override {
    ++calls;
    done(result_);
  }
  mutable int calls = 0;

 private:
  AuthzResult result_;
};

// Answers later, and records the user of the attributes it was asked about at answer time.
class LaterAuthorizer : public Authorizer {
 public:
  void authorize(const Attributes& attributes,
                 std::function<void(AuthzResult)> done) const override {
    attributes_ = &attributes;
    pending_ = std::move(done);
  }
  std::string answer(Decision decision) const {
    std::string user = attributes_->user.name;
    AuthzResult result;
    result.decision = decision;
    auto done = std::move(pending_);
    done(std::move(result));
    return user;
  }

 private:
  mutable const Attributes* attributes_ = nullptr;
  mutable std::function<void(AuthzResult)> pending_;
};

TEST(AuthorizerChainTest, SystemMastersMayDoAnything) {
  auto chain = make_authorizer_chain({make_always_deny()});
  AuthzResult r = authorize(*chain, as(authenticated("admin", {kSystemMasters}), "DELETE", kOwn));
  EXPECT_EQ(r.decision, Decision::kAllow);
  EXPECT_EQ(
      authorize(*make_authorizer_chain({}), as(testing::user("x", {kSystemMasters}), "GET", "/"))
          .decision,
      Decision::kAllow);
}

TEST(AuthorizerChainTest, AllNoOpinionIsDenyWithTheReasonsJoined) {
  TempDir dir;
  auto abac = load_abac_policy(dir.write("p", R"({"user":"nobody"})"));
  ASSERT_TRUE(abac);
  auto chain = make_authorizer_chain({make_always_deny(), *abac});
  AuthzResult r = authorize(*chain, as(authenticated("bob"), "GET", kOwn));
  EXPECT_EQ(r.decision, Decision::kDeny);
  EXPECT_EQ(r.reason, "Everything is forbidden.\nNo policy matched.");
  EXPECT_EQ(r.error, "");

  AuthzResult empty = authorize(*make_authorizer_chain({}), as(authenticated("bob"), "GET", kOwn));
  EXPECT_EQ(empty.decision, Decision::kDeny);
  EXPECT_EQ(empty.reason, "");
}

TEST(AuthorizerChainTest, FirstAllowOrDenyWins) {
  auto allow = std::make_shared<FixedAuthorizer>(Decision::kAllow, "");
  auto deny = std::make_shared<FixedAuthorizer>(Decision::kDeny, "denied by policy");
  auto after = std::make_shared<FixedAuthorizer>(Decision::kAllow, "");
  Attributes bob = as(authenticated("bob"), "GET", kOwn);

  EXPECT_EQ(authorize(*make_authorizer_chain({make_always_deny(), allow}), bob).decision,
            Decision::kAllow);
  AuthzResult r = authorize(*make_authorizer_chain({make_always_deny(), deny, after}), bob);
  EXPECT_EQ(r.decision, Decision::kDeny);
  EXPECT_EQ(r.reason, "denied by policy");  // the deciding authorizer's own reason
  EXPECT_EQ(after->calls, 0);
}

TEST(AuthorizerChainTest, AnErrorWithoutAnAllowIsCarried) {
  auto failing = std::make_shared<FixedAuthorizer>(Decision::kNoOpinion, "", "webhook down");
  Attributes bob = as(authenticated("bob"), "GET", kOwn);
  AuthzResult r = authorize(*make_authorizer_chain({failing, make_always_deny()}), bob);
  EXPECT_EQ(r.decision, Decision::kDeny);
  EXPECT_EQ(r.error, "webhook down");
  EXPECT_EQ(r.reason, "Everything is forbidden.");

  r = authorize(*make_authorizer_chain({failing, make_always_allow()}), bob);
  EXPECT_EQ(r.decision, Decision::kAllow);
  EXPECT_EQ(r.error, "");

  auto other = std::make_shared<FixedAuthorizer>(Decision::kNoOpinion, "", "cache broken");
  EXPECT_EQ(authorize(*make_authorizer_chain({failing, other}), bob).error,
            "[webhook down, cache broken]");
}

TEST(AuthorizerChainTest, WaitsForAnAuthorizerThatAnswersLater) {
  auto later = std::make_shared<LaterAuthorizer>();
  auto allow = std::make_shared<FixedAuthorizer>(Decision::kAllow, "");
  auto chain = make_authorizer_chain({later, allow});
  std::optional<AuthzResult> result;
  {
    // The caller's attributes are gone before the answer: the chain keeps its own copy.
    Attributes attributes = as(authenticated("bob"), "GET", kOwn);
    chain->authorize(attributes, [&](AuthzResult r) { result = std::move(r); });
  }
  EXPECT_FALSE(result);
  EXPECT_EQ(allow->calls, 0);
  std::string seen;
  std::thread webhook([&] { seen = later->answer(Decision::kNoOpinion); });
  webhook.join();
  EXPECT_EQ(seen, "bob");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->decision, Decision::kAllow);
}

TEST(AlwaysTest, AllowAndDeny) {
  Attributes a = as(kAnonymous, "GET", "/metrics");
  EXPECT_EQ(authorize(*make_always_allow(), a).decision, Decision::kAllow);
  AuthzResult deny = authorize(*make_always_deny(), a);
  EXPECT_EQ(deny.decision, Decision::kNoOpinion);
  EXPECT_EQ(deny.reason, "Everything is forbidden.");
}

// --- the 403 -------------------------------------------------------------------------------------

TEST(ForbiddenTest, NamespacedDataPlaneRequest) {
  Attributes a = as(authenticated("bob"), "POST", std::string(kDatasources) + "/uid1/query");
  api::ApiError e = forbidden(a, "");
  EXPECT_EQ(e.code, 403);
  EXPECT_EQ(e.reason, "Forbidden");
  EXPECT_EQ(e.message,
            R"(datasources.testdata.datasource.grafana.app "uid1" is forbidden: User "bob" cannot )"
            R"(create resource "datasources/query" in API group "testdata.datasource.grafana.app" )"
            R"(in the namespace "default")");
  EXPECT_EQ(e.details, (nlohmann::json{{"name", "uid1"},
                                       {"group", "testdata.datasource.grafana.app"},
                                       {"kind", "datasources"}}));
}

TEST(ForbiddenTest, NonResourcePath) {
  api::ApiError e = forbidden(as(kAnonymous, "GET", "/metrics"), "");
  EXPECT_EQ(e.message, R"(forbidden: User "system:anonymous" cannot get path "/metrics")");
  EXPECT_EQ(e.details, nlohmann::json::object());
  EXPECT_EQ(e.body(),
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)"
            R"("forbidden: User \"system:anonymous\" cannot get path \"/metrics\"","reason":)"
            R"("Forbidden","details":{},"code":403})");
}

TEST(ForbiddenTest, ClusterScopeUnnamedWithReason) {
  api::ApiError e = forbidden(as(authenticated("alice"), "POST", kOwn),
                              "Everything is forbidden.\nNo policy matched.");
  EXPECT_EQ(
      e.message,
      "dataplaneservices.aggregation.grafana.app is forbidden: User \"alice\" cannot create "
      "resource \"dataplaneservices\" in API group \"aggregation.grafana.app\" at the cluster "
      "scope: Everything is forbidden.\nNo policy matched.");
  EXPECT_EQ(e.details,
            (nlohmann::json{{"group", "aggregation.grafana.app"}, {"kind", "dataplaneservices"}}));
}

TEST(ForbiddenTest, CoreGroup) {
  api::ApiError e =
      forbidden(as(authenticated("bob"), "POST", "/api/v1/namespaces/default/pods/web/exec"), "");
  EXPECT_EQ(e.message,
            R"(pods "web" is forbidden: User "bob" cannot create resource "pods/exec" in API )"
            R"(group "" in the namespace "default")");
  EXPECT_EQ(e.details, (nlohmann::json{{"name", "web"}, {"kind", "pods"}}));
}

TEST(ForbiddenTest, GoQuotingAndHtmlEscaping) {
  // The sentence is quoted as Go's %q and then html-escaped; the name in the prefix is only
  // quoted; the reason is appended as it is.
  Attributes a = as(testing::user("a\"b<c>&\\\n\t\x01\x7f"), "GET", "/apis/g/v/things/<x>");
  api::ApiError e = forbidden(a, "<b>");
  EXPECT_EQ(e.message,
            R"(things.g "<x>" is forbidden: User "a\"b&lt;c&gt;&amp;\\\n\t\x01\x7f" cannot get )"
            R"(resource "things" in API group "g" at the cluster scope: <b>)");

  auto quoted_user = [](std::string name) {
    std::string message = forbidden(as(testing::user(name), "GET", "/x"), "").message;
    std::size_t start = message.find("User ") + 5;
    return message.substr(start, message.find(" cannot") - start);
  };
  EXPECT_EQ(quoted_user("jöhn 日本 😀"), "\"jöhn 日本 😀\"");  // printable: as is
  EXPECT_EQ(quoted_user("a\xff"
                        "b"),
            R"("a\xffb")");                                             // not UTF-8
  EXPECT_EQ(quoted_user("\xc2\xa0\xe2\x80\x8b"), R"("\u00a0\u200b")");  // NBSP, zero width space
  EXPECT_EQ(quoted_user("\xf3\xa0\x80\x81"), R"("\U000e0001")");        // a tag character
  EXPECT_EQ(quoted_user("\xc0\xaf"), R"("\xc0\xaf")");                  // overlong '/'
  EXPECT_EQ(quoted_user(""), R"("")");
}

}  // namespace
}  // namespace dpa::auth
