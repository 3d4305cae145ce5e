#include "aggregator/apimachinery/selectors.h"

#include <algorithm>
#include <cctype>

namespace dpa::api {
namespace {

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// A qualified name segment: <= 63 chars, [A-Za-z0-9_.-], starting and ending alphanumeric.
bool valid_name_part(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!is_alnum(s.front()) || !is_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// DNS-1123 subdomain: lower-case alphanumerics, '-' and '.', <= 253.
bool valid_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!lower_alnum(label.front()) || !lower_alnum(label.back())) return false;
    for (char c : label) {
      if (!lower_alnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

bool valid_label_key(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return valid_name_part(key);
  return valid_dns_subdomain(key.substr(0, slash)) && valid_name_part(key.substr(slash + 1));
}

bool valid_label_value(std::string_view v) { return v.empty() || valid_name_part(v); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

ApiError parse_error(const std::string& detail) {
  return ApiError::bad_request("unable to parse requirement: " + detail);
}

// Splits on commas that are not inside parentheses.
Expected<std::vector<std::string_view>> split_top_level(std::string_view text) {
  std::vector<std::string_view> parts;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '(') {
      if (++depth > 1) return parse_error("nested parentheses in \"" + std::string(text) + "\"");
    } else if (text[i] == ')') {
      if (--depth < 0) return parse_error("unbalanced parentheses in \"" + std::string(text) + "\"");
    } else if (text[i] == ',' && depth == 0) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) return parse_error("unbalanced parentheses in \"" + std::string(text) + "\"");
  parts.push_back(text.substr(start));
  return parts;
}

Expected<LabelSelector::Requirement> parse_requirement(std::string_view raw) {
  using Op = LabelSelector::Op;
  std::string_view s = trim(raw);
  LabelSelector::Requirement r;
  if (s.empty()) return parse_error("found '', expected: identifier");
  auto check_key = [&](std::string_view key) -> Outcome {
    if (!valid_label_key(key)) {
      return parse_error("key: Invalid value: \"" + std::string(key) +
                         "\": name part must consist of alphanumeric characters, '-', '_' or '.', "
                         "and must start and end with an alphanumeric character");
    }
    return Ok{};
  };
  auto check_value = [&](std::string_view v) -> Outcome {
    if (!valid_label_value(v)) {
      return parse_error("values[0]: Invalid value: \"" + std::string(v) +
                         "\": a valid label must be an empty string or consist of alphanumeric "
                         "characters, '-', '_' or '.', and must start and end with an "
                         "alphanumeric character");
    }
    return Ok{};
  };
  if (s.front() == '!') {
    std::string_view key = trim(s.substr(1));
    if (auto ok = check_key(key); !ok) return ok.error();
    r.key = key;
    r.op = Op::kDoesNotExist;
    return r;
  }
  // Set-based: key in (a,b) / key notin (a,b).
  auto paren = s.find('(');
  if (paren != std::string_view::npos) {
    std::string_view head = trim(s.substr(0, paren));
    if (s.back() != ')') return parse_error("expected ')' at the end of \"" + std::string(s) + "\"");
    std::string_view inner = s.substr(paren + 1, s.size() - paren - 2);
    auto space = head.find_last_of(" \t");
    if (space == std::string_view::npos) {
      return parse_error("found '(', expected: in, notin, =, ==, != in \"" + std::string(s) + "\"");
    }
    std::string_view key = trim(head.substr(0, space));
    std::string_view op = trim(head.substr(space + 1));
    if (op == "in") {
      r.op = Op::kIn;
    } else if (op == "notin") {
      r.op = Op::kNotIn;
    } else {
      return parse_error("found '" + std::string(op) + "', expected: in, notin");
    }
    if (auto ok = check_key(key); !ok) return ok.error();
    r.key = key;
    std::size_t start = 0;
    while (true) {
      auto comma = inner.find(',', start);
      std::string_view v = trim(inner.substr(start, comma == inner.npos ? inner.npos : comma - start));
      if (auto ok = check_value(v); !ok) return ok.error();
      r.values.emplace_back(v);
      if (comma == inner.npos) break;
      start = comma + 1;
    }
    std::sort(r.values.begin(), r.values.end());
    return r;
  }
  // Equality: !=, ==, =.
  std::size_t pos;
  std::size_t op_len;
  if ((pos = s.find("!=")) != s.npos) {
    r.op = Op::kNotEquals;
    op_len = 2;
  } else if ((pos = s.find("==")) != s.npos) {
    r.op = Op::kEquals;
    op_len = 2;
  } else if ((pos = s.find('=')) != s.npos) {
    r.op = Op::kEquals;
    op_len = 1;
  } else {
    // A bare key: exists. Whitespace inside means an unknown operator.
    if (s.find_first_of(" \t") != s.npos) {
      return parse_error("found '" + std::string(s) + "', expected: in, notin, =, ==, !=");
    }
    if (auto ok = check_key(s); !ok) return ok.error();
    r.key = s;
    r.op = Op::kExists;
    return r;
  }
  std::string_view key = trim(s.substr(0, pos));
  std::string_view value = trim(s.substr(pos + op_len));
  if (value.find_first_of("=!") != value.npos) {
    return parse_error("found '" + std::string(value) + "', expected: identifier");
  }
  if (auto ok = check_key(key); !ok) return ok.error();
  if (auto ok = check_value(value); !ok) return ok.error();
  r.key = key;
  r.values.emplace_back(value);
  return r;
}

}  // namespace

Expected<LabelSelector> LabelSelector::parse(std::string_view text) {
  LabelSelector selector;
  if (trim(text).empty()) return selector;
  auto parts = split_top_level(text);
  if (!parts) return parts.error();
  for (std::string_view part : *parts) {
    auto r = parse_requirement(part);
    if (!r) return r.error();
    selector.requirements_.push_back(std::move(*r));
  }
  return selector;
}

Attributes Attributes::of(const nlohmann::json& object) {
  Attributes attributes;
  if (!object.is_object()) return attributes;
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return attributes;
  auto text = [&](const char* field) {
    auto it = meta->find(field);
    return it != meta->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  attributes.name = text("name");
  attributes.namespace_ = text("namespace");
  if (auto labels = meta->find("labels"); labels != meta->end() && labels->is_object()) {
    // nlohmann's objects iterate in key order, so the pairs come out sorted.
    for (const auto& [key, value] : labels->items()) {
      if (value.is_string()) attributes.labels.emplace_back(key, value.get<std::string>());
    }
  }
  return attributes;
}

const std::string* Attributes::label(std::string_view key) const {
  auto it = std::lower_bound(labels.begin(), labels.end(), key,
                             [](const auto& label, std::string_view k) { return label.first < k; });
  return it != labels.end() && it->first == key ? &it->second : nullptr;
}

bool LabelSelector::matches(const Attributes& object) const {
  for (const Requirement& r : requirements_) {
    const std::string* value = object.label(r.key);
    auto in_values = [&]() {
      return value && std::find(r.values.begin(), r.values.end(), *value) != r.values.end();
    };
    switch (r.op) {
      case Op::kEquals:
      case Op::kIn:
        if (!in_values()) return false;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        // Absent keys satisfy != and notin, as in Kubernetes.
        if (in_values()) return false;
        break;
      case Op::kExists:
        if (!value) return false;
        break;
      case Op::kDoesNotExist:
        if (value) return false;
        break;
    }
  }
  return true;
}

namespace {

// A field selector value, unescaped as kube's fields.UnescapeValue does: `\\`, `\,` and `\=` are
// the only escapes, and an unescaped `=`, `!` or `,` is an error (so `metadata.name===` is
// refused instead of matching the name "=").
Expected<std::string> unescape_field_value(std::string_view selector, std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '\\') {
      if (i + 1 >= raw.size() || (raw[i + 1] != '\\' && raw[i + 1] != ',' && raw[i + 1] != '=')) {
        return ApiError::bad_request("invalid field selector: '" + std::string(selector) +
                                     "': invalid escape sequence");
      }
      out.push_back(raw[++i]);
    } else if (c == '=' || c == '!' || c == ',') {
      return ApiError::bad_request("invalid field selector: '" + std::string(selector) +
                                   "': unescaped '" + std::string(1, c) + "' in a value");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Splits on commas that are not escaped with a backslash.
std::vector<std::string_view> split_field_terms(std::string_view text) {
  std::vector<std::string_view> terms;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == ',') {
      terms.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(text.substr(start));
  return terms;
}

}  // namespace

Expected<FieldSelector> FieldSelector::parse(std::string_view text) {
  FieldSelector selector;
  if (trim(text).empty()) return selector;
  for (std::string_view raw_term : split_field_terms(text)) {
    std::string_view term = trim(raw_term);
    Requirement r;
    std::size_t pos;
    std::size_t op_len;
    if ((pos = term.find("!=")) != term.npos) {
      r.equals = false;
      op_len = 2;
    } else if ((pos = term.find("==")) != term.npos) {
      op_len = 2;
    } else if ((pos = term.find('=')) != term.npos) {
      op_len = 1;
    } else {
      return ApiError::bad_request("invalid selector: '" + std::string(text) +
                                   "'; can't understand '" + std::string(term) + "'");
    }
    r.field = std::string(trim(term.substr(0, pos)));
    auto value = unescape_field_value(text, trim(term.substr(pos + op_len)));
    if (!value) return value.error();
    r.value = std::move(*value);
    if (r.field != "metadata.name" && r.field != "metadata.namespace") {
      return ApiError::bad_request("field label not supported: " + r.field);
    }
    selector.requirements_.push_back(std::move(r));
  }
  return selector;
}

bool FieldSelector::matches(const Attributes& object) const {
  for (const Requirement& r : requirements_) {
    const std::string& actual = r.field == "metadata.name" ? object.name : object.namespace_;
    if ((actual == r.value) != r.equals) return false;
  }
  return true;
}

}  // namespace dpa::api
