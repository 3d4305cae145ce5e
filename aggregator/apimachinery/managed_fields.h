// metadata.managedFields and server-side apply (reference §2.2, §2.6): which field manager owns
// which fields, tracked as FieldsV1 sets ({"f:spec":{"f:group":{}}}), Update entries for ordinary
// writes, and Apply with conflict detection between managers (409 with FieldManagerConflict causes
// unless force), removal of fields a manager stopped applying, and create-by-apply.
// Deliberately small: list-map lists are keyed by one field; other lists are atomic.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace dpa::api {

// Elements: "f:<field>", "k:<key json>" (a list-map element), "." (the element itself).
using FieldPath = std::vector<std::string>;
using FieldSet = std::set<FieldPath>;

struct ManagedFieldsConfig {
  // Dotted paths of list-map lists and their key field, e.g. {"spec.services", "type"}.
  std::map<std::string, std::string> list_map_keys;
  // Top-level fields that this endpoint neither tracks nor applies (the reset fields: "status" on
  // the main resource; "spec" and "metadata" on /status).
  std::set<std::string> ignored_top_level;
  std::string api_version;  // recorded in entries, e.g. "aggregation.grafana.app/v0alpha1"
  std::string subresource;  // "" or "status"
};

FieldSet fields_of(const nlohmann::json& object, const ManagedFieldsConfig& config);
nlohmann::json fields_to_v1(const FieldSet& set);
FieldSet fields_from_v1(const nlohmann::json& fields_v1);
// ".spec.services[type=\"query\"].path"
std::string field_path_string(const FieldPath& path);

// Server-side apply of `applied` (the user's configuration) by `manager` onto `live` (nullptr when
// the object does not exist). Returns the merged object with updated metadata.managedFields. The
// caller fills identity metadata (uid, timestamps) and validates the result.
Expected<nlohmann::json> server_side_apply(const nlohmann::json* live, const nlohmann::json& applied,
                                           const std::string& manager, bool force,
                                           const std::string& now,
                                           const ManagedFieldsConfig& config);

// Records an Update operation by `manager` in `after.metadata.managedFields` (taking the entries of
// `before`, nullptr on create): the manager gains the fields it changed, others lose them.
void record_update(const nlohmann::json* before, nlohmann::json& after, const std::string& manager,
                   const std::string& now, const ManagedFieldsConfig& config);

}  // namespace dpa::api
