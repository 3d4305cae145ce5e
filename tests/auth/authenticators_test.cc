// Authentication as a client meets it (reference §0-§2): bearer parsing, the token file, client
// certificates made here with OpenSSL, front-proxy headers, and the chain's rules.
#include "aggregator/auth/auth.h"
#include "aggregator/apimachinery/base64url.h"
#include "tests/auth/auth_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <thread>

namespace dpa::auth {
namespace {

using testing::authenticate;
using testing::header;
using testing::presented;
using testing::TempDir;
using Kind = AuthnResult::Kind;
using Groups = std::vector<std::string>;

constexpr const char* kExtraSpaceWarning =
    "the provided Authorization header contains extra space before the bearer token, and is "
    "ignored";

std::optional<std::string> bearer(const std::string& authorization, std::string* warning) {
  http::Header h = header({{"Authorization", authorization}});
  return bearer_token(h, warning);
}

// --- bearer parsing ------------------------------------------------------------------------------

TEST(BearerTokenTest, TakesTheTokenAfterACaseInsensitiveScheme) {
  std::string warning;
  EXPECT_EQ(bearer("Bearer abc", &warning), "abc");
  EXPECT_EQ(bearer("bearer abc", &warning), "abc");
  EXPECT_EQ(bearer("BEARER abc", &warning), "abc");
  EXPECT_EQ(bearer("  Bearer abc  ", &warning), "abc");  // the value is trimmed first
  EXPECT_EQ(bearer("Bearer a b", &warning), "a");        // text after another space is ignored
  EXPECT_TRUE(warning.empty());
}

TEST(BearerTokenTest, NoTokenMeansNoOpinion) {
  std::string warning;
  EXPECT_EQ(bearer_token(header({}), &warning), std::nullopt);
  EXPECT_EQ(bearer("", &warning), std::nullopt);
  EXPECT_EQ(bearer("Bearer", &warning), std::nullopt);
  EXPECT_EQ(bearer("Bearer ", &warning), std::nullopt);  // trimmed to "Bearer": no warning
  EXPECT_EQ(bearer("Basic YWxpY2U6cHc=", &warning), std::nullopt);
  EXPECT_EQ(bearer("Bearer\tabc", &warning), std::nullopt);  // only a space separates
  EXPECT_EQ(bearer("Bearerabc", &warning), std::nullopt);
  EXPECT_TRUE(warning.empty());
}

TEST(BearerTokenTest, ExtraSpaceBeforeTheTokenWarns) {
  std::string warning;
  EXPECT_EQ(bearer("Bearer  abc", &warning), std::nullopt);
  EXPECT_EQ(warning, kExtraSpaceWarning);
  EXPECT_EQ(bearer("Bearer  abc", nullptr), std::nullopt);  // the warning is optional
}

TEST(BearerTokenTest, OnlyTheFirstAuthorizationHeaderCounts) {
  http::Header h = header({{"Authorization", "Basic x"}, {"Authorization", "Bearer good"}});
  EXPECT_EQ(bearer_token(h, nullptr), std::nullopt);
}

// --- token file ----------------------------------------------------------------------------------

AuthnResult with_token(const Authenticator& authenticator, const std::string& token) {
  http::Header h = header({{"Authorization", "Bearer " + token}});
  return authenticate(authenticator, &h);
}

TEST(TokenFileTest, ReadsKubesCsv) {
  TempDir dir;
  std::string path =
      dir.write("tokens.csv",
                "token1,alice,uid-1,\"dev,ops\"\n"
                "\"tok,2\",bob,,\n"  // quoted token; empty uid; empty 4th field
                "token3,\"carol \"\"the admin\"\"\",3\n"  // "" is a literal quote; no groups
                "\n"                                      // blank lines are skipped
                "token4,dave,4,\"a,\nb\"\r\n"       // a quoted field spans lines; CRLF endings
                "token5, erin ,5,g1,ignored,too\n"  // no trimming; 5th+ columns ignored
                "#token6,frank,6\n"                 // '#' is data, not a comment
                "token7,gina,7");                   // no final newline
  auto loaded = load_token_file(path);
  ASSERT_TRUE(loaded) << loaded.error().message;
  const Authenticator& tokens = **loaded;

  AuthnResult r = with_token(tokens, "token1");
  ASSERT_EQ(r.kind, Kind::kAuthenticated);
  EXPECT_EQ(r.user.name, "alice");
  EXPECT_EQ(r.user.uid, "uid-1");
  EXPECT_EQ(r.user.groups, (Groups{"dev", "ops"}));
  EXPECT_TRUE(r.user.extra.empty());

  r = with_token(tokens, "tok,2");
  ASSERT_EQ(r.kind, Kind::kAuthenticated);
  EXPECT_EQ(r.user.name, "bob");
  EXPECT_EQ(r.user.uid, "");
  EXPECT_EQ(r.user.groups, (Groups{""}));

  r = with_token(tokens, "token3");
  EXPECT_EQ(r.user.name, "carol \"the admin\"");
  EXPECT_TRUE(r.user.groups.empty());

  r = with_token(tokens, "token4");
  EXPECT_EQ(r.user.name, "dave");
  EXPECT_EQ(r.user.groups, (Groups{"a", "\nb"}));

  r = with_token(tokens, "token5");
  EXPECT_EQ(r.user.name, " erin ");
  EXPECT_EQ(r.user.groups, (Groups{"g1"}));

  EXPECT_EQ(with_token(tokens, "#token6").user.name, "frank");
  EXPECT_EQ(with_token(tokens, "token7").user.name, "gina");
}

TEST(TokenFileTest, DuplicateTokensLastWinsAndEmptyTokensAreSkipped) {
  TempDir dir;
  auto loaded = load_token_file(
      dir.write("tokens.csv", "dup,first,1\n,nobody,0\ndup,second,2\nother,olga,3\n"));
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(with_token(**loaded, "dup").user.name, "second");
  EXPECT_EQ(with_token(**loaded, "other").user.name, "olga");
}

TEST(TokenFileTest, UnknownTokenFailsAndNoTokenHasNoOpinion) {
  TempDir dir;
  auto loaded = load_token_file(dir.write("tokens.csv", "secret,alice,1\n"));
  ASSERT_TRUE(loaded);
  AuthnResult r = with_token(**loaded, "wrong");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "invalid bearer token");

