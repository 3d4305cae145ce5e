// Objects are diffed key by key (removals, then recursive changes, then additions, each in key
// order); arrays element by element over the common prefix, then the tail is added or removed
// (removals from the end so indices stay valid while the patch is applied in order). Anything else
// that differs is replaced whole. The patch is not minimal for inserted array elements, but it is
// always correct, which is what an admission webhook's patch must be.
#include "aggregator/apimachinery/codec.h"
#include "aggregator/dataplane/json_patch_diff.h"

namespace dpa::dataplane {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

ojson op(const char* name, const std::string& path) {
  ojson o = ojson::object();
  o["op"] = name;
  o["path"] = path;
  return o;
}

ojson op(const char* name, const std::string& path, const json& value) {
  ojson o = op(name, path);
  o["value"] = ojson::parse(api::dump_json(value));
  return o;
}

void diff(const json& a, const json& b, const std::string& path, ojson& out) {
  if (a == b) return;
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key())) out.push_back(op("remove", path + "/" + json_pointer_escape(it.key())));
    }
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto other = b.find(it.key());
      if (other != b.end()) diff(it.value(), *other, path + "/" + json_pointer_escape(it.key()), out);
    }
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (!a.contains(it.key())) {
        out.push_back(op("add", path + "/" + json_pointer_escape(it.key()), it.value()));
      }
    }
    return;
  }
  if (a.is_array() && b.is_array()) {
    const std::size_t common = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < common; ++i) diff(a[i], b[i], path + "/" + std::to_string(i), out);
    for (std::size_t i = a.size(); i > common; --i) {
      out.push_back(op("remove", path + "/" + std::to_string(i - 1)));
    }
    for (std::size_t i = common; i < b.size(); ++i) {
      out.push_back(op("add", path + "/" + std::to_string(i), b[i]));
    }
    return;
  }
  out.push_back(op("replace", path, b));
}

}  // namespace

std::string json_pointer_escape(const std::string& token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

ojson json_patch_diff(const json& from, const json& to) {
  ojson out = ojson::array();
  diff(from, to, "", out);
  return out;
}

}  // namespace dpa::dataplane
