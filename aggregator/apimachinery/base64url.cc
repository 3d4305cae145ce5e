#include "aggregator/apimachinery/base64url.h"

#include <boost/beast/core/detail/base64.hpp>

namespace dpa::api {

namespace base64 = boost::beast::detail::base64;

std::string base64url_encode(std::string_view bytes) {
  std::string out(base64::encoded_size(bytes.size()), '\0');
  out.resize(base64::encode(out.data(), bytes.data(), bytes.size()));
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  // One leftover character carries 6 bits: never a whole byte.
  if (text.size() % 4 == 1) return std::nullopt;
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
    else if (c == '+' || c == '/' || c == '=') return std::nullopt;
  }
  const std::size_t unpadded = standard.size();
  while (standard.size() % 4 != 0) standard.push_back('=');
  std::string out(base64::decoded_size(standard.size()), '\0');
  auto [written, read] = base64::decode(out.data(), standard.data(), standard.size());
  // `read` stops before the padding; anything shorter means a character outside the alphabet.
  if (read < unpadded) return std::nullopt;
  out.resize(written);
  return out;
}

}  // namespace dpa::api
