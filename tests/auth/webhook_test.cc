// Webhook configuration (kubeconfig files): a malformed file is an error naming it, never an
// exception or a hang (yaml-cpp, which read them before libyaml, threw on a node that was not a
// map, found by fuzz_auth_files, and never returned on some malformed input).
// The webhook round trips themselves are covered by tests/integration/test_security.py.
#include "aggregator/auth/webhook.h"
#include "tests/auth/auth_test_util.h"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace dpa::auth {
namespace {

TEST(WebhookConfigTest, MalformedKubeconfigsAreErrors) {
  testing::TempDir dir;
  boost::asio::io_context io;
  const char* kBad[] = {
      "just a scalar",
      "- a\n- list\n",
      "clusters: 5\n",
      "clusters: [scalar, [nested]]\ncontexts: [x]\nusers: {a: b}\n",
      "clusters: [{name: w, cluster: [not, a, map]}]\n",
      "clusters: [{name: w, cluster: {server: 'ftp://x'}}]\n",
      "current-context: c\ncontexts: [{name: c, context: [x]}]\nclusters: [{cluster: {}}]\n",
      "{unclosed: [\n",
      // yaml-cpp 0.7 looped for ever on these.
      "!!str, y",
      "\"\"t\n?\n",
  };
  for (const char* text : kBad) {
    WebhookOptions options;
    options.config_file = dir.write("kubeconfig", text);
    auto made = make_token_webhook(options, io.get_executor());
    ASSERT_FALSE(made.ok()) << text;
    EXPECT_NE(made.error().message.find(options.config_file), std::string::npos) << text;
    EXPECT_FALSE(make_authorization_webhook(options, io.get_executor()).ok()) << text;
  }
  WebhookOptions good;
  good.config_file = dir.write(
      "good", "apiVersion: v1\nkind: Config\nclusters: [{name: w, cluster: {server: "
              "'http://127.0.0.1:1/authenticate'}}]\nusers: [{name: u, user: {token: t}}]\n"
              "contexts: [{name: c, context: {cluster: w, user: u}}]\ncurrent-context: c\n");
  EXPECT_TRUE(make_token_webhook(good, io.get_executor()).ok());
}

}  // namespace
}  // namespace dpa::auth
