// JSON text exactly as Grafana's Go SDK writes it (jsoniter configured like encoding/json):
// HTML-safe string escaping, shortest float formatting with Go's 'f'/'e' switch, and a
// depth-limited parser for JSON that arrives inside untrusted frames. Internal to frames/.
#pragma once

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include "aggregator/frames/utf8.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dpa::frames::detail {

// Deepest nesting accepted in JSON embedded in a frame (meta, config, json.RawMessage cells):
// deeper documents would make recursive serialisers run out of stack.
inline constexpr int kMaxJsonDepth = 256;

// `"..."` with Go's escaping: \" \\ \n \r \t, other controls and < > & as \u00XX, U+2028/U+2029
// escaped, each invalid UTF-8 byte replaced by U+FFFD.
void append_string(std::string& out, std::string_view s);

// A float as Go's JSON encoder prints it (shortest round-trip digits, exponent form only below
// 1e-6 or from 1e21 on). NaN and infinities are not JSON: callers write null for them.
void append_float64(std::string& out, double v);
void append_float32(std::string& out, float v);

// Any JSON value, compact, with the string and number rules above. Object keys keep their order.
void append_value(std::string& out, const nlohmann::ordered_json& v);

// double -> float32 with IEEE round-to-nearest but without undefined behaviour: a plain cast of
// a finite value beyond float's range is UB, so those are rounded here, to FLT_MAX up to half an
// ulp past it (how 3.4028235e+38, Go's spelling of FLT_MAX, parses) and to infinity beyond.
inline float to_float32(double v) {
  constexpr double kMax = std::numeric_limits<float>::max();
  constexpr double kHalfUlpPastMax = kMax + 0x1p103;
  const double magnitude = std::fabs(v);
  if (std::isfinite(v) && magnitude > kMax) {
    const float rounded = magnitude < kHalfUlpPastMax ? std::numeric_limits<float>::max()
                                                       : std::numeric_limits<float>::infinity();
    return v > 0 ? rounded : -rounded;
  }
  return static_cast<float>(v);
}

// The double a JSON reader gets back from append_float32's text (e.g. 3.4028235e+38).
double float32_as_json_double(float v);

using frames::is_valid_utf8;
using frames::to_valid_utf8;

// True when `text` nests arrays/objects at most `max_depth` deep (strings are skipped).
bool depth_within(std::string_view text, int max_depth);

// Parses untrusted JSON text; nullopt when it is invalid or nested deeper than kMaxJsonDepth.
std::optional<nlohmann::ordered_json> parse_limited(std::string_view text);

// True when `v` nests at most `max_depth` deep (iterative, safe on any input).
template <class Json>
bool value_depth_within(const Json& v, int max_depth) {
  std::vector<std::pair<const Json*, int>> stack{{&v, 0}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    if (depth + 1 > max_depth) return false;
    for (const auto& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return true;
}

}  // namespace dpa::frames::detail
