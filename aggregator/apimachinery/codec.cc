#include "aggregator/apimachinery/codec.h"

#include "aggregator/frames/utf8.h"

#include <yaml-cpp/yaml.h>
#include <yaml.h>

#include <cctype>
#include <map>
#include <cerrno>
#include <cstdlib>

namespace dpa::api {
namespace {

// YAML 1.2 core schema resolution for plain scalars (what sigs.k8s.io/yaml produces for JSON
// targets in practice: true/false, null, integers and floats; everything else is a string).
bool is_null_scalar(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}
bool is_bool_scalar(const std::string& s, bool* out) {
  if (s == "true" || s == "True" || s == "TRUE") {
    *out = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    *out = false;
    return true;
  }
  return false;
}
// The core schema's number patterns, scanned by hand: libstdc++'s std::regex matches recursively,
// a few stack frames per character, and a plain scalar of 60,000 digits in a provisioning file or
// a YAML request body overflowed the stack (found with fuzz_provisioning).
std::size_t skip_digits(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  s.remove_prefix(n);
  return n;
}
// [-+]?[0-9]+
bool is_int_scalar(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return skip_digits(s) > 0 && s.empty();
}
// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_float_scalar(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  const std::size_t int_digits = skip_digits(s);
  std::size_t frac_digits = 0;
  if (!s.empty() && s[0] == '.') {
    s.remove_prefix(1);
    frac_digits = skip_digits(s);
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (!s.empty() && (s[0] == 'e' || s[0] == 'E')) {
    s.remove_prefix(1);
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
    if (skip_digits(s) == 0) return false;
  }
  return s.empty();
}

// What decoding one document may produce. An alias names a node without repeating it, so a few
// hundred bytes of nested aliases describe billions of nodes ("billion laughs"); expanding them
// is bounded by counting every node and scalar byte produced against a budget proportional to
// the input, as go-yaml (and so kube-apiserver) refuses "excessive aliasing".
struct DecodeBudget {
  std::size_t nodes;
  std::size_t bytes;

  static DecodeBudget for_input(std::size_t input_bytes) {
    // Without aliases a document cannot produce more nodes or scalar bytes than it has bytes;
    // modest reuse of anchors stays well inside four times that.
    return {4 * input_bytes + 1000, 4 * input_bytes + 64 * 1024};
  }
  bool spend(std::size_t scalar_bytes) {
    if (nodes == 0 || scalar_bytes > bytes) return false;
    --nodes;
    bytes -= scalar_bytes;
    return true;
  }
};

// What went wrong, for decode_yaml's caller to put in context.
ApiError yaml_problem(std::string what) { return ApiError::bad_request(std::move(what)); }

ApiError excessive_aliasing() { return yaml_problem("document contains excessive aliasing"); }

// A scalar as sigs.k8s.io/yaml types it: quoted or explicitly tagged scalars are strings, plain
// ones are resolved by the core schema (or, as text, only null is).
nlohmann::json scalar_to_json(const yaml_event_t& event, YamlScalars scalars) {
  const std::string s(reinterpret_cast<const char*>(event.data.scalar.value), event.data.scalar.length);
  if (!event.data.scalar.plain_implicit || event.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
    return nlohmann::json(s);
  }
  bool b = false;
  if (is_null_scalar(s)) return nlohmann::json(nullptr);
  if (scalars == YamlScalars::kText) return nlohmann::json(s);
  if (is_bool_scalar(s, &b)) return nlohmann::json(b);
  if (is_int_scalar(s)) {
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno == 0) return nlohmann::json(static_cast<int64_t>(v));
    return nlohmann::json(std::strtod(s.c_str(), nullptr));
  }
  if (is_float_scalar(s)) return nlohmann::json(std::strtod(s.c_str(), nullptr));
  return nlohmann::json(s);
}

// YAML -> JSON over libyaml's event parser (the C library behind PyYAML): a state machine
// without recursion, fuzzed for years, where yaml-cpp 0.7 loops for ever on some malformed
// inputs (found by fuzz_body_decode). Aliases are expanded against the decode budget.
class YamlDecoder {
 public:
  YamlDecoder(std::string_view text, DecodeBudget budget, YamlScalars scalars)
      : budget_(budget), scalars_(scalars) {
    yaml_parser_initialize(&parser_);
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
  }
  ~YamlDecoder() { yaml_parser_delete(&parser_); }
  YamlDecoder(const YamlDecoder&) = delete;
  YamlDecoder& operator=(const YamlDecoder&) = delete;

