// What the delegate is told (reference anchors §1.5) and which client headers never reach it.
#include "aggregator/auth/auth.h"
#include "tests/auth/auth_test_util.h"

#include <gtest/gtest.h>

namespace dpa::auth {
namespace {

TEST(IdentityHeadersTest, RemoteIdentityHeaders) {
  for (const char* name :
       {"X-Remote-User", "x-remote-user", "X-REMOTE-GROUP", "X-Remote-Uid", "X-Remote-Extra-Scopes",
        "x-remote-extra-acme.com%2fproject", "X-Remote-Extra-"}) {
    EXPECT_TRUE(is_remote_identity_header(name)) << name;
  }
  for (const char* name : {"X-Remote-Users", "X-Remote-Addr", "X-Remote-Extra", "Authorization",
                           "Impersonate-User", "X-Forwarded-For"}) {
    EXPECT_FALSE(is_remote_identity_header(name)) << name;
  }
}

TEST(IdentityHeadersTest, ClientCredentialHeaders) {
  for (const char* name : {"Authorization", "authorization", "Impersonate-User",
                           "impersonate-group", "Impersonate-Uid", "Impersonate-Extra-Scopes"}) {
    EXPECT_TRUE(is_client_credential_header(name)) << name;
  }
  for (const char* name : {"X-Remote-User", "Impersonate-Users", "Cookie", "Accept"}) {
    EXPECT_FALSE(is_client_credential_header(name)) << name;
  }
}

TEST(IdentityHeadersTest, OneLinePerGroupAndExtraValue) {
  UserInfo user = testing::user("alice", {"a", "b,c", kSystemAuthenticated});
  user.extra = {{"acme.com/project", {"p"}}, {"100%", {"x"}}, {"scopes", {"s1", "s2"}}};
  std::string head;
  append_identity_headers(head, user);
  EXPECT_EQ(head,
            "X-Remote-User: alice\r\n"
            "X-Remote-Group: a\r\n"
            "X-Remote-Group: b,c\r\n"
            "X-Remote-Group: system:authenticated\r\n"
            "X-Remote-Extra-100%25: x\r\n"
            "X-Remote-Extra-acme.com%2Fproject: p\r\n"
            "X-Remote-Extra-scopes: s1\r\n"
            "X-Remote-Extra-scopes: s2\r\n");

  user = testing::user("bob");
  user.uid = "42";
  head = "Host: x\r\n";
  append_identity_headers(head, user);  // appends, keeps what is there
  EXPECT_EQ(head, "Host: x\r\nX-Remote-User: bob\r\nX-Remote-Uid: 42\r\n");
}

TEST(IdentityHeadersTest, ValuesThatWouldInjectHeadersAreDropped) {
  UserInfo user = testing::user("alice\r\nX-Remote-Group: system:masters",
                                {"ok", "evil\nX-Remote-Group: system:masters", "nul\0x"});
  user.groups[2] = std::string("nul\0x", 5);
  user.uid = std::string("u\0", 2);
  user.extra = {{"k\r\nX-Remote-Group: system:masters", {"v"}}, {"k2", {"v\r", "fine"}}};
  std::string head;
  append_identity_headers(head, user);
  EXPECT_EQ(head,
            "X-Remote-Group: ok\r\n"
            "X-Remote-Extra-k%0D%0AX-Remote-Group%3A%20system%3Amasters: v\r\n"
            "X-Remote-Extra-k2: fine\r\n");
}

TEST(IdentityHeadersTest, ExtraKeysSurviveTheTripThroughAFrontProxy) {
  // What we write, a kube-style backend (our own request-header authenticator) reads back.
  testing::TempDir dir;
  testing::Authority ca("front-proxy-ca");
  RequestHeaderOptions options;
  options.client_ca_file = dir.write("ca.crt", testing::pem(ca.certificate));
  auto backend = make_request_header_authenticator(options);
  ASSERT_TRUE(backend);
  testing::CertificateSpec spec;
  spec.common_name = "aggregator";
  http::PeerCertificates proxy = testing::presented(ca.issue(spec));

  UserInfo user = testing::user("alice", {"g1", "g 2", kSystemAuthenticated});
  user.uid = "u-1";
  user.extra = {{"acme.com/project", {"p1", "p2"}},
                {"100%", {"x"}},
                {"with space", {"v"}},
                {"\xc3\xa4", {"umlaut"}}};
  std::string head;
  append_identity_headers(head, user);

  http::Header received = testing::header({});
  for (std::size_t start = 0; start < head.size();) {
    std::size_t end = head.find("\r\n", start);
    std::string line = head.substr(start, end - start);
    std::size_t colon = line.find(": ");
    received.insert(line.substr(0, colon), line.substr(colon + 2));
    start = end + 2;
  }
  AuthnResult r = testing::authenticate(**backend, &received, &proxy);
  ASSERT_EQ(r.kind, AuthnResult::Kind::kAuthenticated) << r.error;
  EXPECT_EQ(r.user.name, user.name);
  EXPECT_EQ(r.user.uid, user.uid);
  EXPECT_EQ(r.user.groups, user.groups);
  EXPECT_EQ(r.user.extra, user.extra);
}

}  // namespace
}  // namespace dpa::auth