  http::Header none = header({});
  EXPECT_EQ(authenticate(**loaded, &none).kind, Kind::kNoOpinion);
  EXPECT_EQ(authenticate(**loaded, nullptr).kind, Kind::kNoOpinion);

  http::Header spaced = header({{"Authorization", "Bearer  secret"}});
  r = authenticate(**loaded, &spaced);
  EXPECT_EQ(r.kind, Kind::kNoOpinion);
  EXPECT_EQ(r.warnings, (Groups{std::string("299 - \"") + kExtraSpaceWarning + "\""}));
}

TEST(TokenFileTest, OnlyTheExactTokenMatches) {
  // The digest comparison must not accept anything close: same length with one byte changed,
  // a prefix, an extension, another case, among many stored tokens.
  std::vector<StaticToken> tokens;
  for (int i = 0; i < 500; ++i) {
    tokens.push_back({"token-" + std::to_string(i), testing::user("user" + std::to_string(i))});
  }
  tokens.push_back({"s3cr3t-Token", testing::user("alice")});
  auto authenticator = make_token_authenticator(std::move(tokens));

  EXPECT_EQ(with_token(*authenticator, "s3cr3t-Token").user.name, "alice");
  EXPECT_EQ(with_token(*authenticator, "token-499").user.name, "user499");
  for (const char* near : {"s3cr3t-Tokem", "r3cr3t-Token", "s3cr3t-Toke", "s3cr3t-Token1",
                           "S3CR3T-TOKEN", "s3cr3t-token", "token-5000", "token-"}) {
    AuthnResult r = with_token(*authenticator, near);
    EXPECT_EQ(r.kind, Kind::kFailed) << near;
    EXPECT_EQ(r.error, "invalid bearer token") << near;
  }
}

TEST(TokenFileTest, StaticTokensLastWins) {
  auto authenticator = make_token_authenticator({{"t", testing::user("first")},
                                                 {"t", testing::user("admin", {kSystemMasters})},
                                                 {"", testing::user("never")}});
  AuthnResult r = with_token(*authenticator, "t");
  EXPECT_EQ(r.user.name, "admin");
  EXPECT_EQ(r.user.groups, (Groups{kSystemMasters}));
}

class TokenFileErrorTest : public ::testing::Test {
 protected:
  std::string load_error(const std::string& content) {
    dir_.write("tokens.csv", content);
    auto loaded = load_token_file(path_);
    EXPECT_FALSE(loaded);
    return loaded ? std::string() : loaded.error().message;
  }
  TempDir dir_;
  const std::string path_ = dir_.path("tokens.csv");
};

TEST_F(TokenFileErrorTest, TooFewColumns) {
  EXPECT_EQ(load_error("tok,alice\n"),
            "token file '" + path_ +
                "' must have at least 3 columns (token, user name, user uid), found 2 (line 1)");
  EXPECT_EQ(load_error("a,b,c\n\nx\n"),
            "token file '" + path_ +
                "' must have at least 3 columns (token, user name, user uid), found 1 (line 3)");
}

TEST_F(TokenFileErrorTest, CsvSyntax) {
  EXPECT_EQ(
      load_error("tok,al\"ice,1\n"),
      "token file '" + path_ + "': parse error on line 1, column 7: bare \" in non-quoted-field");
  EXPECT_EQ(load_error("ok,a,1\ntok,\"al\"ice,1\n"),
            "token file '" + path_ +
                "': parse error on line 2, column 8: extraneous or missing \" in quoted-field");
  EXPECT_EQ(load_error("tok,\"alice,1\n"),
            "token file '" + path_ +
                "': parse error on line 1, column 14: extraneous or missing \" in quoted-field");
  EXPECT_EQ(load_error("tok,\"al\nice\"x,1\n"),
            "token file '" + path_ +
                "': record on line 1; parse error on line 2, column 4: extraneous or missing \" "
                "in quoted-field");
}

TEST(TokenFileTest, MissingFile) {
  TempDir dir;
  auto loaded = load_token_file(dir.path("absent.csv"));
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().message,
            "cannot read token file '" + dir.path("absent.csv") + "': No such file or directory");
}

