// The DataPlaneService type (aggregation.grafana.app/v0alpha1, cluster scoped): its spec as C++
// values, decoded from and validated against the stored JSON object (DESIGN §2.1).
#pragma once

#include "aggregator/apimachinery/object_meta.h"
#include "aggregator/apimachinery/status.h"
#include "aggregator/storage/store.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace dpa::dataplaneservice {

inline constexpr const char* kGroup = "aggregation.grafana.app";
inline constexpr const char* kVersion = "v0alpha1";
inline constexpr const char* kKind = "DataPlaneService";
inline constexpr const char* kListKind = "DataPlaneServiceList";
inline constexpr const char* kResource = "dataplaneservices";
inline constexpr const char* kSingular = "dataplaneservice";
// Storage key prefix; the key of an object is kKeyPrefix + metadata.name.
inline constexpr const char* kKeyPrefix = "/registry/aggregation.grafana.app/dataplaneservices/";

// The storage form: an object is stored under key_of(metadata.name) as its JSON without
// metadata.resourceVersion, which is the record's mod_revision.
std::string key_of(const std::string& name);
// metadata.name, or "" when absent or not a string.
std::string name_of(const nlohmann::json& object);
// The object as served: the stored JSON with metadata.resourceVersion set to `resource_version`
// (the record's mod_revision when 0). 500 when the stored value is not a JSON object.
api::Expected<nlohmann::json> object_from_record(const storage::Record& record,
                                                 int64_t resource_version = 0);

// One spec.services[] entry.
struct Service {
  std::string type;    // query, stream, route, datasource-proxy (or datsource-proxy), admission,
                       // conversion, health, metrics
  std::string method;  // only for route
  std::string path;    // only for route: absolute, e.g. /foo/{name}

  bool operator==(const Service&) const = default;
};

struct Spec {
  std::string plugin_id;
  std::string plugin_type;  // app | datasource
  std::string group;
  std::string version;
  std::vector<Service> services;

  bool has_service(const std::string& type) const;
  bool operator==(const Spec&) const = default;
};

// Decodes spec from a whole DataPlaneService object; missing/ill-typed fields give a 422 Invalid.
api::Expected<Spec> decode_spec(const nlohmann::json& object);
// All validation rules of DESIGN §2.1 for a whole object (name == <version>.<group>, DNS subdomain
// group, Kubernetes version string, pluginID, pluginType, service types/uniqueness, route paths and
// methods). Returns 422 Invalid with one cause per violated field. Does not check uniqueness of
// group/version across objects (the registry does that).
api::Outcome validate(const nlohmann::json& object);

// status.conditions rules (type required and unique, status True|False|Unknown, RFC 3339
// lastTransitionTime). 422 Invalid with causes under status.conditions[i].
api::Outcome validate_status(const nlohmann::json& object);

// Fields of a DataPlaneService object that the schema does not define, as dotted paths
// ("spec.foo", "spec.services[1].bar", "metadata.foo"); what fieldValidation=Strict rejects.
std::vector<std::string> unknown_fields(const nlohmann::json& object);
// Drops those fields (what a structural CRD schema prunes).
void prune_unknown_fields(nlohmann::json& object);
// apiVersion/kind of a request body must be aggregation.grafana.app/v0alpha1 DataPlaneService:
// 400 BadRequest otherwise (missing kind included), as kube-apiserver's decoder answers.
api::Outcome check_type_meta(const nlohmann::json& object);

}  // namespace dpa::dataplaneservice
