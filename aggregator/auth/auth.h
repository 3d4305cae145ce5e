// Who is asking, and may they (DESIGN §6; facts: shared/reference/kubernetes-authn-authz.md).
// Authentication turns a request's credentials into a UserInfo (client certificate, trusted
// front-proxy headers, bearer token, anonymous); authorization decides on the request's
// attributes (kube's RequestInfo) with an ordered chain of authorizers; impersonation swaps the
// user after authorizing verb `impersonate`. Results are values: 401/403/400 as ApiErrors whose
// text matches kube-apiserver's, never exceptions.
//
// Threading: every object here is immutable after construction and safe to use from any thread.
// authenticate()/authorize() call `done` exactly once, inline for everything local (tokens, ABAC)
// and later, on another thread, for webhooks; the caller keeps whatever `Credentials` points to
// alive until then.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/http/exchange.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::auth {

inline constexpr const char* kSystemMasters = "system:masters";
inline constexpr const char* kSystemAuthenticated = "system:authenticated";
inline constexpr const char* kSystemUnauthenticated = "system:unauthenticated";
inline constexpr const char* kAnonymousUser = "system:anonymous";

struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;

  bool in_group(std::string_view group) const;
};

// --- authentication ------------------------------------------------------------------------------

// What an authenticator sees of one request. Both pointers outlive the call.
struct Credentials {
  const http::Header* header = nullptr;
  const http::PeerCertificates* client_certificate = nullptr;  // null: no TLS client certificate
};

struct AuthnResult {
  enum class Kind { kNoOpinion, kAuthenticated, kFailed };
  Kind kind = Kind::kNoOpinion;
  UserInfo user;
  std::string error;                  // why it failed: for the log, never for the client
  std::vector<std::string> warnings;  // `Warning: 299 - "..."` values for the response
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual void authenticate(const Credentials& credentials,
                            std::function<void(AuthnResult)> done) const = 0;
};

// `Authorization: Bearer <token>` parsed as kube does (reference §1): nullopt = no opinion. A
// header with an extra space before the token gives no token and sets `warning`.
std::optional<std::string> bearer_token(const http::Header& header, std::string* warning);

// kube's WebSocket token (reference §1): browsers cannot set Authorization on a WebSocket, so a
// WebSocket upgrade may carry the token as the subprotocol
// `base64url.bearer.authorization.k8s.io.<base64url token>`. Wraps the token authenticators:
// they see the token as `Authorization: Bearer`. Not a WebSocket upgrade, or no such subprotocol:
// no opinion. Two of them, bad encoding, a token that is not UTF-8, or no other subprotocol left to
// answer with: kFailed.
std::shared_ptr<const Authenticator> make_websocket_protocol_authenticator(
    std::shared_ptr<const Authenticator> token_authenticator);
inline constexpr std::string_view kWebSocketBearerProtocolPrefix =
    "base64url.bearer.authorization.k8s.io.";
// The Sec-WebSocket-Protocol values of a request with the bearer-token one taken out, in order
// (kube removes it once authenticated; a server answers with one of the rest).
std::vector<std::string> websocket_protocols_without_token(const http::Header& header);

// --token-auth-file: kube's CSV (token,user,uid,"group1,group2"); errors name the file and line.
// Tokens are compared in constant time (by SHA-256 digest, then CRYPTO_memcmp).
api::Expected<std::shared_ptr<const Authenticator>> load_token_file(const std::string& path);
// Token -> user entries given directly (the generated admin token).
struct StaticToken {
  std::string token;
  UserInfo user;
};
std::shared_ptr<const Authenticator> make_token_authenticator(std::vector<StaticToken> tokens);

// --client-ca-file: a certificate chaining to the CA (clientAuth usage) authenticates as CN, with
// groups O. A certificate that does not verify is kFailed.
api::Expected<std::shared_ptr<const Authenticator>> make_x509_authenticator(const std::string& ca_file);

// --requestheader-*: honoured only when the client certificate chains to `client_ca_file` and
// (when `allowed_names` is not empty) its CN is listed. Header names are matched
// case-insensitively; extra keys are lower-cased and %-unescaped.
struct RequestHeaderOptions {
  std::string client_ca_file;
  std::vector<std::string> allowed_names;
  std::vector<std::string> username_headers{"X-Remote-User"};
  std::vector<std::string> uid_headers{"X-Remote-Uid"};
  std::vector<std::string> group_headers{"X-Remote-Group"};
  std::vector<std::string> extra_headers_prefix{"X-Remote-Extra-"};
};
api::Expected<std::shared_ptr<const Authenticator>> make_request_header_authenticator(
    RequestHeaderOptions options);

