// The OpenAPI v3 document of aggregation.grafana.app/v0alpha1 (reference §2.7, §2.9). kubectl's
// default (strict) validation looks for a PATCH operation tagged with our GVK that takes a
// fieldValidation query parameter; finding one, it leaves validation to the server. Without it
// kubectl falls back to /openapi/v2 and users would need --validate=false.
#include "aggregator/dataplaneservice/rest_handler.h"
#include "aggregator/dataplaneservice/types.h"

#include <cstdint>
#include <cstdio>

namespace dpa::dataplaneservice {
namespace {

using nlohmann::json;

const std::string kPrefix = "com.grafana.aggregation.v0alpha1.";
const std::string kMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.";

json schema_ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }
json string_schema(const std::string& description) {
  return {{"type", "string"}, {"description", description}};
}
json gvk_list(const char* kind) {
  return json::array({{{"group", kGroup}, {"version", kVersion}, {"kind", kind}}});
}

json schemas() {
  json s = json::object();
  s[kPrefix + "DataPlaneService"] = {
      {"type", "object"},
      {"description", "Routes the data-plane traffic of an API group/version to a Grafana backend "
                      "plugin."},
      {"properties",
       {{"apiVersion", string_schema("APIVersion defines the versioned schema of this object.")},
        {"kind", string_schema("Kind is a string value representing the REST resource.")},
        {"metadata", {{"allOf", json::array({schema_ref(kMeta + "ObjectMeta")})}, {"default", json::object()}}},
        {"spec", {{"allOf", json::array({schema_ref(kPrefix + "DataPlaneServiceSpec")})}, {"default", json::object()}}},
        {"status", {{"allOf", json::array({schema_ref(kPrefix + "DataPlaneServiceStatus")})}, {"default", json::object()}}}}},
      {"x-kubernetes-group-version-kind", gvk_list(kKind)}};
  s[kPrefix + "DataPlaneServiceList"] = {
      {"type", "object"},
      {"required", {"items"}},
      {"properties",
       {{"apiVersion", string_schema("APIVersion defines the versioned schema of this object.")},
        {"kind", string_schema("Kind is a string value representing the REST resource.")},
        {"metadata", {{"allOf", json::array({schema_ref(kMeta + "ListMeta")})}, {"default", json::object()}}},
        {"items", {{"type", "array"}, {"items", {{"allOf", json::array({schema_ref(kPrefix + "DataPlaneService")})}, {"default", json::object()}}}}}}},
      {"x-kubernetes-group-version-kind", gvk_list(kListKind)}};
  s[kPrefix + "DataPlaneServiceSpec"] = {
      {"type", "object"},
      {"required", {"pluginID", "pluginType", "group", "version"}},
      {"properties",
       {{"pluginID", string_schema("The Grafana plugin id, e.g. prometheus.")},
        {"pluginType", {{"type", "string"}, {"description", "app or datasource."},
                        {"enum", {"app", "datasource"}}}},
        {"group", string_schema("The API group whose data-plane paths are routed to the plugin.")},
        {"version", string_schema("The API version, e.g. v0alpha1.")},
        {"services", {{"type", "array"},
                      {"description", "The plugin capabilities exposed under /apis/<group>/<version>."},
                      {"items", {{"allOf", json::array({schema_ref(kPrefix + "Service")})}, {"default", json::object()}}},
                      {"x-kubernetes-list-type", "atomic"}}}}}};
  s[kPrefix + "Service"] = {
      {"type", "object"},
      {"required", {"type"}},
      {"properties",
       {{"type", {{"type", "string"},
                  {"enum", {"admission", "conversion", "datasource-proxy", "datsource-proxy",
                            "health", "metrics", "query", "route", "stream"}}}},
        {"method", {{"type", "string"}, {"description", "HTTP method of a route service."},
                    {"enum", {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}}}},
        {"path", string_schema("Absolute path of a route service, e.g. /foo/{name}.")}}}};
  s[kPrefix + "DataPlaneServiceStatus"] = {
      {"type", "object"},
      {"properties",
       {{"conditions", {{"type", "array"},
                        {"items", {{"allOf", json::array({schema_ref(kPrefix + "DataPlaneServiceCondition")})}, {"default", json::object()}}},
                        {"x-kubernetes-list-type", "map"},
                        {"x-kubernetes-list-map-keys", {"type"}}}}}}};
  s[kPrefix + "DataPlaneServiceCondition"] = {
      {"type", "object"},
      {"required", {"type", "status"}},
      {"properties",
       {{"type", string_schema("Type of the condition: Available.")},
        {"status", {{"type", "string"}, {"enum", {"True", "False", "Unknown"}}}},
        {"lastTransitionTime", {{"type", "string"}, {"format", "date-time"}}},
        {"reason", string_schema("One CamelCase word.")},
        {"message", string_schema("Human-readable details.")}}}};
  json string_map = {{"type", "object"}, {"additionalProperties", {{"type", "string"}, {"default", ""}}}};
  s[kMeta + "ObjectMeta"] = {
      {"type", "object"},
      {"properties",
       {{"name", {{"type", "string"}}},
        {"generateName", {{"type", "string"}}},
        {"namespace", {{"type", "string"}}},
        {"selfLink", {{"type", "string"}}},
        {"uid", {{"type", "string"}}},
        {"resourceVersion", {{"type", "string"}}},
        {"generation", {{"type", "integer"}, {"format", "int64"}}},
        {"creationTimestamp", {{"type", "string"}, {"format", "date-time"}}},
        {"deletionTimestamp", {{"type", "string"}, {"format", "date-time"}}},
        {"deletionGracePeriodSeconds", {{"type", "integer"}, {"format", "int64"}}},
        {"labels", string_map},
        {"annotations", string_map},
        {"finalizers", {{"type", "array"}, {"items", {{"type", "string"}, {"default", ""}}}, {"x-kubernetes-list-type", "set"}}},
        {"ownerReferences", {{"type", "array"}, {"items", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}},
        {"managedFields", {{"type", "array"}, {"items", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}}}}};
  s[kMeta + "ListMeta"] = {
      {"type", "object"},
      {"properties",
       {{"resourceVersion", {{"type", "string"}}},
        {"continue", {{"type", "string"}}},
        {"remainingItemCount", {{"type", "integer"}, {"format", "int64"}}},
        {"selfLink", {{"type", "string"}}}}}};
  s[kMeta + "Status"] = {
      {"type", "object"},
      {"properties",
       {{"apiVersion", {{"type", "string"}}}, {"kind", {{"type", "string"}}},
        {"status", {{"type", "string"}}}, {"message", {{"type", "string"}}},
        {"reason", {{"type", "string"}}}, {"code", {{"type", "integer"}, {"format", "int32"}}},
        {"details", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}},
      {"x-kubernetes-group-version-kind",
       json::array({{{"group", ""}, {"version", "v1"}, {"kind", "Status"}}})}};
  s[kMeta + "DeleteOptions"] = {
      {"type", "object"},
      {"properties",
       {{"apiVersion", {{"type", "string"}}}, {"kind", {{"type", "string"}}},
        {"dryRun", {{"type", "array"}, {"items", {{"type", "string"}}}}},
        {"gracePeriodSeconds", {{"type", "integer"}, {"format", "int64"}}},
        {"propagationPolicy", {{"type", "string"}}},
        {"preconditions", {{"type", "object"}, {"properties", {{"uid", {{"type", "string"}}}, {"resourceVersion", {{"type", "string"}}}}}}}}}};
  s[kMeta + "Patch"] = {{"type", "object"},
                        {"description", "Patch is provided to give a concrete name and type to "
                                        "the Kubernetes PATCH request body."}};
  s[kMeta + "WatchEvent"] = {
      {"type", "object"},
      {"required", {"type", "object"}},
      {"properties", {{"type", {{"type", "string"}}}, {"object", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}}};
  return s;
}

json query_param(const std::string& name, const std::string& type, const std::string& description) {
  return {{"name", name}, {"in", "query"}, {"description", description},
          {"schema", {{"type", type}, {"uniqueItems", true}}}};
}

json write_params(bool with_force) {
  json p = json::array({
      query_param("dryRun", "string", "When present, indicates that modifications should not be "
                                      "persisted. The only valid value is All."),
      query_param("fieldManager", "string", "A name associated with the actor making these "
                                            "changes."),
      query_param("fieldValidation", "string",
                  "Ignore, Warn (default) or Strict: how unknown and duplicate fields are "
                  "treated."),
  });
  if (with_force) {
    p.push_back(query_param("force", "boolean", "Force is going to \"force\" Apply requests."));
  }
  return p;
}

json list_params() {
  return json::array({
      query_param("allowWatchBookmarks", "boolean", "Request watch events of type BOOKMARK."),
      query_param("continue", "string", "The continue token of a previous page."),
      query_param("fieldSelector", "string", "Restrict by field (metadata.name, metadata.namespace)."),
      query_param("labelSelector", "string", "Restrict by label."),
      query_param("limit", "integer", "Maximum number of items to return."),
      query_param("resourceVersion", "string", "Which version of the collection to read or watch from."),
      query_param("resourceVersionMatch", "string", "Exact or NotOlderThan."),
      query_param("sendInitialEvents", "boolean", "Start a watch with the current state (watch-list)."),
      query_param("timeoutSeconds", "integer", "Timeout for the list/watch call."),
      query_param("watch", "boolean", "Watch for changes."),
  });
}

json content(const std::string& schema) {
  json c = json::object();
  for (const char* type : {"application/json", "application/yaml"}) {
    c[type] = {{"schema", schema_ref(schema)}};
  }
  return c;
}

json responses(std::initializer_list<std::pair<const char*, const char*>> codes,
               const std::string& schema) {
  json r = json::object();
  for (const auto& [code, description] : codes) {
    r[code] = {{"description", description}, {"content", content(schema)}};
  }
  return r;
}

json op(const std::string& id, const std::string& action, const char* kind, json params,
        json resp) {
  return {{"tags", {"aggregationGrafanaApp_v0alpha1"}},
          {"operationId", id},
          {"parameters", std::move(params)},
          {"responses", std::move(resp)},
          {"x-kubernetes-action", action},
          {"x-kubernetes-group-version-kind", {{"group", kGroup}, {"version", kVersion}, {"kind", kind}}}};
}

json body(const std::string& schema, bool patch) {
  json c = json::object();
  if (patch) {
    for (const char* type : {"application/json-patch+json", "application/merge-patch+json",
                             "application/apply-patch+yaml"}) {
      c[type] = {{"schema", schema_ref(kMeta + "Patch")}};
    }
  } else {
    for (const char* type : {"application/json", "application/yaml"}) c[type] = {{"schema", schema_ref(schema)}};
  }
  return {{"content", c}, {"required", true}};
}

json paths() {
  const std::string obj = kPrefix + "DataPlaneService";
  const std::string list = kPrefix + "DataPlaneServiceList";
  const std::string base = std::string("/apis/") + kGroup + "/" + kVersion + "/" + kResource;
  json name_param = {{"name", "name"}, {"in", "path"}, {"required", true},
                     {"description", "name of the DataPlaneService"},
                     {"schema", {{"type", "string"}, {"uniqueItems", true}}}};
  json p = json::object();

  json collection = json::object();
  collection["get"] = op("listAggregationGrafanaAppV0alpha1DataPlaneService", "list", kKind,
                         list_params(), responses({{"200", "OK"}}, list));
  json create = op("createAggregationGrafanaAppV0alpha1DataPlaneService", "post", kKind,
                   write_params(false),
                   responses({{"200", "OK"}, {"201", "Created"}, {"202", "Accepted"}}, obj));
  create["requestBody"] = body(obj, false);
  collection["post"] = create;
  json delete_collection = op("deleteAggregationGrafanaAppV0alpha1CollectionDataPlaneService",
                              "deletecollection", kKind, list_params(),
                              responses({{"200", "OK"}}, kMeta + "Status"));
  collection["delete"] = delete_collection;
  p[base] = collection;

  for (bool status : {false, true}) {
    std::string suffix = status ? "Status" : "";
    json item = json::object();
    item["parameters"] = json::array({name_param});
    item["get"] = op("readAggregationGrafanaAppV0alpha1DataPlaneService" + suffix, "get", kKind,
                     json::array(), responses({{"200", "OK"}}, obj));
    json put = op("replaceAggregationGrafanaAppV0alpha1DataPlaneService" + suffix, "put", kKind,
                  write_params(false), responses({{"200", "OK"}, {"201", "Created"}}, obj));
    put["requestBody"] = body(obj, false);
    item["put"] = put;
    json patch = op("patchAggregationGrafanaAppV0alpha1DataPlaneService" + suffix, "patch", kKind,
                    write_params(true), responses({{"200", "OK"}, {"201", "Created"}}, obj));
    patch["requestBody"] = body(obj, true);
    item["patch"] = patch;
    if (!status) {
      json del = op("deleteAggregationGrafanaAppV0alpha1DataPlaneService", "delete", kKind,
                    json::array({query_param("dryRun", "string", "All: do not persist."),
                                 query_param("gracePeriodSeconds", "integer", "Ignored."),
                                 query_param("propagationPolicy", "string", "Orphan, Background or Foreground.")}),
                    responses({{"200", "OK"}, {"202", "Accepted"}}, obj));
      del["requestBody"] = {{"content", {{"application/json", {{"schema", schema_ref(kMeta + "DeleteOptions")}}}}}};
      item["delete"] = del;
    }
    p[base + "/{name}" + (status ? "/status" : "")] = item;
  }
  return p;
}

std::string fnv_hex(const std::string& data) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

const std::string& RestHandler::openapi_v3_document() {
  static const std::string doc = json{{"openapi", "3.0.0"},
                                      {"info", {{"title", "Grafana data plane aggregator"},
                                                {"version", kVersion}}},
                                      {"paths", paths()},
                                      {"components", {{"schemas", schemas()}}}}
                                     .dump();
  return doc;
}

const std::string& RestHandler::openapi_v3_hash() {
  static const std::string hash = fnv_hex(openapi_v3_document());
  return hash;
}

nlohmann::json RestHandler::openapi_v3_index_paths() {
  std::string gv = std::string("apis/") + kGroup + "/" + kVersion;
  return {{gv, {{"serverRelativeURL", "/openapi/v3/" + gv + "?hash=" + openapi_v3_hash()}}}};
}

}  // namespace dpa::dataplaneservice