// --- client certificates -------------------------------------------------------------------------

class X509Test : public ::testing::Test {
 protected:
  X509Test() : ca_("client-ca"), other_ca_("other-ca") {
    ca_file_ = dir_.write("ca.crt", testing::pem(ca_.certificate));
  }

  testing::Certificate issue(testing::CertificateSpec spec) { return ca_.issue(spec); }

  AuthnResult present(const Authenticator& a, const http::PeerCertificates& certificates) {
    return authenticate(a, nullptr, &certificates);
  }

  TempDir dir_;
  testing::Authority ca_;
  testing::Authority other_ca_;
  std::string ca_file_;
};

TEST_F(X509Test, CommonNameIsTheUserAndOrganizationsTheGroups) {
  auto authenticator = make_x509_authenticator(ca_file_);
  ASSERT_TRUE(authenticator) << authenticator.error().message;
  testing::CertificateSpec spec;
  spec.common_name = "alice";
  spec.organizations = {"dev", "ops"};
  auto leaf = issue(spec);
  AuthnResult r = present(**authenticator, presented(leaf));
  ASSERT_EQ(r.kind, Kind::kAuthenticated) << r.error;
  EXPECT_EQ(r.user.name, "alice");
  EXPECT_EQ(r.user.groups, (Groups{"dev", "ops"}));
  EXPECT_EQ(r.user.uid, "");
  // kube 1.32+: the certificate's fingerprint as credential id.
  unsigned char digest[32];
  unsigned int size = 0;
  X509_digest(leaf.get(), EVP_sha256(), digest, &size);
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    char byte[3];
    std::snprintf(byte, sizeof byte, "%02x", digest[i]);
    hex += byte;
  }
  EXPECT_EQ(r.user.extra.at("authentication.kubernetes.io/credential-id"),
            (Groups{"X509SHA256=" + hex}));
}

