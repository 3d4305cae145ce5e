#include "aggregator/apimachinery/managed_fields.h"

#include "aggregator/apimachinery/codec.h"

#include <algorithm>

namespace dpa::api {
namespace {

const std::set<std::string> kTrackedMetadata = {"labels", "annotations", "finalizers",
                                                "ownerReferences"};

std::string key_element(const std::string& key_field, const nlohmann::json& key_value) {
  return "k:" + dump_json(nlohmann::json{{key_field, key_value}});
}

const std::string* list_map_key(const ManagedFieldsConfig& config, const std::string& dotted) {
  auto it = config.list_map_keys.find(dotted);
  return it == config.list_map_keys.end() ? nullptr : &it->second;
}

bool is_list_map(const nlohmann::json& value, const std::string& key) {
  if (!value.is_array()) return false;
  return std::all_of(value.begin(), value.end(), [&](const nlohmann::json& e) {
    return e.is_object() && e.contains(key);
  });
}

void walk(const nlohmann::json& value, FieldPath& path, const std::string& dotted,
          const ManagedFieldsConfig& config, FieldSet& out) {
  if (value.is_object() && !value.empty()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      path.push_back("f:" + it.key());
      walk(it.value(), path, dotted.empty() ? it.key() : dotted + "." + it.key(), config, out);
      path.pop_back();
    }
    return;
  }
  const std::string* key = list_map_key(config, dotted);
  if (key && is_list_map(value, *key) && !value.empty()) {
    for (const auto& element : value) {
      path.push_back(key_element(*key, element[*key]));
      path.push_back(".");
      out.insert(path);
      path.pop_back();
      for (auto it = element.begin(); it != element.end(); ++it) {
        path.push_back("f:" + it.key());
        walk(it.value(), path, dotted + "." + it.key(), config, out);
        path.pop_back();
      }
      path.pop_back();
    }
    return;
  }
  out.insert(path);  // scalars, empty maps and atomic lists are leaves
}

// The value at `path` inside `root` (nullptr when absent). "." is the element itself.
const nlohmann::json* value_at(const nlohmann::json& root, const FieldPath& path) {
  const nlohmann::json* cur = &root;
  for (const auto& element : path) {
    if (element == ".") continue;
    if (element.rfind("f:", 0) == 0) {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(element.substr(2));
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (element.rfind("k:", 0) == 0) {
      if (!cur->is_array()) return nullptr;
      auto key = nlohmann::json::parse(element.substr(2), nullptr, false);
      if (!key.is_object() || key.empty()) return nullptr;
      const nlohmann::json* found = nullptr;
      for (const auto& e : *cur) {
        bool match = e.is_object();
        for (auto k = key.begin(); match && k != key.end(); ++k) {
          match = e.contains(k.key()) && e[k.key()] == k.value();
        }
        if (match) {
          found = &e;
          break;
        }
      }
      if (!found) return nullptr;
      cur = found;
    } else {
      return nullptr;
    }
  }
  return cur;
}

// Removes the field at `path` from `root` (no-op when absent).
void remove_at(nlohmann::json& root, const FieldPath& path) {
  if (path.empty()) return;
  FieldPath target = path;
  if (target.back() == ".") target.pop_back();
  if (target.empty()) return;
  FieldPath parent_path(target.begin(), target.end() - 1);
  const nlohmann::json* parent_c = value_at(root, parent_path);
  if (!parent_c) return;
  auto* parent = const_cast<nlohmann::json*>(parent_c);
  const std::string& last = target.back();
  if (last.rfind("f:", 0) == 0 && parent->is_object()) {
    parent->erase(last.substr(2));
  } else if (last.rfind("k:", 0) == 0 && parent->is_array()) {
    const nlohmann::json* element = value_at(*parent, {last});
    if (!element) return;
    for (auto it = parent->begin(); it != parent->end(); ++it) {
      if (&*it == element) {
        parent->erase(it);
        break;
      }
    }
  }
}

void merge_into(nlohmann::json& dst, const nlohmann::json& src, const std::string& dotted,
                const ManagedFieldsConfig& config) {
  if (!dst.is_object() || !src.is_object()) {
    dst = src;
    return;
  }
  for (auto it = src.begin(); it != src.end(); ++it) {
    std::string child = dotted.empty() ? it.key() : dotted + "." + it.key();
    auto existing = dst.find(it.key());
    const std::string* key = list_map_key(config, child);
    if (existing != dst.end() && it.value().is_object() && existing->is_object()) {
      merge_into(*existing, it.value(), child, config);
    } else if (existing != dst.end() && key && is_list_map(it.value(), *key) &&
               is_list_map(*existing, *key)) {
      for (const auto& element : it.value()) {
        bool merged = false;
        for (auto& have : *existing) {
          if (have[*key] == element[*key]) {
            merge_into(have, element, child, config);
            merged = true;
            break;
          }
        }
        if (!merged) existing->push_back(element);
      }
    } else {
      dst[it.key()] = it.value();
    }
  }
}

nlohmann::json entries_of(const nlohmann::json* object) {
  if (object && object->is_object() && object->contains("metadata") &&
      (*object)["metadata"].is_object() && (*object)["metadata"].contains("managedFields") &&
      (*object)["metadata"]["managedFields"].is_array()) {
    return (*object)["metadata"]["managedFields"];
  }
  return nlohmann::json::array();
}

bool same_entry(const nlohmann::json& e, const std::string& manager, const std::string& operation,
                const std::string& subresource) {
  return e.is_object() && string_field(e, "manager") == manager &&
         string_field(e, "operation") == operation && string_field(e, "subresource") == subresource;
}

nlohmann::json make_entry(const std::string& manager, const std::string& operation,
                          const std::string& now, const FieldSet& set,
                          const ManagedFieldsConfig& config) {
  nlohmann::json e = {{"manager", manager},     {"operation", operation},
                      {"apiVersion", config.api_version}, {"time", now},
                      {"fieldsType", "FieldsV1"}, {"fieldsV1", fields_to_v1(set)}};
  if (!config.subresource.empty()) e["subresource"] = config.subresource;
  return e;
}

// Writes `entries` (dropping empty ones) into object.metadata.managedFields.
void store_entries(nlohmann::json& object, const nlohmann::json& entries) {
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& e : entries) {
    if (e.is_object() && e.contains("fieldsV1") && e["fieldsV1"].is_object() &&
        !e["fieldsV1"].empty()) {
      kept.push_back(e);
    }
  }
  if (!object["metadata"].is_object()) object["metadata"] = nlohmann::json::object();
  if (kept.empty()) {
    object["metadata"].erase("managedFields");
  } else {
    object["metadata"]["managedFields"] = kept;
  }
}

FieldSet minus(const FieldSet& a, const FieldSet& b) {
  FieldSet out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

}  // namespace

FieldSet fields_of(const nlohmann::json& object, const ManagedFieldsConfig& config) {
  FieldSet out;
  if (!object.is_object()) return out;
  FieldPath path;
  for (auto it = object.begin(); it != object.end(); ++it) {
    const std::string& k = it.key();
    if (k == "apiVersion" || k == "kind" || config.ignored_top_level.count(k)) continue;
    if (k == "metadata") {
      if (!it.value().is_object()) continue;
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!kTrackedMetadata.count(m.key()) || m.value().is_null()) continue;
        path = {"f:metadata", "f:" + m.key()};
        walk(m.value(), path, "metadata." + m.key(), config, out);
      }
      continue;
    }
    path = {"f:" + k};
    walk(it.value(), path, k, config, out);
  }
  return out;
}

