// Token and authorization webhooks (reference kubernetes-authn-authz.md §3, §6): a TokenReview
// (authentication.k8s.io/v1) or SubjectAccessReview (authorization.k8s.io/v1) POSTed to a remote
// service described by a kubeconfig file, answers cached for a TTL. A webhook that is down, slow
// (past the timeout) or answers nonsense decides nothing: the token is not authenticated (401),
// the authorizer has no opinion and reports an error. Errors are never cached.
#pragma once

#include "aggregator/auth/auth.h"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace dpa::auth {

struct WebhookOptions {
  std::string config_file;  // kubeconfig: clusters[].cluster.server, certificate-authority,
                            // users[].user client-certificate/client-key or token
  std::chrono::milliseconds timeout{10000};
  std::chrono::seconds allowed_ttl{120};  // authentication: every answer; authorization: allowed
  std::chrono::seconds denied_ttl{30};    // authorization: denied or no opinion
  std::size_t cache_entries = 8192;       // least recently stored entries go first
};

// The calls run on `executor` (their callbacks too).
api::Expected<std::shared_ptr<const Authenticator>> make_token_webhook(
    WebhookOptions options, boost::asio::any_io_executor executor);
api::Expected<std::shared_ptr<const Authorizer>> make_authorization_webhook(
    WebhookOptions options, boost::asio::any_io_executor executor);

}  // namespace dpa::auth
