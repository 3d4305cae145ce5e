// What the authn/authz stage reads of every request: the request line as kube's RequestInfo
// (path segments, watch and fieldSelector in the query), the Authorization header as a bearer
// token, Impersonate-* headers, and the identity headers written for the delegate from them.
// Input: method, target and header lines separated by '\n' ("Name: value").
#include "aggregator/auth/auth.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto line = [&text]() {
    std::size_t nl = text.find('\n');
    std::string_view out = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    return out;
  };
  std::string_view method = line();
  std::string_view target = line();
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view query =
      target.find('?') == std::string_view::npos ? std::string_view() : target.substr(target.find('?') + 1);
  auth::Attributes attributes = auth::request_attributes(method, path, query);

  http::Header header;
  while (!text.empty()) {
    std::string_view field = line();
    std::size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view value = field.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    const std::string_view name = field.substr(0, colon);
    // Beast refuses names and values an HTTP parser would never hand over.
    bool valid = true;
    for (char c : name) valid = valid && c > 32 && c < 127 && c != ':';
    for (char c : value) valid = valid && c != '\r' && c != '\n' && c != '\0';
    if (valid) header.insert(name, value);
  }
  std::string warning;
  (void)auth::bearer_token(header, &warning);
  auth::UserInfo requester{"alice", "1", {"dev"}, {{"scopes", {"a%2Fb"}}}};
  if (auto impersonation = auth::parse_impersonation(header, requester)) {
    if (*impersonation) {
      std::string out;
      auth::append_identity_headers(out, (*impersonation)->user);
      for (const auto& check : (*impersonation)->checks) (void)auth::forbidden(check, "reason");
    }
  }
  attributes.user = requester;
  (void)auth::forbidden(attributes, "");
  return 0;
}
