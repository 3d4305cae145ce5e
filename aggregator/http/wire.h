// HTTP/1.1 wire helpers shared by the server session, the client and the delegate proxy: status
// reason phrases, a cached Date header, response-head serialisation and the hop-by-hop header
// rules of RFC 9110 §7.6.1 (the proxy drops them in both directions).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dpa::http {

// "OK", "Not Found", ...; "Unknown" for codes Beast does not know.
std::string_view reason_phrase(int status);

// Appends the IMF-fixdate for now ("Sun, 06 Nov 1994 08:49:37 GMT"), cached per second per thread.
void append_http_date(std::string& out);

// ASCII case-insensitive equality (header names, tokens).
bool iequals(std::string_view a, std::string_view b);

// Whether `list` (a comma-separated header value such as Connection's) contains `token`.
bool header_list_contains(std::string_view list, std::string_view token);

// Hop-by-hop headers a proxy never forwards: Connection, Keep-Alive, Proxy-*, TE, Trailer,
// Transfer-Encoding, Upgrade. Headers named in the message's Connection value are hop-by-hop too
// and are checked with header_list_contains by the caller.
bool is_hop_by_hop(std::string_view name);

// Percent-decodes URL text leniently: "%xx" with two hex digits becomes that byte, anything else
// (a lone '%', a bad escape) stays as written; with plus_is_space, '+' is a space (query strings).
// The one decoder of the process, so that authorization, routing and handlers read a path alike.
std::string percent_decode(std::string_view text, bool plus_is_space = false);

// The address part of a peer written "ip:port" or "[v6]:port" (Exchange::remote_address),
// without brackets: what X-Forwarded-For carries.
std::string_view address_of(std::string_view remote);

// Appends "HTTP/1.1 <status> <reason>\r\n" plus the headers (each "Name: value\r\n"), without the
// blank line that ends the head.
void append_status_line(std::string& out, int status);
void append_header(std::string& out, std::string_view name, std::string_view value);

// Appends the lower-case hexadecimal form of n (chunk sizes).
void append_hex(std::string& out, std::uint64_t n);

}  // namespace dpa::http