TEST_F(X509Test, UidAttributeIsTheUid) {
  auto authenticator = make_x509_authenticator(ca_file_);
  ASSERT_TRUE(authenticator);
  testing::CertificateSpec spec;
  spec.common_name = "alice";
  spec.uids = {"uid-42"};
  EXPECT_EQ(present(**authenticator, presented(issue(spec))).user.uid, "uid-42");

  spec.uids = {"a", "b"};
  AuthnResult r = present(**authenticator, presented(issue(spec)));
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "expected 1 UID, but found multiple: [a b]");
}

TEST_F(X509Test, CertificateFromAnotherCaFails) {
  auto authenticator = make_x509_authenticator(ca_file_);
  ASSERT_TRUE(authenticator);
  testing::CertificateSpec spec;
  spec.common_name = "mallory";
  AuthnResult r = present(**authenticator, presented(other_ca_.issue(spec)));
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_NE(r.error.find("unable to get local issuer certificate"), std::string::npos) << r.error;
}

TEST_F(X509Test, ExpiredCertificateFails) {
  auto authenticator = make_x509_authenticator(ca_file_);
  ASSERT_TRUE(authenticator);
  testing::CertificateSpec spec;
  spec.common_name = "alice";
  spec.valid_from_seconds = -7200;
  spec.valid_until_seconds = -3600;
  AuthnResult r = present(**authenticator, presented(issue(spec)));
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_NE(r.error.find("certificate has expired"), std::string::npos) << r.error;
}

TEST_F(X509Test, ServerOnlyCertificateFails) {
  auto authenticator = make_x509_authenticator(ca_file_);
  ASSERT_TRUE(authenticator);
  testing::CertificateSpec spec;
  spec.common_name = "alice";
  spec.extended_key_usage = "serverAuth";
  EXPECT_EQ(present(**authenticator, presented(issue(spec))).kind, Kind::kFailed);
}

TEST_F(X509Test, IntermediatesAreUsedButNotTrusted) {
  auto authenticator = make_x509_authenticator(ca_file_);
  ASSERT_TRUE(authenticator);
  testing::CertificateSpec intermediate_spec;
  intermediate_spec.common_name = "intermediate";
  intermediate_spec.ca = true;
  testing::Key intermediate_key = testing::make_key();
  auto intermediate =
      testing::make_certificate(intermediate_spec, intermediate_key, ca_.certificate, ca_.key);
  testing::CertificateSpec spec;
  spec.common_name = "bob";
  auto leaf = testing::make_certificate(spec, testing::make_key(), intermediate, intermediate_key);

  EXPECT_EQ(present(**authenticator, presented(leaf, {intermediate})).user.name, "bob");
  EXPECT_EQ(present(**authenticator, presented(leaf)).kind, Kind::kFailed);
}

TEST_F(X509Test, EmptyCommonNameOrNoCertificateHasNoOpinion) {
  auto authenticator = make_x509_authenticator(ca_file_);
  ASSERT_TRUE(authenticator);
  testing::CertificateSpec spec;
  spec.organizations = {"dev"};
  EXPECT_EQ(present(**authenticator, presented(issue(spec))).kind, Kind::kNoOpinion);
  EXPECT_EQ(authenticate(**authenticator, nullptr, nullptr).kind, Kind::kNoOpinion);
  http::PeerCertificates empty;
  EXPECT_EQ(present(**authenticator, empty).kind, Kind::kNoOpinion);
}

