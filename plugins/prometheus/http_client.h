// A small blocking HTTP/1.1 GET client (Boost.Beast over its own io_context) for the Prometheus
// plugin. Blocking is fine here: it runs on a gRPC handler thread of the plugin process, never on
// an aggregator I/O thread. Plain http:// only.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace dpa::prometheus {

inline constexpr std::size_t kMaxResponseBytes = 64 * 1024 * 1024;

struct HttpResult {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string error;  // transport failure (status 0); empty = a response arrived
  bool ok() const { return error.empty(); }
};

struct Url {
  std::string scheme;  // "http"
  std::string host;
  std::string port;    // "80" when absent
  std::string path;    // base path without trailing '/', may be empty
};

// Parses http://host[:port][/base]; an error message when it cannot.
std::pair<Url, std::string> parse_url(const std::string& url);

// GET base + target (target starts with '/'). `headers` are sent as given.
HttpResult http_get(const Url& base, const std::string& target,
                    const std::vector<std::pair<std::string, std::string>>& headers,
                    std::chrono::milliseconds timeout);

// Percent-encodes a query parameter value (RFC 3986 unreserved characters kept).
std::string url_encode(const std::string& value);
std::string base64_encode(const std::string& bytes);

}  // namespace dpa::prometheus
