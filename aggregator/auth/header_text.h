// Internal to aggregator/auth: the text rules its sources share (header names, %-escapes, error
// lists), applied the way kube-apiserver's Go libraries (net/http, net/url, utilerrors) apply them,
// so that a key, a name or an error reads the same here as there.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::auth::detail {

// ASCII case-insensitive prefix test (header names such as X-Remote-Extra-*).
bool starts_with_ignoring_case(std::string_view text, std::string_view prefix);

std::string to_lower(std::string_view text);

// Go's url.PathUnescape: every '%' must start a two-digit hex escape, '+' stays '+'.
// nullopt when an escape is malformed.
std::optional<std::string> path_unescape(std::string_view text);

// Go's url.QueryUnescape: as path_unescape, and '+' is a space.
std::optional<std::string> query_unescape(std::string_view text);

// The extra key carried by a header name after its prefix (X-Remote-Extra-, Impersonate-Extra-):
// lower-cased, then %-unescaped; kept as it is (lower-cased) when it does not unescape.
std::string extra_key(std::string_view name_after_prefix);

// kube's error aggregate: one error as it is, several as "[a, b]", each distinct text once.
std::string aggregate_errors(const std::vector<std::string>& errors);

}  // namespace dpa::auth::detail
