#include "aggregator/apimachinery/negotiation.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <vector>

namespace dpa::api {
namespace {

std::string trim_lower(std::string_view s, bool lower) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  if (lower) {
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  return out;
}

struct MediaRange {
  std::string type;
  std::map<std::string, std::string> params;
  double q = 1.0;
  std::size_t order = 0;
};

std::vector<MediaRange> parse_accept(std::string_view accept) {
  std::vector<MediaRange> ranges;
  std::size_t start = 0;
  std::size_t order = 0;
  while (start <= accept.size()) {
    auto comma = accept.find(',', start);
    std::string_view item =
        accept.substr(start, comma == std::string_view::npos ? accept.npos : comma - start);
    MediaRange r;
    r.order = order++;
    std::size_t p = 0;
    bool first = true;
    while (p <= item.size()) {
      auto semi = item.find(';', p);
      std::string_view part = item.substr(p, semi == std::string_view::npos ? item.npos : semi - p);
      if (first) {
        r.type = trim_lower(part, true);
        first = false;
      } else {
        auto eq = part.find('=');
        if (eq != std::string_view::npos) {
          std::string key = trim_lower(part.substr(0, eq), true);
          std::string value = trim_lower(part.substr(eq + 1), false);
          if (key == "q") {
            r.q = std::atof(value.c_str());
          } else {
            r.params[key] = value;
          }
        }
      }
      if (semi == std::string_view::npos) break;
      p = semi + 1;
    }
    if (!r.type.empty() && r.q > 0) ranges.push_back(std::move(r));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  std::stable_sort(ranges.begin(), ranges.end(),
                   [](const MediaRange& a, const MediaRange& b) { return a.q > b.q; });
  return ranges;
}

}  // namespace

std::string Negotiated::content_type() const {
  return kind == MediaKind::kYaml ? "application/yaml" : "application/json";
}

Expected<Negotiated> negotiate_accept(std::string_view accept, bool allow_table, bool allow_yaml) {
  Negotiated result;
  if (accept.find_first_not_of(" \t") == std::string_view::npos) return result;
  for (const MediaRange& r : parse_accept(accept)) {
    auto as = r.params.find("as");
    bool json_like = r.type == "application/json" || r.type == "*/*" || r.type == "application/*";
    if (as != r.params.end()) {
      if (!json_like) continue;
      auto g = r.params.find("g");
      auto v = r.params.find("v");
      if (as->second == "Table" && allow_table && g != r.params.end() &&
          g->second == "meta.k8s.io" && v != r.params.end() &&
          (v->second == "v1" || v->second == "v1beta1")) {
        result.kind = MediaKind::kTable;
        result.table_api_version = "meta.k8s.io/" + v->second;
        return result;
      }
      continue;  // PartialObjectMetadata and other conversions are not offered
    }
    if (json_like) {
      result.kind = MediaKind::kJson;
      return result;
    }
    if (allow_yaml && r.type == "application/yaml") {
      result.kind = MediaKind::kYaml;
      return result;
    }
  }
  return ApiError::not_acceptable(
      allow_yaml ? "only the following media types are accepted: application/json, "
                   "application/yaml"
                 : "only the following media types are accepted: application/json");
}

std::string media_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  return trim_lower(content_type.substr(0, semi), true);
}

}  // namespace dpa::api
