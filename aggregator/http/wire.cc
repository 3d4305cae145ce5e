#include "aggregator/http/wire.h"

#include "aggregator/http/exchange.h"

#include <boost/beast/http/status.hpp>

#include <ctime>

namespace dpa::http {

std::string_view reason_phrase(int status) {
  auto reason = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  return reason.empty() ? std::string_view("Unknown") : std::string_view(reason.data(), reason.size());
}

void append_http_date(std::string& out) {
  // Formatting a date costs a few hundred nanoseconds; requests arrive far more often than once a
  // second, so each thread keeps the last formatted value.
  thread_local std::time_t cached_second = 0;
  thread_local char cached[40] = {0};
  thread_local std::size_t cached_len = 0;
  std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    cached_len = std::strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_second = now;
  }
  out.append(cached, cached_len);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool header_list_contains(std::string_view list, std::string_view token) {
  std::size_t pos = 0;
  while (pos <= list.size()) {
    std::size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view item = list.substr(pos, comma - pos);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    pos = comma + 1;
  }
  return false;
}

bool is_websocket_upgrade(const Header& header) {
  namespace bh = boost::beast::http;
  if (header.method() != bh::verb::get) return false;
  const auto connection = header.find(bh::field::connection);
  const auto upgrade = header.find(bh::field::upgrade);
  if (connection == header.end() || upgrade == header.end()) return false;
  return header_list_contains(connection->value(), "upgrade") &&
         header_list_contains(upgrade->value(), "websocket");
}

std::string percent_decode(std::string_view text, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int hi = text[i] == '%' && i + 2 < text.size() ? hex(text[i + 1]) : -1;
    const int lo = hi >= 0 ? hex(text[i + 2]) : -1;
    if (lo >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (plus_is_space && text[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string_view address_of(std::string_view remote) {
  if (!remote.empty() && remote.front() == '[') {
    std::size_t close = remote.find(']');
    return close == std::string_view::npos ? remote : remote.substr(1, close - 1);
  }
  std::size_t colon = remote.rfind(':');
  return colon == std::string_view::npos ? remote : remote.substr(0, colon);
}

bool is_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2: return iequals(name, "te");
    case 7: return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16: return iequals(name, "proxy-connection");
    case 17: return iequals(name, "transfer-encoding");
    default: break;
  }
  return name.size() > 6 && iequals(name.substr(0, 6), "proxy-");
}

void append_status_line(std::string& out, int status) {
  out.append("HTTP/1.1 ");
  char code[4] = {static_cast<char>('0' + (status / 100) % 10),
                  static_cast<char>('0' + (status / 10) % 10), static_cast<char>('0' + status % 10),
                  ' '};
  out.append(code, 4);
  out.append(reason_phrase(status));
  out.append("\r\n");
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

void append_hex(std::string& out, std::uint64_t n) {
  char buf[17];
  int i = 16;
  do {
    buf[--i] = "0123456789abcdef"[n & 0xf];
    n >>= 4;
  } while (n != 0);
  out.append(buf + i, static_cast<std::size_t>(16 - i));
}

}  // namespace dpa::http
