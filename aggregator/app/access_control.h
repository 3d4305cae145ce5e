// The authn/authz stage of DESIGN §4 (session -> authn/authz -> front router): authenticates a
// request, applies Impersonate-* headers (each authorized with verb `impersonate`), authorizes the
// request's attributes, and only then lets it be routed, with the user it acts as. Every refusal
// is answered here, once: 401 Unauthorized, 400 for malformed impersonation, 403 Forbidden with
// kube's message, 500 when an authorizer failed and none allowed.
#pragma once

#include "aggregator/auth/audit.h"
#include "aggregator/auth/auth.h"
#include "aggregator/http/exchange.h"

#include <functional>
#include <memory>

namespace dpa::app {

class AccessControl {
 public:
  // `audit` (may be null) gets one event per checked request; it must outlive every request.
  AccessControl(std::shared_ptr<const auth::Authenticator> authenticator,
                std::shared_ptr<const auth::Authorizer> authorizer, auth::AuditLog* audit);

  // Calls next(user, attributes) when the request may go on (inline for local authenticators
  // and authorizers, later for webhooks); otherwise answers the exchange itself. `attributes` are
  // the request's as authorized (user included); valid during the call.
  using Next =
      std::function<void(std::shared_ptr<const auth::UserInfo>, const auth::Attributes&)>;
  void check(const std::shared_ptr<http::Exchange>& exchange, Next next) const;

 private:
  struct Pending;
  void start_audit(Pending& pending) const;
  void impersonate(std::shared_ptr<Pending> pending, std::size_t index) const;
  void authorize(std::shared_ptr<Pending> pending) const;
  void note_decision(Pending& pending, const char* decision, const std::string& reason) const;

  std::shared_ptr<const auth::Authenticator> authenticator_;
  std::shared_ptr<const auth::Authorizer> authorizer_;
  auth::AuditLog* audit_;
};

}  // namespace dpa::app
