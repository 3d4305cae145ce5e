// Go's JSON text rules (encoding/json, and jsoniter's ConfigCompatibleWithStandardLibrary that
// Grafana's frame encoder uses), so that our frame JSON is byte-for-byte what Grafana serves.
#include "aggregator/frames/json_text.h"

#include <charconv>
#include <cmath>
#include <cstdint>

namespace dpa::frames::detail {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence at s[i], or 0 when the byte there starts no valid sequence
// (overlong forms, surrogates and code points above U+10FFFF are invalid, as in Go's utf8).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  const std::size_t left = s.size() - i;
  auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < left && byte(i + k) >= lo && byte(i + k) <= hi;
  };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

// Go's strconv.AppendFloat(v, 'f' or 'e', -1, bits) followed by encoding/json's exponent clean-up
// (e-07 -> e-7). `sci` is std::to_chars' shortest scientific form of the same value.
void append_go_float(std::string& out, std::string_view sci, bool exponent_form) {
  std::size_t pos = 0;
  if (!sci.empty() && sci[0] == '-') {
    out.push_back('-');
    pos = 1;
  }
  const std::size_t e = sci.find('e', pos);
  // to_chars' shortest form has at most 17 significant digits.
  char digit_buf[32];
  std::size_t digit_count = 0;
  for (std::size_t i = pos; i < e && i < sci.size() && digit_count < sizeof digit_buf; ++i) {
    if (sci[i] != '.') digit_buf[digit_count++] = sci[i];
  }
  const std::string_view digits(digit_buf, digit_count);
  int exponent = 0;
  bool negative_exponent = false;
  if (e != std::string_view::npos) {
    std::size_t k = e + 1;
    if (k < sci.size() && (sci[k] == '+' || sci[k] == '-')) negative_exponent = sci[k++] == '-';
    for (; k < sci.size(); ++k) exponent = exponent * 10 + (sci[k] - '0');
    if (negative_exponent) exponent = -exponent;
  }
  if (exponent_form) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits.substr(1));
    }
    out.push_back('e');
    out.push_back(exponent < 0 ? '-' : '+');
    const int magnitude = exponent < 0 ? -exponent : exponent;
    if (magnitude < 10 && exponent >= 0) out.push_back('0');
    out.append(std::to_string(magnitude));
    return;
  }
  const int point = exponent + 1;  // digits before the decimal point
  const int n = static_cast<int>(digits.size());
  if (point <= 0) {
    out.append("0.");
    out.append(static_cast<std::size_t>(-point), '0');
    out.append(digits);
  } else if (point >= n) {
    out.append(digits);
    out.append(static_cast<std::size_t>(point - n), '0');
  } else {
    out.append(digits.substr(0, static_cast<std::size_t>(point)));
    out.push_back('.');
    out.append(digits.substr(static_cast<std::size_t>(point)));
  }
}

}  // namespace

void append_string(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t start = 0;
  auto flush = [&](std::size_t end) { out.append(s.data() + start, end - start); };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
        ++i;
        continue;
      }
      flush(i);
      switch (c) {
        case '"':
          out.append("\\\"");
          break;
        case '\\':
          out.append("\\\\");
          break;
        case '\n':
          out.append("\\n");
          break;
        case '\r':
          out.append("\\r");
          break;
        case '\t':
          out.append("\\t");
          break;
        default:
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
      }
      start = ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      flush(i);
      out.append("\\ufffd");
      start = ++i;
      continue;
    }
    // U+2028 and U+2029 are valid JSON but end lines in JavaScript; Go escapes them.
    if (n == 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xA8) {
      flush(i);
      out.append(static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029");
      i += 3;
      start = i;
      continue;
    }
    i += n;
  }
  flush(s.size());
  out.push_back('"');
}

void append_float64(std::string& out, double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const double abs = std::fabs(v);
  append_go_float(out, std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)),
                  abs != 0 && (abs < 1e-6 || abs >= 1e21));
}

void append_float32(std::string& out, float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const float abs = std::fabs(v);
  append_go_float(out, std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)),
                  abs != 0 && (abs < 1e-6f || abs >= 1e21f));
}

double float32_as_json_double(float v) {
  if (!std::isfinite(v)) return static_cast<double>(v);
  std::string text;
  append_float32(text, v);
  double d = 0;
  std::from_chars(text.data(), text.data() + text.size(), d);
  return d;
}

void append_value(std::string& out, const nlohmann::ordered_json& v) {
  using Type = nlohmann::ordered_json::value_t;
  char buf[32];
  switch (v.type()) {
    case Type::boolean:
      out.append(v.get<bool>() ? "true" : "false");
      return;
    case Type::number_integer: {
      const auto r = std::to_chars(buf, buf + sizeof buf, v.get<std::int64_t>());
      out.append(buf, r.ptr);
      return;
    }
    case Type::number_unsigned: {
      const auto r = std::to_chars(buf, buf + sizeof buf, v.get<std::uint64_t>());
      out.append(buf, r.ptr);
      return;
    }
    case Type::number_float: {
      const double d = v.get<double>();
      if (std::isfinite(d)) {
        append_float64(out, d);
      } else {
        out.append("null");  // FieldConfig min/max: NaN and Inf are written as null
      }
      return;
    }
    case Type::string:
      append_string(out, v.get_ref<const std::string&>());
      return;
    case Type::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v) {
        if (!first) out.push_back(',');
        first = false;
        append_value(out, item);
      }
      out.push_back(']');
      return;
    }
    case Type::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.items()) {
        if (!first) out.push_back(',');
        first = false;
        append_string(out, key);
        out.push_back(':');
        append_value(out, item);
      }
      out.push_back('}');
      return;
    }
    default:
      out.append("null");
  }
}

bool depth_within(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::optional<nlohmann::ordered_json> parse_limited(std::string_view text) {
  if (!depth_within(text, kMaxJsonDepth)) return std::nullopt;
  auto parsed = nlohmann::ordered_json::parse(text.data(), text.data() + text.size(), nullptr,
                                              /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed;
}

}  // namespace dpa::frames::detail

namespace dpa::frames {

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = detail::utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = detail::utf8_sequence_length(s, i);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace dpa::frames
