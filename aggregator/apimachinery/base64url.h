// Base64 with the URL and filename safe alphabet and no padding (RFC 4648 §5, Go's
// base64.RawURLEncoding): what kube uses for continue tokens and for the WebSocket bearer-token
// subprotocol, both of which travel where '+', '/' and '=' would need escaping.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dpa::api {

std::string base64url_encode(std::string_view bytes);
// nullopt when `text` holds a character outside the alphabet, padding, or an impossible length.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace dpa::api