TEST_F(X509Test, UnreadableCaFileIsAStartupError) {
  auto missing = make_x509_authenticator(dir_.path("absent.crt"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find(dir_.path("absent.crt")), std::string::npos);
  auto garbage = make_x509_authenticator(dir_.write("garbage.crt", "not a certificate\n"));
  EXPECT_FALSE(garbage);
}

// --- front-proxy request headers -----------------------------------------------------------------

class RequestHeaderTest : public X509Test {
 protected:
  RequestHeaderTest() : proxy_ca_("front-proxy-ca") {
    options_.client_ca_file = dir_.write("proxy-ca.crt", testing::pem(proxy_ca_.certificate));
    testing::CertificateSpec spec;
    spec.common_name = "front-proxy-client";
    proxy_cert_ = presented(proxy_ca_.issue(spec));
  }

  AuthnResult run(const RequestHeaderOptions& options, const http::Header& h,
                  const http::PeerCertificates* certificates) {
    auto authenticator = make_request_header_authenticator(options);
    EXPECT_TRUE(authenticator);
    if (!authenticator) return {};
    return authenticate(**authenticator, &h, certificates);
  }

  testing::Authority proxy_ca_;
  RequestHeaderOptions options_;
  http::PeerCertificates proxy_cert_;
};

TEST_F(RequestHeaderTest, ReadsUserUidGroupsAndExtra) {
  http::Header h = header({{"X-Remote-User", "alice"},
                           {"X-Remote-Uid", "uid-1"},
                           {"X-Remote-Group", "a"},
                           {"x-remote-group", "b,c"},  // one group, no comma split
                           {"X-Remote-Group", ""},     // empty values are no group
                           {"X-Remote-Extra-Acme.com%2Fproject", "p"},
                           {"X-Remote-Extra-Scopes", "s1"},
                           {"x-remote-extra-scopes", "s2"},
                           {"X-Remote-Extra-Bad%zz", "v"}});
  AuthnResult r = run(options_, h, &proxy_cert_);
  ASSERT_EQ(r.kind, Kind::kAuthenticated) << r.error;
  EXPECT_EQ(r.user.name, "alice");
  EXPECT_EQ(r.user.uid, "uid-1");
  EXPECT_EQ(r.user.groups, (Groups{"a", "b,c"}));
  std::map<std::string, std::vector<std::string>> extra{
      {"acme.com/project", {"p"}}, {"scopes", {"s1", "s2"}}, {"bad%zz", {"v"}}};
  EXPECT_EQ(r.user.extra, extra);
}

TEST_F(RequestHeaderTest, FirstNonEmptyUsernameHeaderWins) {
  RequestHeaderOptions options = options_;
  options.username_headers = {"X-Remote-User", "X-Proxy-User"};
  http::Header h = header({{"X-Remote-User", ""}, {"X-Proxy-User", "bob"}});
  EXPECT_EQ(run(options, h, &proxy_cert_).user.name, "bob");

  http::Header none = header({{"X-Remote-Group", "a"}});
  EXPECT_EQ(run(options, none, &proxy_cert_).kind, Kind::kNoOpinion);
}

TEST_F(RequestHeaderTest, AllowedNamesRestrictTheProxy) {
  http::Header h = header({{"X-Remote-User", "alice"}});
  RequestHeaderOptions options = options_;
  options.allowed_names = {"front-proxy-client"};
  EXPECT_EQ(run(options, h, &proxy_cert_).user.name, "alice");

  options.allowed_names = {"aggregator"};
  AuthnResult r = run(options, h, &proxy_cert_);
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "x509: subject with cn=front-proxy-client is not in the allowed list");
}

TEST_F(RequestHeaderTest, HeadersWithoutTheProxyCertificateAreIgnored) {
  http::Header h = header({{"X-Remote-User", "admin"}, {"X-Remote-Group", kSystemMasters}});
  EXPECT_EQ(run(options_, h, nullptr).kind, Kind::kNoOpinion);

  // A client certificate from another CA (even the --client-ca-file one) is not a proxy.
  testing::CertificateSpec spec;
  spec.common_name = "front-proxy-client";
  http::PeerCertificates client = presented(ca_.issue(spec));
  AuthnResult r = run(options_, h, &client);
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.user.name, "");
}

