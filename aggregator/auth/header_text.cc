#include "aggregator/auth/header_text.h"

#include "aggregator/http/wire.h"

#include <algorithm>

namespace dpa::auth::detail {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> unescape(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_value(text[i + 1]);
      int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && http::iequals(text.substr(0, prefix.size()), prefix);
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<std::string> path_unescape(std::string_view text) {
  return unescape(text, false);
}

std::optional<std::string> query_unescape(std::string_view text) {
  return unescape(text, true);
}

std::string extra_key(std::string_view name_after_prefix) {
  std::string lowered = to_lower(name_after_prefix);
  std::optional<std::string> key = path_unescape(lowered);
  return key ? std::move(*key) : lowered;
}

std::string aggregate_errors(const std::vector<std::string>& errors) {
  std::vector<std::string> distinct;
  for (const auto& error : errors) {
    if (std::find(distinct.begin(), distinct.end(), error) == distinct.end()) {
      distinct.push_back(error);
    }
  }
  if (distinct.size() == 1) return distinct.front();
  std::string out = "[";
  for (std::size_t i = 0; i < distinct.size(); ++i) {
    if (i > 0) out += ", ";
    out += distinct[i];
  }
  return out + "]";
}

}  // namespace dpa::auth::detail
