// Discovery documents of aggregation.grafana.app (reference §2.1): the legacy APIGroup and
// APIResourceList, and the aggregated (apidiscovery.k8s.io/v2) group item.
#include "aggregator/dataplaneservice/rest_handler.h"
#include "aggregator/dataplaneservice/types.h"

namespace dpa::dataplaneservice {
namespace {

// base64(sha256("aggregation.grafana.app/v0alpha1/DataPlaneService")[:8]), as kube computes it.
constexpr const char* kStorageVersionHash = "3pkZWVo1iwI=";

nlohmann::json group_version() {
  return {{"groupVersion", std::string(kGroup) + "/" + kVersion}, {"version", kVersion}};
}

nlohmann::json main_verbs() {
  return {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"};
}

nlohmann::json response_kind() {
  return {{"group", kGroup}, {"version", kVersion}, {"kind", kKind}};
}

}  // namespace

nlohmann::json RestHandler::api_group() {
  return {{"kind", "APIGroup"},
          {"apiVersion", "v1"},
          {"name", kGroup},
          {"versions", nlohmann::json::array({group_version()})},
          {"preferredVersion", group_version()}};
}

nlohmann::json RestHandler::api_resource_list() {
  return {{"kind", "APIResourceList"},
          {"apiVersion", "v1"},
          {"groupVersion", std::string(kGroup) + "/" + kVersion},
          {"resources",
           nlohmann::json::array(
               {{{"name", kResource},
                 {"singularName", kSingular},
                 {"namespaced", false},
                 {"kind", kKind},
                 {"verbs", main_verbs()},
                 {"categories", {"dataplane"}},
                 {"storageVersionHash", kStorageVersionHash}},
                {{"name", std::string(kResource) + "/status"},
                 {"singularName", ""},
                 {"namespaced", false},
                 {"kind", kKind},
                 {"verbs", {"get", "patch", "update"}}}})}};
}

nlohmann::json RestHandler::aggregated_discovery_group() {
  nlohmann::json resource = {
      {"resource", kResource},
      {"responseKind", response_kind()},
      {"scope", "Cluster"},
      {"singularResource", kSingular},
      {"verbs", main_verbs()},
      {"categories", {"dataplane"}},
      {"subresources",
       nlohmann::json::array({{{"subresource", "status"},
                               {"responseKind", response_kind()},
                               {"verbs", {"get", "patch", "update"}}}})}};
  return {{"metadata", {{"name", kGroup}, {"creationTimestamp", nullptr}}},
          {"versions", nlohmann::json::array({{{"version", kVersion},
                                               {"resources", nlohmann::json::array({resource})},
                                               {"freshness", "Current"}}})}};
}

}  // namespace dpa::dataplaneservice
