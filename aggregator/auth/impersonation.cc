// Impersonate-* headers (reference §7): what the requester asks to act as, the `impersonate`
// checks the authorizer must allow first, and the user that results.
#include "aggregator/auth/auth.h"

#include "aggregator/auth/header_text.h"

#include <iterator>
#include <utility>

namespace dpa::auth {
namespace {

constexpr const char* kImpersonateUser = "Impersonate-User";
constexpr const char* kImpersonateGroup = "Impersonate-Group";
constexpr const char* kImpersonateUid = "Impersonate-Uid";
constexpr std::string_view kImpersonateExtraPrefix = "Impersonate-Extra-";
constexpr std::string_view kServiceAccountPrefix = "system:serviceaccount:";
constexpr const char* kAuthenticationGroup = "authentication.k8s.io";

// What one impersonation header asks for, as kube's v1.ObjectReference.
struct Request {
  std::string kind;  // User, ServiceAccount, Group, UserExtra, UID
  std::string namespace_name;
  std::string name;
  std::string api_version;  // only the authentication.k8s.io kinds carry one
  std::string field_path;   // the extra key of a UserExtra
};

// Go's %v of kube's []v1.ObjectReference, which the 400 message prints: every field of the
// struct (Kind Namespace Name UID APIVersion ResourceVersion FieldPath), space-separated.
std::string go_dump(const std::vector<Request>& requests) {
  std::string out = "[";
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    const std::string_view fields[] = {r.kind,      r.namespace_name, r.name,
                                       /*UID*/ "",  r.api_version,    /*ResourceVersion*/ "",
                                       r.field_path};
    out += i > 0 ? " {" : "{";
    for (std::size_t f = 0; f < std::size(fields); ++f) {
      if (f > 0) out += " ";
      out += fields[f];
    }
    out += "}";
  }
  return out + "]";
}

bool is_dns_label_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric.
bool is_dns_label(std::string_view s, std::size_t max_size) {
  if (s.empty() || s.size() > max_size) return false;
  if (!is_dns_label_character(s.front()) || !is_dns_label_character(s.back())) return false;
  for (char c : s) {
    if (!is_dns_label_character(c) && c != '-') return false;
  }
  return true;
}

// RFC 1123 subdomain: dot-separated labels, 253 characters at most.
bool is_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  while (true) {
    std::size_t dot = s.find('.');
    if (!is_dns_label(s.substr(0, dot), 253)) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

// kube's serviceaccount.SplitUsername: system:serviceaccount:<namespace>:<name> with a valid
// namespace and service account name; anything else is an ordinary user name.
bool split_service_account(std::string_view user, std::string& namespace_name, std::string& name) {
  if (user.substr(0, kServiceAccountPrefix.size()) != kServiceAccountPrefix) return false;
  std::string_view rest = user.substr(kServiceAccountPrefix.size());
  std::size_t colon = rest.find(':');
  if (colon == std::string_view::npos || rest.find(':', colon + 1) != std::string_view::npos) {
    return false;
  }
  std::string_view ns = rest.substr(0, colon), sa = rest.substr(colon + 1);
  if (!is_dns_label(ns, 63) || !is_dns_subdomain(sa)) return false;
  namespace_name = ns;
  name = sa;
  return true;
}

}  // namespace

api::Expected<std::optional<Impersonation>> parse_impersonation(const http::Header& header,
                                                                const UserInfo& requester) {
  std::vector<Request> requests;

  // The user: the first Impersonate-User value; an empty one asks for nothing.
  bool has_user = false;
  if (auto it = header.find(kImpersonateUser); it != header.end() && !it->value().empty()) {
    has_user = true;
    std::string user(it->value());
    Request request;
    if (split_service_account(user, request.namespace_name, request.name)) {
      request.kind = "ServiceAccount";
    } else {
      request.kind = "User";
      request.name = std::move(user);
    }
    requests.push_back(std::move(request));
  }

  // Every Impersonate-Group value is one group, empty ones included, as kube reads them.
  bool has_groups = false;
  auto [groups_begin, groups_end] = header.equal_range(kImpersonateGroup);
  for (auto it = groups_begin; it != groups_end; ++it) {
    has_groups = true;
    requests.push_back({"Group", "", std::string(it->value()), "", ""});
  }

  bool has_extra = false;
  for (const auto& field : header) {
    std::string_view name = field.name_string();
    if (!detail::starts_with_ignoring_case(name, kImpersonateExtraPrefix)) continue;
    has_extra = true;
    requests.push_back({"UserExtra", "", std::string(field.value()),
                        std::string(kAuthenticationGroup) + "/v1",
                        detail::extra_key(name.substr(kImpersonateExtraPrefix.size()))});
  }

  bool has_uid = false;
  if (auto it = header.find(kImpersonateUid); it != header.end() && !it->value().empty()) {
    has_uid = true;
    requests.push_back(
        {"UID", "", std::string(it->value()), std::string(kAuthenticationGroup) + "/v1", ""});
  }

  if ((has_groups || has_extra || has_uid) && !has_user) {
    return api::ApiError::bad_request("requested " + go_dump(requests) +
                                      " without impersonating a user");
  }
  if (requests.empty()) return std::optional<Impersonation>();

  Impersonation result;
  UserInfo& user = result.user;
  for (const Request& request : requests) {
    Attributes check;
    check.user = requester;
    check.verb = "impersonate";
    check.resource_request = true;
    check.name = request.name;
    // kube takes group and version from the reference's apiVersion: core kinds have none.
    if (!request.api_version.empty()) check.api_version = "v1";
    if (request.kind == "ServiceAccount") {
      check.resource = "serviceaccounts";
      check.namespace_name = request.namespace_name;
      user.name = std::string(kServiceAccountPrefix) + request.namespace_name + ":" + request.name;
      // A service account's groups are fixed, unless the request names groups itself.
      if (!has_groups) {
        user.groups = {"system:serviceaccounts",
                       "system:serviceaccounts:" + request.namespace_name};
      }
    } else if (request.kind == "User") {
      check.resource = "users";
      user.name = request.name;
    } else if (request.kind == "Group") {
      check.resource = "groups";
      user.groups.push_back(request.name);
    } else if (request.kind == "UserExtra") {
      check.api_group = kAuthenticationGroup;
      check.resource = "userextras";
      check.subresource = request.field_path;
      user.extra[request.field_path].push_back(request.name);
    } else {  // UID
      check.api_group = kAuthenticationGroup;
      check.resource = "uids";
      user.uid = request.name;
    }
    result.checks.push_back(std::move(check));
  }

  // Groups given are the authority, but an authenticated user is still in system:authenticated
  // (unless the request chose system:unauthenticated); anonymous gets system:unauthenticated.
  if (user.name != kAnonymousUser) {
    if (!user.in_group(kSystemAuthenticated) && !user.in_group(kSystemUnauthenticated)) {
      user.groups.emplace_back(kSystemAuthenticated);
    }
  } else if (!user.in_group(kSystemUnauthenticated)) {
    user.groups.emplace_back(kSystemUnauthenticated);
  }
  return std::optional<Impersonation>(std::move(result));
}

}  // namespace dpa::auth
