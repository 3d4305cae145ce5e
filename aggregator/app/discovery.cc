#include "aggregator/app/discovery.h"

#include "aggregator/apimachinery/codec.h"

#include <algorithm>
#include <map>

namespace dpa::app {
namespace {

using nlohmann::json;

json group_version_entry(const std::string& group, const std::string& version) {
  return {{"groupVersion", group + "/" + version}, {"version", version}};
}

// The delegate's documents are outside data: anything not shaped as discovery expects is skipped
// here, never dereferenced with a throwing accessor.
using api::string_field;

// The well-formed entries of a `versions` array (objects with a string `version`).
json valid_versions(const json& entry) {
  json out = json::array();
  auto it = entry.find("versions");
  if (it == entry.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (!string_field(v, "version").empty()) out.push_back(v);
  }
  return out;
}

// Appends `entry` to `list` under `name`; versions of an existing entry are extended, not doubled.
void add_entry(json& list, std::map<std::string, std::size_t>& index, const std::string& name,
               json entry) {
  json versions = valid_versions(entry);
  auto found = index.find(name);
  if (found == index.end()) {
    entry["versions"] = std::move(versions);
    index[name] = list.size();
    list.push_back(std::move(entry));
    return;
  }
  json& existing = list[found->second]["versions"];
  for (auto& v : versions) {
    const std::string version = string_field(v, "version");
    bool known = std::any_of(existing.begin(), existing.end(), [&](const json& e) {
      return string_field(e, "version") == version;
    });
    if (!known) existing.push_back(std::move(v));
  }
}

void add_legacy_group(json& groups, std::map<std::string, std::size_t>& index, const json& group) {
  const std::string name = string_field(group, "name");
  if (name.empty()) return;
  json entry = group;
  // A preferredVersion that is not an object would break clients that read it.
  if (entry.contains("preferredVersion") && !entry["preferredVersion"].is_object()) {
    entry.erase("preferredVersion");
  }
  add_entry(groups, index, name, std::move(entry));
}

void add_discovery_item(json& items, std::map<std::string, std::size_t>& index, const json& item) {
  if (!item.is_object()) return;
  auto metadata = item.find("metadata");
  if (metadata == item.end()) return;
  const std::string name = string_field(*metadata, "name");
  if (name.empty()) return;
  add_entry(items, index, name, item);
}

std::vector<std::pair<std::string, std::vector<std::string>>> by_group(
    const std::vector<GroupVersion>& plugins) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& gv : plugins) {
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == gv.group; });
    if (it == out.end()) {
      out.push_back({gv.group, {gv.version}});
    } else if (std::find(it->second.begin(), it->second.end(), gv.version) == it->second.end()) {
      it->second.push_back(gv.version);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> aggregated_discovery_version(std::string_view accept) {
  // Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json
  // The first acceptable entry wins, as in content negotiation.
  std::size_t start = 0;
  while (start <= accept.size()) {
    std::size_t end = accept.find(',', start);
    if (end == std::string_view::npos) end = accept.size();
    std::string_view entry = accept.substr(start, end - start);
    bool discovery = entry.find("g=apidiscovery.k8s.io") != std::string_view::npos &&
                     entry.find("as=APIGroupDiscoveryList") != std::string_view::npos;
    if (discovery) {
      if (entry.find("v=v2beta1") != std::string_view::npos) return std::string("v2beta1");
      if (entry.find("v=v2") != std::string_view::npos) return std::string("v2");
    } else if (entry.find("json") != std::string_view::npos ||
               entry.find("*/*") != std::string_view::npos) {
      return std::nullopt;
    }
    start = end + 1;
  }
  return std::nullopt;
}

std::string aggregated_content_type(const std::string& version) {
  return "application/json;g=apidiscovery.k8s.io;v=" + version + ";as=APIGroupDiscoveryList";
}

json merge_group_list(const json& own, const std::vector<GroupVersion>& plugins,
                      const json& delegate) {
  json groups = json::array();
  std::map<std::string, std::size_t> index;
  add_legacy_group(groups, index, own);
  for (const auto& [group, versions] : by_group(plugins)) {
    json entry = {{"name", group}, {"versions", json::array()}};
    for (const auto& v : versions) entry["versions"].push_back(group_version_entry(group, v));
    entry["preferredVersion"] = entry["versions"][0];
    add_legacy_group(groups, index, entry);
  }
  if (delegate.is_object() && delegate.contains("groups") && delegate["groups"].is_array()) {
    for (const auto& g : delegate["groups"]) add_legacy_group(groups, index, g);
  }
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
}

json merge_discovery_list(const json& own, const std::vector<GroupVersion>& plugins,
                          const json& delegate, const std::string& version) {
  json items = json::array();
  std::map<std::string, std::size_t> index;
  add_discovery_item(items, index, own);
  for (const auto& [group, versions] : by_group(plugins)) {
    json item = {{"metadata", {{"name", group}}}, {"versions", json::array()}};
    for (const auto& v : versions) {
      item["versions"].push_back(
          {{"version", v}, {"resources", json::array()}, {"freshness", "Current"}});
    }
    add_discovery_item(items, index, item);
  }
  if (delegate.is_object() && delegate.contains("items") && delegate["items"].is_array()) {
    for (const auto& item : delegate["items"]) add_discovery_item(items, index, item);
  }
  return {{"kind", "APIGroupDiscoveryList"},
          {"apiVersion", "apidiscovery.k8s.io/" + version},
          {"metadata", json::object()},
          {"items", items}};
}

json empty_resource_list(const GroupVersion& gv) {
  return {{"kind", "APIResourceList"},
          {"apiVersion", "v1"},
          {"groupVersion", gv.group + "/" + gv.version},
          {"resources", json::array()}};
}

}  // namespace dpa::app