nlohmann::json fields_to_v1(const FieldSet& set) {
  nlohmann::json root = nlohmann::json::object();
  for (const auto& path : set) {
    nlohmann::json* cur = &root;
    for (const auto& element : path) {
      if (!cur->contains(element)) (*cur)[element] = nlohmann::json::object();
      cur = &(*cur)[element];
    }
  }
  return root;
}

namespace {
void collect_v1(const nlohmann::json& node, FieldPath& path, FieldSet& out) {
  if (!node.is_object()) return;
  if (node.empty()) {
    if (!path.empty()) out.insert(path);
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    path.push_back(it.key());
    collect_v1(it.value(), path, out);
    path.pop_back();
  }
}
}  // namespace

FieldSet fields_from_v1(const nlohmann::json& fields_v1) {
  FieldSet out;
  FieldPath path;
  collect_v1(fields_v1, path, out);
  return out;
}

std::string field_path_string(const FieldPath& path) {
  std::string s;
  for (const auto& element : path) {
    if (element == ".") continue;
    if (element.rfind("f:", 0) == 0) {
      s += "." + element.substr(2);
    } else if (element.rfind("k:", 0) == 0) {
      auto key = nlohmann::json::parse(element.substr(2), nullptr, false);
      s += "[";
      bool first = true;
      if (key.is_object()) {
        for (auto it = key.begin(); it != key.end(); ++it) {
          if (!first) s += ",";
          first = false;
          s += it.key() + "=" + dump_json(it.value());
        }
      }
      s += "]";
    }
  }
  return s;
}

