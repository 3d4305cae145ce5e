// The identity the aggregator vouches for toward the delegate (reference anchors §1.5), and the
// request headers that must not reach it.
#include "aggregator/auth/auth.h"

#include "aggregator/auth/header_text.h"
#include "aggregator/http/wire.h"

namespace dpa::auth {
namespace {

constexpr std::string_view kRemoteExtraPrefix = "X-Remote-Extra-";

// RFC 9110 token characters, the only ones a header field name may hold.
bool is_token_character(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// client-go's headerKeyEscape: an extra key may hold any byte ("acme.com/project"), a header name
// may not. '%' is escaped too, so the receiver's %-unescaping gives back exactly the key.
std::string escape_extra_key(std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : key) {
    auto c = static_cast<unsigned char>(ch);
    if (is_token_character(c) && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

// A value with CR, LF or NUL would end the header line early and let its rest be read as headers
// of the aggregator's choosing: such a value is dropped, never cleaned up into something else.
bool is_safe_value(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

void append_if_safe(std::string& head, std::string_view name, std::string_view value) {
  if (is_safe_value(value)) http::append_header(head, name, value);
}

}  // namespace

bool is_remote_identity_header(std::string_view name) {
  return http::iequals(name, "X-Remote-User") || http::iequals(name, "X-Remote-Uid") ||
         http::iequals(name, "X-Remote-Group") ||
         detail::starts_with_ignoring_case(name, kRemoteExtraPrefix);
}

bool is_client_credential_header(std::string_view name) {
  return http::iequals(name, "Authorization") || http::iequals(name, "Impersonate-User") ||
         http::iequals(name, "Impersonate-Group") || http::iequals(name, "Impersonate-Uid") ||
         detail::starts_with_ignoring_case(name, "Impersonate-Extra-");
}

void append_identity_headers(std::string& head, const UserInfo& user) {
  append_if_safe(head, "X-Remote-User", user.name);
  if (!user.uid.empty()) append_if_safe(head, "X-Remote-Uid", user.uid);
  for (const auto& group : user.groups) append_if_safe(head, "X-Remote-Group", group);
  for (const auto& [key, values] : user.extra) {
    const std::string name = std::string(kRemoteExtraPrefix) + escape_extra_key(key);
    for (const auto& value : values) append_if_safe(head, name, value);
  }
}

}  // namespace dpa::auth