// --- the chain -----------------------------------------------------------------------------------

// Answers when the test says so, from whatever thread the test chooses.
class LaterAuthenticator : public Authenticator {
 public:
  void authenticate(const Credentials&, std::function<void(AuthnResult)> done) const override {
    pending_ = std::move(done);
  }
  void answer(AuthnResult result) const {
    auto done = std::move(pending_);
    pending_ = nullptr;
    done(std::move(result));
  }
  bool waiting() const { return static_cast<bool>(pending_); }

 private:
  mutable std::function<void(AuthnResult)> pending_;
};

class FixedAuthenticator : public Authenticator {
 public:
  explicit FixedAuthenticator(AuthnResult result) : result_(std::move(result)) {}
  void authenticate(const Credentials&, std::function<void(AuthnResult)> done) const override {
    ++calls;
    done(result_);
  }
  mutable int calls = 0;

 private:
  AuthnResult result_;
};

AuthnResult authenticated(UserInfo user) {
  AuthnResult r;
  r.kind = Kind::kAuthenticated;
  r.user = std::move(user);
  return r;
}
AuthnResult failed(std::string error) {
  AuthnResult r;
  r.kind = Kind::kFailed;
  r.error = std::move(error);
  return r;
}

TEST(AuthenticatorChainTest, AnonymousOnlyWithoutCredentials) {
  auto tokens = make_token_authenticator({{"good", testing::user("alice")}});
  auto chain = make_authenticator_chain({tokens}, true);

  http::Header none = header({});
  AuthnResult r = authenticate(*chain, &none);
  ASSERT_EQ(r.kind, Kind::kAuthenticated);
  EXPECT_EQ(r.user.name, kAnonymousUser);
  EXPECT_EQ(r.user.groups, (Groups{kSystemUnauthenticated}));

  // A wrong token is a 401 even with anonymous on.
  http::Header wrong = header({{"Authorization", "Bearer bad"}});
  r = authenticate(*chain, &wrong);
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "invalid bearer token");

  auto closed = make_authenticator_chain({tokens}, false);
  EXPECT_EQ(authenticate(*closed, &none).kind, Kind::kNoOpinion);
}

TEST(AuthenticatorChainTest, FirstSuccessWinsAndGetsSystemAuthenticated) {
  auto bad = std::make_shared<FixedAuthenticator>(failed("x509: bad"));
  auto alice = std::make_shared<FixedAuthenticator>(authenticated(testing::user("alice", {"dev"})));
  auto bob = std::make_shared<FixedAuthenticator>(authenticated(testing::user("bob")));
  auto chain = make_authenticator_chain({bad, alice, bob}, true);
  AuthnResult r = authenticate(*chain, nullptr);
  ASSERT_EQ(r.kind, Kind::kAuthenticated);
  EXPECT_EQ(r.user.name, "alice");
  EXPECT_EQ(r.user.groups, (Groups{"dev", kSystemAuthenticated}));
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(bob->calls, 0);
}

TEST(AuthenticatorChainTest, SystemAuthenticatedIsAddedOnlyOnce) {
  auto run = [](UserInfo user) {
    auto chain = make_authenticator_chain(
        {std::make_shared<FixedAuthenticator>(authenticated(user))}, false);
    return authenticate(*chain, nullptr).user.groups;
  };
  EXPECT_EQ(run(testing::user("a", {kSystemAuthenticated, "x"})),
            (Groups{kSystemAuthenticated, "x"}));
  EXPECT_EQ(run(testing::user("a", {kSystemUnauthenticated})), (Groups{kSystemUnauthenticated}));
  EXPECT_EQ(run(testing::user(kAnonymousUser)), Groups{});
  EXPECT_EQ(run(testing::user("a")), (Groups{kSystemAuthenticated}));
}