// An authenticator made from files (a CA, a token file) and made again by reload() when they
// change, as kube reloads its CA and certificate files: requests use the last good build; a build
// that fails leaves it in place and returns the error.
class ReloadableAuthenticator final : public Authenticator {
 public:
  using Build = std::function<api::Expected<std::shared_ptr<const Authenticator>>()>;
  static api::Expected<std::shared_ptr<ReloadableAuthenticator>> create(Build build);
  ReloadableAuthenticator(Build build, std::shared_ptr<const Authenticator> first);

  api::Outcome reload();
  void authenticate(const Credentials& credentials,
                    std::function<void(AuthnResult)> done) const override;

 private:
  const Build build_;
  std::atomic<std::shared_ptr<const Authenticator>> current_;
};

// First kAuthenticated wins; then `system:authenticated` is appended (not for system:anonymous,
// nor when system:authenticated/unauthenticated is already there). With `anonymous`, a request
// that no authenticator failed becomes system:anonymous / [system:unauthenticated].
std::shared_ptr<const Authenticator> make_authenticator_chain(
    std::vector<std::shared_ptr<const Authenticator>> authenticators, bool anonymous);

// --- authorization -------------------------------------------------------------------------------

// kube's authorizer.Attributes.
struct Attributes {
  UserInfo user;
  std::string verb;
  bool resource_request = false;
  std::string path;  // non-resource requests
  std::string api_group, api_version, namespace_name, resource, subresource, name;
};

// kube's RequestInfo (reference §4) for a request line, with the user left empty. One rule of
// ours on top (DESIGN §6): a GET of a data-plane stream (subresource "stream") is `watch`.
Attributes request_attributes(std::string_view method, std::string_view path,
                              std::string_view query);

struct AuthzResult {
  enum class Decision { kAllow, kDeny, kNoOpinion };
  Decision decision = Decision::kNoOpinion;
  std::string reason;  // appended to the 403 message when not empty
  std::string error;   // an authorizer failed (webhook down): 500 unless a later one allows
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  virtual void authorize(const Attributes& attributes,
                         std::function<void(AuthzResult)> done) const = 0;
};

std::shared_ptr<const Authorizer> make_always_allow();
std::shared_ptr<const Authorizer> make_always_deny();  // NoOpinion, "Everything is forbidden."
// --authorization-policy-file: kube's ABAC JSON lines (v1beta1 and the legacy v0 form).
api::Expected<std::shared_ptr<const Authorizer>> load_abac_policy(const std::string& path);
// system:masters first, then each in order; first Allow or Deny wins; all NoOpinion: Deny with
// the reasons joined by "\n".
std::shared_ptr<const Authorizer> make_authorizer_chain(
    std::vector<std::shared_ptr<const Authorizer>> authorizers);

// The 401 and 403 Statuses, text as kube-apiserver writes them (reference §8).
api::ApiError unauthorized();
api::ApiError forbidden(const Attributes& attributes, const std::string& reason);

// --- impersonation -------------------------------------------------------------------------------

struct Impersonation {
  UserInfo user;                 // who the request acts as, once every check is allowed
  std::vector<Attributes> checks;  // verb `impersonate`, user = the requester (reference §7)
};
// nullopt without Impersonate-* headers; 400 when a group/uid/extra comes without a user.
api::Expected<std::optional<Impersonation>> parse_impersonation(const http::Header& header,
                                                                const UserInfo& requester);

// --- toward the delegate -------------------------------------------------------------------------

// Headers a client must never pass through to the delegate: X-Remote-User/-Uid/-Group/-Extra-*.
bool is_remote_identity_header(std::string_view name);
// Headers that carry the client's own credentials or identity wishes (Authorization,
// Impersonate-*): removed in front-proxy mode, forwarded in pass-through mode.
bool is_client_credential_header(std::string_view name);
// Appends "X-Remote-User: ...\r\n" etc. for `user` (reference §1.5: one X-Remote-Group line per
// group, X-Remote-Extra-<key> with the key %-escaped). Values with CR, LF or NUL are dropped.
void append_identity_headers(std::string& head, const UserInfo& user);

}  // namespace dpa::auth
