#include "aggregator/plugin/handshake.h"

#include <arpa/inet.h>

#include <charconv>
#include <vector>

namespace dpa::plugin {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' ||
                        s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

bool parse_int(std::string_view s, int& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

// Plugins can print anything; keep the quoted line short enough for a status message.
std::string quote(std::string_view line) {
  constexpr std::size_t kMaxQuoted = 200;
  std::string q = "\"";
  q.append(line.substr(0, kMaxQuoted));
  if (line.size() > kMaxQuoted) q.append("...");
  q.append("\"");
  return q;
}

api::ApiError bad(std::string_view line, const std::string& why) {
  return api::ApiError::bad_gateway("plugin handshake failed: " + why + " in line " + quote(line));
}

}  // namespace

api::Expected<Handshake> parse_handshake(std::string_view raw) {
  std::string_view line = trim(raw);
  auto parts = split(line, '|');
  if (parts.size() < 4) return bad(line, "unrecognized remote plugin message (fewer than 4 parts)");
  Handshake h;
  if (!parse_int(parts[0], h.core_version)) return bad(line, "core protocol version is not a number");
  if (h.core_version != kCoreProtocolVersion) {
    return bad(line, "incompatible core API version " + std::string(parts[0]) + " (want 1)");
  }
  if (!parse_int(parts[1], h.app_version)) return bad(line, "app protocol version is not a number");
  if (h.app_version != kAppProtocolVersion) {
    return bad(line, "unsupported plugin protocol version " + std::string(parts[1]) + " (want 2)");
  }
  h.network = std::string(parts[2]);
  if (h.network != "unix" && h.network != "tcp") {
    return bad(line, "unsupported network type \"" + h.network + "\"");
  }
  h.address = std::string(parts[3]);
  if (h.address.empty()) return bad(line, "empty network address");
  // go-plugin defaults a missing protocol to netrpc, which Grafana (and we) refuse.
  h.protocol = parts.size() > 4 ? std::string(parts[4]) : std::string("netrpc");
  if (h.protocol != "grpc") return bad(line, "unsupported protocol \"" + h.protocol + "\" (want grpc)");
  return h;
}

std::string grpc_target(const std::string& network, const std::string& address) {
  if (network == "unix") return "unix:" + address;
  // tcp: host:port, [v6]:port
  if (!address.empty() && address.front() == '[') return "ipv6:" + address;
  auto colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return "ipv4:" + address;
  return "dns:///" + address;
}

}  // namespace dpa::plugin