TEST(AuthenticatorChainTest, FailuresAreAggregated) {
  auto chain = make_authenticator_chain({std::make_shared<FixedAuthenticator>(failed("one")),
                                         std::make_shared<FixedAuthenticator>(AuthnResult{}),
                                         std::make_shared<FixedAuthenticator>(failed("two"))},
                                        true);
  AuthnResult r = authenticate(*chain, nullptr);
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "[one, two]");
}

TEST(AuthenticatorChainTest, WarningsAreKeptOnceEvenWhenALaterOneSucceeds) {
  auto tokens1 = make_token_authenticator({{"x", testing::user("a")}});
  auto tokens2 = make_token_authenticator({{"y", testing::user("b")}});
  auto alice = std::make_shared<FixedAuthenticator>(authenticated(testing::user("alice")));
  auto chain = make_authenticator_chain({tokens1, tokens2, alice}, false);
  http::Header spaced = header({{"Authorization", "Bearer  x"}});
  AuthnResult r = authenticate(*chain, &spaced);
  EXPECT_EQ(r.user.name, "alice");
  EXPECT_EQ(r.warnings, (Groups{std::string("299 - \"") + kExtraSpaceWarning + "\""}));
}

TEST(AuthenticatorChainTest, WaitsForAnAuthenticatorThatAnswersLater) {
  auto later = std::make_shared<LaterAuthenticator>();
  auto bob = std::make_shared<FixedAuthenticator>(authenticated(testing::user("bob")));
  auto chain = make_authenticator_chain({later, bob}, false);

  std::optional<AuthnResult> result;
  {
    // The Credentials object itself may be gone by the time the answer comes.
    Credentials credentials;
    chain->authenticate(credentials, [&](AuthnResult r) { result = std::move(r); });
  }
  EXPECT_FALSE(result);
  EXPECT_EQ(bob->calls, 0);
  ASSERT_TRUE(later->waiting());

  std::thread webhook([&] { later->answer(AuthnResult{}); });  // no opinion, from another thread
  webhook.join();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->user.name, "bob");
  EXPECT_EQ(bob->calls, 1);
}

TEST(AuthenticatorChainTest, LaterFailureStillBlocksAnonymous) {
  auto later = std::make_shared<LaterAuthenticator>();
  std::optional<AuthnResult> result;
  make_authenticator_chain({later}, true)->authenticate({}, [&](AuthnResult r) {
    result = std::move(r);
  });
  later->answer(failed("webhook: token rejected"));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, Kind::kFailed);
  EXPECT_EQ(result->error, "webhook: token rejected");
}

// --- the WebSocket bearer-token subprotocol --------------------------------------------------------

http::Header websocket(std::vector<std::string> protocols) {
  std::vector<std::pair<std::string, std::string>> fields{
      {"Connection", "Upgrade"}, {"Upgrade", "websocket"}};
  for (auto& p : protocols) fields.emplace_back("Sec-WebSocket-Protocol", std::move(p));
  http::Header h = header(std::move(fields));
  h.method(boost::beast::http::verb::get);
  return h;
}

std::string token_protocol(std::string_view token) {
  return std::string(kWebSocketBearerProtocolPrefix) + api::base64url_encode(token);
}

TEST(WebSocketProtocolTest, TokenInASubprotocolAuthenticates) {
  auto ws = make_websocket_protocol_authenticator(
      make_token_authenticator({{"s3cr3t/+token", testing::user("alice")}}));
  // One header or several, the token anywhere among them.
  http::Header one = websocket({"v1.dpa, " + token_protocol("s3cr3t/+token")});
  EXPECT_EQ(authenticate(*ws, &one).user.name, "alice");
  http::Header two = websocket({token_protocol("s3cr3t/+token"), "v1.dpa"});
  EXPECT_EQ(authenticate(*ws, &two).user.name, "alice");
  // The server answers with one of the others, never the token.
  EXPECT_EQ(websocket_protocols_without_token(two), (Groups{"v1.dpa"}));
  EXPECT_EQ(websocket_protocols_without_token(one), (Groups{"v1.dpa"}));
}

