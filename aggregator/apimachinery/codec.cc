#include "aggregator/apimachinery/codec.h"

#include "aggregator/frames/utf8.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <regex>

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
bool is_int_scalar(const std::string& s) {
  static const std::regex re("[-+]?[0-9]+");
  return std::regex_match(s, re);
}
bool is_float_scalar(const std::string& s) {
  static const std::regex re(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  return std::regex_match(s, re);
}

// What decoding one document may produce. yaml-cpp resolves an alias to the node it names
// without copying it, so a few hundred bytes of nested aliases describe billions of nodes
// ("billion laughs"); expanding them is bounded by counting every node and scalar byte produced
// against a budget proportional to the input, as go-yaml (and so kube-apiserver) refuses
// "excessive aliasing".
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

ApiError excessive_aliasing() {
  return ApiError::bad_request(
      "error converting YAML to JSON: yaml: document contains excessive aliasing");
}

Expected<nlohmann::json> node_to_json(const YAML::Node& node, int depth, DecodeBudget& budget) {
  if (depth > 100) return ApiError::bad_request("yaml: exceeded max depth of 100");
  if (!budget.spend(node.IsScalar() ? node.Scalar().size() : 0)) return excessive_aliasing();
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nlohmann::json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() != "?") return nlohmann::json(s);  // quoted or explicitly tagged: a string
      bool b = false;
      if (is_null_scalar(s)) return nlohmann::json(nullptr);
      if (is_bool_scalar(s, &b)) return nlohmann::json(b);
      if (is_int_scalar(s)) {
        errno = 0;
        char* end = nullptr;
        long long v = std::strtoll(s.c_str(), &end, 10);
        if (errno == 0) return nlohmann::json(static_cast<int64_t>(v));
        return nlohmann::json(std::strtod(s.c_str(), nullptr));
      }
      if (is_float_scalar(s)) return nlohmann::json(std::strtod(s.c_str(), nullptr));
      return nlohmann::json(s);
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& item : node) {
        auto v = node_to_json(item, depth + 1, budget);
        if (!v) return v;
        arr.push_back(std::move(*v));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) return ApiError::bad_request("yaml: map keys must be strings");
        std::string key = kv.first.Scalar();
        if (obj.contains(key)) {
          return ApiError::bad_request("yaml: duplicate map key \"" + key + "\"");
        }
        if (!budget.spend(kv.first.Scalar().size())) return excessive_aliasing();
        auto v = node_to_json(kv.second, depth + 1, budget);
        if (!v) return v;
        obj[key] = std::move(*v);
      }
      return obj;
    }
  }
  return nlohmann::json(nullptr);
}

// yaml-cpp 0.7 never returns when a ',' follows a document's root node at the top level (`[a],`,
// `"x",`, `{b},`, `!!str,`, a line starting with ','): found by fuzzing, one such body would hold a thread
// for ever. Such a ',' is never valid YAML, so it is refused before yaml-cpp sees it. Quoted
// scalars and comments are skipped; '[' and '{' open a flow collection only where a node can start
// (in block context they may sit inside a plain scalar, `a: x[1]`); a ',' counts when no flow
// collection is open and it starts a line or directly follows a closed collection or a quote.
bool has_root_level_comma(std::string_view text) {
  int depth = 0;
  char previous = '\n';     // last significant character; '\n' at the start of a line
  bool in_property = false;  // inside a tag, anchor or alias (`!!str`, `&a`, `*a`)
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      previous = '\n';
      in_property = false;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      in_property = false;
      continue;
    }
    const bool node_start = previous == '\n' || previous == ':' || previous == '-' ||
                            previous == ',' || previous == '[' || previous == '{' ||
                            previous == '?';
    if ((c == '!' || c == '&' || c == '*') && node_start) in_property = true;
    // A tag or anchor ended by a ',' outside any flow collection: the same endless loop.
    if (c == ',' && depth == 0 && in_property) return true;
    if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' || text[i - 1] == '\n')) {
      while (i < text.size() && text[i] != '\n') ++i;
      previous = '\n';
      continue;
    }
    if ((c == '"' || c == '\'') && node_start) {
      for (++i; i < text.size(); ++i) {
        if (c == '"' && text[i] == '\\') {
          ++i;
        } else if (text[i] == c) {
          if (c == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
            ++i;  // '' is a quote inside a single-quoted scalar
          } else {
            break;
          }
        }
      }
      previous = '"';
      continue;
    }
    // After a quoted scalar or a closed collection a bracket cannot be part of a plain scalar:
    // yaml-cpp reads it as another collection (`"&"[],` loops the same way).
    const bool after_node = previous == '"' || previous == ']' || previous == '}';
    if ((c == '[' || c == '{') && (node_start || after_node || depth > 0)) {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (depth == 0) {
        previous = 'x';  // part of a plain scalar (`x[1]`), not the end of a collection
        continue;
      }
      --depth;
    } else if (c == ',' && depth == 0 &&
               (previous == '\n' || previous == ']' || previous == '}' || previous == '"')) {
      return true;
    }
    previous = c;
  }
  return false;
}

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

void emit(YAML::Emitter& out, const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::object:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (auto it = v.begin(); it != v.end(); ++it) {
        out << YAML::Key;
        if (needs_quotes(it.key())) {
          out << YAML::DoubleQuoted << it.key();
        } else {
          out << it.key();
        }
        out << YAML::Value;
        emit(out, it.value());
      }
      out << YAML::EndMap;
      return;
    case nlohmann::json::value_t::array:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const auto& item : v) emit(out, item);
      out << YAML::EndSeq;
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
  // nlohmann's parser refuses invalid UTF-8; yaml-cpp does not, and such a string would be
  // stored and fail every later serialisation.
  if (!frames::is_valid_utf8(body)) {
    return ApiError::bad_request("error converting YAML to JSON: yaml: invalid UTF-8 in the body");
  }
  if (has_root_level_comma(body)) {
    return ApiError::bad_request(
        "error converting YAML to JSON: yaml: did not find expected <document start>");
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(body));
  } catch (const YAML::Exception& e) {
    return ApiError::bad_request(std::string("error converting YAML to JSON: yaml: ") + e.what());
  }
  std::vector<const YAML::Node*> non_empty;
  for (const auto& d : docs) {
    if (!d.IsNull()) non_empty.push_back(&d);
  }
  if (non_empty.empty()) return ApiError::bad_request("the request body is empty");
  if (non_empty.size() > 1) {
    return ApiError::bad_request(
        "error converting YAML to JSON: the request body holds more than one YAML document");
  }
  if (non_empty.front()->IsScalar() && !looks_like_json(body)) {
    return ApiError::bad_request("couldn't get version/kind; json parse error: the body is not a "
                                 "JSON or YAML object");
  }
  DecodeBudget budget = DecodeBudget::for_input(body.size());
  return node_to_json(*non_empty.front(), 0, budget);
}

std::string string_field(const nlohmann::json& object, std::string_view key,
                         std::string_view fallback) {
  if (!object.is_object()) return std::string(fallback);
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
}

std::string to_yaml(const nlohmann::json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetMapFormat(YAML::Block);
  out.SetSeqFormat(YAML::Block);
  emit(out, value);
  std::string s = out.c_str();
  s.push_back('\n');
  return s;
}

}  // namespace dpa::api