  // The non-empty documents of the stream, up to `max` of them.
  Expected<std::vector<nlohmann::json>> documents(std::size_t max) {
    std::vector<nlohmann::json> docs;
    for (;;) {
      Event event;
      if (auto ok = next(event); !ok) return ok.error();
      if (event.e.type == YAML_STREAM_END_EVENT) return docs;
      if (event.e.type != YAML_DOCUMENT_START_EVENT) continue;  // stream start
      anchors_.clear();
      Event root;
      if (auto ok = next(root); !ok) return ok.error();
      auto value = node(root, 0);
      if (!value) return value.error();
      Event end;
      if (auto ok = next(end); !ok) return ok.error();
      if (!value->is_null()) docs.push_back(std::move(*value));
      if (docs.size() >= max) return docs;
    }
  }

 private:
  struct Event {
    yaml_event_t e{};
    bool set = false;
    ~Event() {
      if (set) yaml_event_delete(&e);
    }
  };
  struct Anchored {
    nlohmann::json value;
    std::size_t nodes = 0, bytes = 0;  // what expanding it costs
  };

  Outcome next(Event& event) {
    if (!yaml_parser_parse(&parser_, &event.e)) {
      const std::string problem = parser_.problem ? parser_.problem : "invalid YAML";
      return yaml_problem("line " + std::to_string(parser_.problem_mark.line + 1) + ": " + problem);
    }
    event.set = true;
    return Ok{};
  }

  void remember(const yaml_char_t* anchor, const nlohmann::json& value, std::size_t nodes,
                std::size_t bytes) {
    if (anchor) anchors_[reinterpret_cast<const char*>(anchor)] = {value, nodes, bytes};
  }

  Expected<nlohmann::json> node(const Event& event, int depth) {
    if (depth > 100) return yaml_problem("exceeded max depth of 100");
    const std::size_t nodes_before = budget_.nodes, bytes_before = budget_.bytes;
    auto spent = [&] { return std::pair{nodes_before - budget_.nodes, bytes_before - budget_.bytes}; };
    switch (event.e.type) {
      case YAML_ALIAS_EVENT: {
        auto it = anchors_.find(reinterpret_cast<const char*>(event.e.data.alias.anchor));
        if (it == anchors_.end()) return yaml_problem("unknown anchor referenced");
        // An alias costs what it expands to: nested aliases cannot multiply past the budget.
        if (it->second.nodes > budget_.nodes || it->second.bytes > budget_.bytes) {
          return excessive_aliasing();
        }
        budget_.nodes -= it->second.nodes;
        budget_.bytes -= it->second.bytes;
        return it->second.value;
      }
      case YAML_SCALAR_EVENT: {
        if (!budget_.spend(event.e.data.scalar.length)) return excessive_aliasing();
        nlohmann::json value = scalar_to_json(event.e, scalars_);
        auto [n, b] = spent();
        remember(event.e.data.scalar.anchor, value, n, b);
        return value;
      }
      case YAML_SEQUENCE_START_EVENT: {
        if (!budget_.spend(0)) return excessive_aliasing();
        nlohmann::json array = nlohmann::json::array();
        for (;;) {
          Event item;
          if (auto ok = next(item); !ok) return ok.error();
          if (item.e.type == YAML_SEQUENCE_END_EVENT) break;
          auto value = node(item, depth + 1);
          if (!value) return value;
          array.push_back(std::move(*value));
        }
        auto [n, b] = spent();
        remember(event.e.data.sequence_start.anchor, array, n, b);
        return array;
      }
      case YAML_MAPPING_START_EVENT: {
        if (!budget_.spend(0)) return excessive_aliasing();
        nlohmann::json object = nlohmann::json::object();
        for (;;) {
          Event key;
          if (auto ok = next(key); !ok) return ok.error();
          if (key.e.type == YAML_MAPPING_END_EVENT) break;
          if (key.e.type != YAML_SCALAR_EVENT) return yaml_problem("map keys must be strings");
          std::string name(reinterpret_cast<const char*>(key.e.data.scalar.value), key.e.data.scalar.length);
          if (!budget_.spend(name.size())) return excessive_aliasing();
          if (object.contains(name)) {
            return yaml_problem("duplicate map key \"" + name + "\"");
          }
          Event value_event;
          if (auto ok = next(value_event); !ok) return ok.error();
          auto value = node(value_event, depth + 1);
          if (!value) return value;
          object[name] = std::move(*value);
        }
        auto [n, b] = spent();
        remember(event.e.data.mapping_start.anchor, object, n, b);
        return object;
      }
      default:
        return yaml_problem("unexpected event");
    }
  }