TEST(WebSocketProtocolTest, NotAWebSocketOrNoTokenHasNoOpinion) {
  auto ws = make_websocket_protocol_authenticator(
      make_token_authenticator({{"secret", testing::user("alice")}}));
  http::Header plain = header({{"Sec-WebSocket-Protocol", token_protocol("secret") + ", v1"}});
  plain.method(boost::beast::http::verb::get);
  EXPECT_EQ(authenticate(*ws, &plain).kind, Kind::kNoOpinion);  // no Upgrade: websocket
  http::Header no_token = websocket({"v1.dpa"});
  EXPECT_EQ(authenticate(*ws, &no_token).kind, Kind::kNoOpinion);
  http::Header empty_token = websocket({std::string(kWebSocketBearerProtocolPrefix), "v1"});
  EXPECT_EQ(authenticate(*ws, &empty_token).kind, Kind::kNoOpinion);
}

TEST(WebSocketProtocolTest, BadTokensFailWithKubesErrors) {
  auto ws = make_websocket_protocol_authenticator(
      make_token_authenticator({{"secret", testing::user("alice")}}));
  auto failure = [&](std::vector<std::string> protocols) {
    http::Header h = websocket(std::move(protocols));
    AuthnResult r = authenticate(*ws, &h);
    EXPECT_EQ(r.kind, Kind::kFailed);
    return r.error;
  };
  EXPECT_EQ(failure({token_protocol("wrong"), "v1"}), "invalid bearer token");
  EXPECT_EQ(failure({token_protocol("secret"), token_protocol("secret"), "v1"}),
            "multiple base64.bearer.authorization tokens specified");
  EXPECT_EQ(failure({std::string(kWebSocketBearerProtocolPrefix) + "c2VjcmV0=", "v1"}),
            "invalid base64.bearer.authorization token encoding");  // padding is not raw base64url
  EXPECT_EQ(failure({std::string(kWebSocketBearerProtocolPrefix) + "a+b/", "v1"}),
            "invalid base64.bearer.authorization token encoding");
  EXPECT_EQ(failure({token_protocol("\xff\xfe"), "v1"}),
            "invalid base64.bearer.authorization token: contains non UTF-8-encoded runes");
  EXPECT_EQ(failure({token_protocol("secret")}), "missing additional subprotocol");
}

// --- reloading from files ------------------------------------------------------------------------

TEST(ReloadableAuthenticatorTest, ReloadSwapsAndAFailedReloadKeepsTheLastGoodOne) {
  TempDir dir;
  const std::string file = dir.write("tokens.csv", "first,alice,1\n");
  auto made = ReloadableAuthenticator::create([file] { return load_token_file(file); });
  ASSERT_TRUE(made);
  auto& tokens = **made;
  EXPECT_EQ(with_token(tokens, "first").user.name, "alice");

  dir.write("tokens.csv", "second,bob,2\n");
  ASSERT_TRUE(tokens.reload().ok());
  EXPECT_EQ(with_token(tokens, "second").user.name, "bob");
  EXPECT_EQ(with_token(tokens, "first").kind, Kind::kFailed);

  dir.write("tokens.csv", "broken\n");  // too few columns
  EXPECT_FALSE(tokens.reload().ok());
  EXPECT_EQ(with_token(tokens, "second").user.name, "bob");

  EXPECT_FALSE(ReloadableAuthenticator::create([&dir] {
    return load_token_file(dir.path("missing.csv"));
  }));
}

TEST(UnauthorizedTest, IsKubesStatus) {
  EXPECT_EQ(unauthorized().code, 401);
  EXPECT_EQ(unauthorized().body(),
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
            R"("message":"Unauthorized","reason":"Unauthorized","code":401})");
}

}  // namespace
}  // namespace dpa::auth
