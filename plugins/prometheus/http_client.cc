#include "plugins/prometheus/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace dpa::prometheus {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

}  // namespace

std::pair<Url, std::string> parse_url(const std::string& url) {
  Url out;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return {out, "URL has no scheme: " + url};
  out.scheme = url.substr(0, scheme_end);
  std::transform(out.scheme.begin(), out.scheme.end(), out.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (out.scheme != "http") return {out, "only http:// URLs are supported: " + url};
  const std::string rest = url.substr(scheme_end + 3);
  const auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) out.path = rest.substr(slash);
  if (const auto q = out.path.find_first_of("?#"); q != std::string::npos) out.path.resize(q);
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  if (const auto at = authority.rfind('@'); at != std::string::npos) authority.erase(0, at + 1);
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    const auto close = authority.find(']');
    if (close == std::string::npos) return {out, "bad IPv6 host in URL: " + url};
    out.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      out.port = authority.substr(close + 2);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
    out.host = authority.substr(0, colon);
    out.port = authority.substr(colon + 1);
  } else {
    out.host = authority;
  }
  if (out.port.empty()) out.port = "80";
  if (out.host.empty()) return {out, "URL has no host: " + url};
  if (!std::all_of(out.port.begin(), out.port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return {out, "bad port in URL: " + url};
  }
  return {out, ""};
}

HttpResult http_get(const Url& base, const std::string& target,
                    const std::vector<std::pair<std::string, std::string>>& headers,
                    std::chrono::milliseconds timeout) {
  HttpResult result;
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);

  http::request<http::empty_body> request{http::verb::get, base.path + target, 11};
  const bool default_port = base.port == "80";
  const std::string host = base.host.find(':') != std::string::npos ? "[" + base.host + "]" : base.host;
  request.set(http::field::host, default_port ? host : host + ":" + base.port);
  request.set(http::field::user_agent, "dataplane-aggregator-prometheus-plugin");
  request.set(http::field::accept, "application/json");
  request.set(http::field::connection, "close");
  for (const auto& [name, value] : headers) request.set(name, value);

  bool done = false;
  auto fail = [&](const beast::error_code& ec, const std::string& what) {
    result.error = what + ": " + ec.message();
    done = true;
  };

  stream.expires_after(timeout);
  resolver.async_resolve(base.host, base.port, [&](beast::error_code ec,
                                                    tcp::resolver::results_type endpoints) {
    if (ec) return fail(ec, "resolve " + base.host);
    stream.async_connect(endpoints, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return fail(ec, "connect");
      http::async_write(stream, request, [&](beast::error_code ec, std::size_t) {
        if (ec) return fail(ec, "write");
        http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
          if (ec) return fail(ec, "read");
          auto& response = parser.get();
          result.status = static_cast<int>(response.result_int());
          result.content_type = std::string(response[http::field::content_type]);
          result.body = std::move(response.body());
          done = true;
          beast::error_code ignored;
          stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        });
      });
    });
  });
  // The resolver is not covered by the stream's expiry; bound the whole exchange here.
  ioc.run_for(timeout + std::chrono::milliseconds(100));
  if (!done) result.error = "timeout after " + std::to_string(timeout.count()) + " ms";
  return result;
}

std::string url_encode(const std::string& value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size() * 3);
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string base64_encode(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace dpa::prometheus