Expected<nlohmann::json> server_side_apply(const nlohmann::json* live, const nlohmann::json& applied,
                                           const std::string& manager, bool force,
                                           const std::string& now,
                                           const ManagedFieldsConfig& config) {
  if (!applied.is_object()) return ApiError::bad_request("the applied configuration must be an object");
  FieldSet applied_set = fields_of(applied, config);
  nlohmann::json entries = entries_of(live);

  // Conflicts: fields another manager owns whose applied value differs from the live value.
  std::map<std::string, std::vector<FieldPath>> conflicts;  // manager -> paths
  std::size_t conflict_count = 0;
  if (live) {
    for (const auto& e : entries) {
      if (!e.is_object()) continue;
      if (same_entry(e, manager, "Apply", config.subresource)) continue;
      if (string_field(e, "subresource") != config.subresource) continue;
      FieldSet owned = fields_from_v1(e.value("fieldsV1", nlohmann::json::object()));
      for (const auto& p : owned) {
        if (!applied_set.count(p) || p.back() == ".") continue;
        const nlohmann::json* have = value_at(*live, p);
        const nlohmann::json* want = value_at(applied, p);
        if (have && want && *have == *want) continue;  // same value: shared ownership
        conflicts[string_field(e, "manager")].push_back(p);
        ++conflict_count;
      }
    }
  }
  if (conflict_count > 0 && !force) {
    std::string msg = "Apply failed with " + std::to_string(conflict_count) +
                      (conflict_count == 1 ? " conflict: " : " conflicts: ");
    nlohmann::json causes = nlohmann::json::array();
    bool first_manager = true;
    for (const auto& [owner, paths] : conflicts) {
      std::string with = "conflict with \"" + owner + "\"" +
                         (config.api_version.empty() ? "" : " using " + config.api_version);
      if (conflict_count == 1) {
        msg += with + ": " + field_path_string(paths.front());
      } else {
        if (!first_manager) msg += "\n";
        msg += "conflicts with \"" + owner + "\"" +
               (config.api_version.empty() ? "" : " using " + config.api_version) + ":";
        for (const auto& p : paths) msg += "\n- " + field_path_string(p);
      }
      first_manager = false;
      for (const auto& p : paths) {
        causes.push_back(
            {{"reason", "FieldManagerConflict"}, {"message", with}, {"field", field_path_string(p)}});
      }
    }
    ApiError err = ApiError::conflict_message(msg);
    err.details = {{"causes", causes}};
    return err;
  }

  // Forced: the other managers lose the conflicting fields.
  for (auto& e : entries) {
    if (!e.is_object()) continue;
    auto c = conflicts.find(string_field(e, "manager"));
    if (c == conflicts.end() || same_entry(e, manager, "Apply", config.subresource)) continue;
    if (string_field(e, "subresource") != config.subresource) continue;
    FieldSet owned = fields_from_v1(e.value("fieldsV1", nlohmann::json::object()));
    for (const auto& p : c->second) owned.erase(p);
    e["fieldsV1"] = fields_to_v1(owned);
  }

  nlohmann::json result;
  if (live) {
    result = *live;
  } else {
    result = nlohmann::json::object();
  }
  if (!result.contains("metadata") || !result["metadata"].is_object()) {
    result["metadata"] = nlohmann::json::object();
  }
  if (applied.contains("apiVersion")) result["apiVersion"] = applied["apiVersion"];
  if (applied.contains("kind")) result["kind"] = applied["kind"];

  // Fields this manager applied before and no longer applies are removed, unless someone else
  // still owns them.
  FieldSet previous;
  for (const auto& e : entries) {
    if (same_entry(e, manager, "Apply", config.subresource)) {
      previous = fields_from_v1(e.value("fieldsV1", nlohmann::json::object()));
    }
  }
  FieldSet dropped = minus(previous, applied_set);
  std::vector<FieldPath> to_remove;
  for (const auto& p : dropped) {
    bool owned_elsewhere = false;
    for (const auto& e : entries) {
      if (same_entry(e, manager, "Apply", config.subresource)) continue;
      if (fields_from_v1(e.value("fieldsV1", nlohmann::json::object())).count(p)) {
        owned_elsewhere = true;
        break;
      }
    }
    if (!owned_elsewhere) to_remove.push_back(p);
  }
  std::sort(to_remove.begin(), to_remove.end(),
            [](const FieldPath& a, const FieldPath& b) { return a.size() > b.size(); });
  for (const auto& p : to_remove) remove_at(result, p);

  for (auto it = applied.begin(); it != applied.end(); ++it) {
    const std::string& k = it.key();
    if (k == "apiVersion" || k == "kind" || config.ignored_top_level.count(k)) continue;
    if (k == "metadata") {
      if (!it.value().is_object()) continue;
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (kTrackedMetadata.count(m.key())) {
          if (!result["metadata"].contains(m.key()) || !m.value().is_object()) {
            result["metadata"][m.key()] = m.value();
          } else {
            merge_into(result["metadata"][m.key()], m.value(), "metadata." + m.key(), config);
          }
        } else if ((m.key() == "name" || m.key() == "generateName") && !live) {
          result["metadata"][m.key()] = m.value();
        }
      }
      continue;
    }
    if (!result.contains(k)) {
      result[k] = it.value();
    } else {
      nlohmann::json wrapper_dst = {{k, result[k]}};
      merge_into(wrapper_dst, nlohmann::json{{k, it.value()}}, "", config);
      result[k] = wrapper_dst[k];
    }
  }

  bool replaced = false;
  for (auto& e : entries) {
    if (same_entry(e, manager, "Apply", config.subresource)) {
      e = make_entry(manager, "Apply", now, applied_set, config);
      replaced = true;
    }
  }
  if (!replaced) entries.push_back(make_entry(manager, "Apply", now, applied_set, config));
  store_entries(result, entries);
  return result;
}