  yaml_parser_t parser_;
  DecodeBudget budget_;
  const YamlScalars scalars_;
  std::map<std::string, Anchored> anchors_;
};

bool looks_like_json(std::string_view body) {
  for (char c : body) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    return c == '{' || c == '[';
  }
  return false;
}

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  bool b = false;
  if (is_null_scalar(s) || is_bool_scalar(s, &b) || is_int_scalar(s) || is_float_scalar(s)) {
    return true;
  }
  // YAML 1.1 readers (go-yaml v2, PyYAML) also take these as booleans.
  static const char* kYaml11[] = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                                  "on", "On", "ON", "off", "Off", "OFF"};
  for (const char* k : kYaml11) {
    if (s == k) return true;
  }
  return false;
}

void emit_key(YAML::Emitter& out, const std::string& key) {
  out << YAML::Key;
  if (needs_quotes(key)) {
    out << YAML::DoubleQuoted << key;
  } else {
    out << key;
  }
  out << YAML::Value;
}

void emit(YAML::Emitter& out, const nlohmann::json& v);

// A sequence of `count` items made by `item(i)`.
void emit_seq(YAML::Emitter& out, std::size_t count,
              const std::function<void(std::size_t)>& item) {
  if (count == 0) {
    out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
    return;
  }
  out << YAML::BeginSeq;
  for (std::size_t i = 0; i < count; ++i) item(i);
  out << YAML::EndSeq;
}

void emit(YAML::Emitter& out, const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::object:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (auto it = v.begin(); it != v.end(); ++it) {
        emit_key(out, it.key());
        emit(out, it.value());
      }
      out << YAML::EndMap;
      return;
    case nlohmann::json::value_t::array:
      emit_seq(out, v.size(), [&](std::size_t i) { emit(out, v[i]); });
      return;
    case nlohmann::json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (needs_quotes(s)) {
        out << YAML::DoubleQuoted << s;
      } else {
        out << s;
      }
      return;
    }
    case nlohmann::json::value_t::boolean:
      out << (v.get<bool>() ? "true" : "false");
      return;
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out << YAML::Null;
      return;
    default:
      out << v.dump();
      return;
  }
}

std::string emitted_yaml(const std::function<void(YAML::Emitter&)>& body) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetMapFormat(YAML::Block);
  out.SetSeqFormat(YAML::Block);
  body(out);
  std::string s = out.c_str();
  s.push_back('\n');
  return s;
}

}  // namespace

Expected<nlohmann::json> decode_body(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return ApiError::bad_request("the request body is empty");
  }
  if (looks_like_json(body)) {
    // A body that opens like JSON is JSON (kubectl and client-go send nothing else). It is not
    // handed to yaml-cpp when it fails: malformed flow collections are where yaml-cpp 0.7 can
    // loop for ever (found by fuzzing), and the JSON error is the one the client needs.
    try {
      return nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
      return ApiError::bad_request(std::string("couldn't get version/kind; json parse error: ") +
                                   e.what());
    }
  }
  // nlohmann's parser refuses invalid UTF-8; so does libyaml, with a less helpful message.
  if (!frames::is_valid_utf8(body)) {
    return ApiError::bad_request("error converting YAML to JSON: yaml: invalid UTF-8 in the body");
  }
  auto docs = decode_yaml(body, YamlScalars::kJson, 2);
  if (!docs) {
    return ApiError::bad_request("error converting YAML to JSON: yaml: " + docs.error().message);
  }
  if (docs->empty()) return ApiError::bad_request("the request body is empty");
  if (docs->size() > 1) {
    return ApiError::bad_request(
        "error converting YAML to JSON: the request body holds more than one YAML document");
  }
  if (!docs->front().is_object() && !docs->front().is_array()) {
    return ApiError::bad_request("couldn't get version/kind; json parse error: the body is not a "
                                 "JSON or YAML object");
  }
  return std::move(docs->front());
}

Expected<std::vector<nlohmann::json>> decode_yaml(std::string_view text, YamlScalars scalars,
                                                  std::size_t max_documents) {
  YamlDecoder decoder(text, DecodeBudget::for_input(text.size()), scalars);
  return decoder.documents(max_documents);
}

std::string string_field(const nlohmann::json& object, std::string_view key,
                         std::string_view fallback) {
  if (!object.is_object()) return std::string(fallback);
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
}

std::string to_yaml(const nlohmann::json& value) {
  return emitted_yaml([&](YAML::Emitter& out) { emit(out, value); });
}

std::string to_yaml_list(const nlohmann::json& list, std::size_t count,
                         const std::function<nlohmann::json(std::size_t)>& item) {
  return emitted_yaml([&](YAML::Emitter& out) {
    out << YAML::BeginMap;
    for (auto it = list.begin(); it != list.end(); ++it) {
      emit_key(out, it.key());
      if (it.key() == "items") {
        emit_seq(out, count, [&](std::size_t i) { emit(out, item(i)); });
      } else {
        emit(out, it.value());
      }
    }
    out << YAML::EndMap;
  });
}

}  // namespace dpa::api
