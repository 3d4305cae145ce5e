#include "aggregator/app/access_control.h"

#include "aggregator/http/wire.h"
#include "aggregator/observability/log.h"

namespace dpa::app {
namespace {

// X-Forwarded-For entries, then the peer unless it is the last of them (kube's sourceIPs).
std::vector<std::string> source_ips(const http::Exchange& exchange) {
  std::vector<std::string> ips;
  if (auto it = exchange.header().find("X-Forwarded-For"); it != exchange.header().end()) {
    std::string_view list = it->value();
    while (!list.empty()) {
      std::size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.empty()) ips.emplace_back(item);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  std::string peer(http::address_of(exchange.remote_address()));
  if (ips.empty() || ips.back() != peer) ips.push_back(std::move(peer));
  return ips;
}

}  // namespace

struct AccessControl::Pending {
  std::shared_ptr<http::Exchange> exchange;
  Next next;
  auth::Credentials credentials;
  auth::Attributes attributes;  // the request's; the user is filled in once known
  std::optional<auth::Impersonation> impersonation;
  // The event being put together for the audit log; null without one.
  std::shared_ptr<auth::AuditEvent> audit;
};

AccessControl::AccessControl(std::shared_ptr<const auth::Authenticator> authenticator,
                             std::shared_ptr<const auth::Authorizer> authorizer,
                             auth::AuditLog* audit)
    : authenticator_(std::move(authenticator)), authorizer_(std::move(authorizer)), audit_(audit) {}

void AccessControl::check(const std::shared_ptr<http::Exchange>& exchange, Next next) const {
  auto pending = std::make_shared<Pending>();
  pending->exchange = exchange;
  pending->next = std::move(next);
  // Both point into the exchange, which `pending` keeps alive until the last callback.
  pending->credentials.header = &exchange->header();
  pending->credentials.client_certificate = exchange->peer_certificates();
  pending->attributes =
      auth::request_attributes(exchange->header().method_string(), exchange->path(), exchange->query());
  if (audit_) start_audit(*pending);
  authenticator_->authenticate(pending->credentials, [this, pending](auth::AuthnResult result) {
    auto& ex = *pending->exchange;
    if (result.kind != auth::AuthnResult::Kind::kAuthenticated) {
      if (!result.error.empty()) {
        obs::info("authentication failed", {{"error", result.error},
                                            {"request_id", ex.request_id()},
                                            {"remote", ex.remote_address()}});
      }
      if (pending->audit) pending->audit->authenticated = false;
      return ex.respond_error(auth::unauthorized());
    }
    pending->attributes.user = std::move(result.user);
    auto impersonation = auth::parse_impersonation(ex.header(), pending->attributes.user);
    if (!impersonation) return ex.respond_error(impersonation.error());
    pending->impersonation = std::move(*impersonation);
    impersonate(pending, 0);
  });
}

// The event is written when the exchange is over, with the status the client got.
void AccessControl::start_audit(Pending& pending) const {
  auto& ex = *pending.exchange;
  auto event = std::make_shared<auth::AuditEvent>();
  event->received = std::chrono::system_clock::now();
  event->audit_id = ex.request_id();
  event->trace_id = std::string(ex.trace_context().trace_id());
  event->request_uri = std::string(ex.path());
  if (!ex.query().empty()) event->request_uri += "?" + std::string(ex.query());
  if (auto it = ex.header().find("User-Agent"); it != ex.header().end()) {
    event->user_agent = std::string(it->value());
  }
  event->source_ips = source_ips(ex);
  event->attributes = pending.attributes;  // the user is filled in once authenticated
  pending.audit = event;
  ex.on_complete([log = audit_, event](int status) {
    event->code = status;
    event->completed = std::chrono::system_clock::now();
    log->record(std::move(*event));
  });
}

// Every impersonation check must be allowed, one after the other (reference §7).
void AccessControl::impersonate(std::shared_ptr<Pending> pending, std::size_t index) const {
  if (!pending->impersonation || index == pending->impersonation->checks.size()) {
    return authorize(std::move(pending));
  }
  const auth::Attributes& check = pending->impersonation->checks[index];
  authorizer_->authorize(check, [this, pending, index](auth::AuthzResult result) {
    const auth::Attributes& check = pending->impersonation->checks[index];
    if (result.decision != auth::AuthzResult::Decision::kAllow) {
      note_decision(*pending, "forbid", result.reason);
      return pending->exchange->respond_error(auth::forbidden(check, result.reason));
    }
    impersonate(pending, index + 1);
  });
}

void AccessControl::authorize(std::shared_ptr<Pending> pending) const {
  // The request is judged as the user it acts as; the audit log keeps the requester too.
  auth::Attributes attributes = pending->attributes;
  if (pending->impersonation) attributes.user = pending->impersonation->user;
  auto user = std::make_shared<const auth::UserInfo>(attributes.user);
  authorizer_->authorize(attributes, [this, pending, attributes, user](auth::AuthzResult result) {
    auto& ex = *pending->exchange;
    if (result.decision == auth::AuthzResult::Decision::kAllow) {
      note_decision(*pending, "allow", result.reason);
      return pending->next(user, attributes);
    }
    note_decision(*pending, "forbid", result.reason);
    if (!result.error.empty()) {
      // kube-apiserver: no authorizer allowed and one failed -> 500, not a misleading 403.
      obs::warn("authorization failed", {{"error", result.error}, {"request_id", ex.request_id()}});
      return ex.respond_error(api::ApiError::internal("authorization failed: " + result.error));
    }
    ex.respond_error(auth::forbidden(attributes, result.reason));
  });
}

void AccessControl::note_decision(Pending& pending, const char* decision,
                                  const std::string& reason) const {
  if (!pending.audit) return;
  pending.audit->attributes = pending.attributes;  // the requester, as kube's audit `user`
  if (pending.impersonation) pending.audit->impersonated = pending.impersonation->user;
  pending.audit->decision = decision;
  pending.audit->reason = reason;
}

}  // namespace dpa::app