void record_update(const nlohmann::json* before, nlohmann::json& after, const std::string& manager,
                   const std::string& now, const ManagedFieldsConfig& config) {
  nlohmann::json entries = entries_of(before);
  FieldSet after_set = fields_of(after, config);
  FieldSet before_set = before ? fields_of(*before, config) : FieldSet{};
  FieldSet changed;
  for (const auto& p : after_set) {
    if (p.back() == ".") {
      if (!before_set.count(p)) changed.insert(p);
      continue;
    }
    const nlohmann::json* was = before ? value_at(*before, p) : nullptr;
    const nlohmann::json* now_value = value_at(after, p);
    if (!was || !now_value || *was != *now_value) changed.insert(p);
  }
  FieldSet removed = minus(before_set, after_set);
  if (changed.empty() && removed.empty()) {
    if (!after.contains("metadata") || !after["metadata"].is_object()) {
      after["metadata"] = nlohmann::json::object();
    }
    store_entries(after, entries);
    return;
  }
  bool found = false;
  for (auto& e : entries) {
    if (!e.is_object()) continue;
    FieldSet owned = fields_from_v1(e.value("fieldsV1", nlohmann::json::object()));
    bool mine = same_entry(e, manager, "Update", config.subresource);
    for (const auto& p : removed) owned.erase(p);
    if (mine) {
      owned.insert(changed.begin(), changed.end());
      e["time"] = now;
      found = true;
    } else {
      for (const auto& p : changed) owned.erase(p);
    }
    e["fieldsV1"] = fields_to_v1(owned);
  }
  if (!found) entries.push_back(make_entry(manager, "Update", now, changed, config));
  if (!after.contains("metadata") || !after["metadata"].is_object()) {
    after["metadata"] = nlohmann::json::object();
  }
  store_entries(after, entries);
}

}  // namespace dpa::api
