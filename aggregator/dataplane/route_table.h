// The data-plane route table: an immutable snapshot built from the decoded DataPlaneServices that
// maps a request path under /apis/{group}/{version}/ to the service type that handles it (DESIGN
// §2.2). Built once per registration change and swapped atomically; match() is a hash lookup on
// (group, version) plus a small per-service matcher, so its cost does not grow with the table.
#pragma once

#include "aggregator/dataplaneservice/types.h"
#include "aggregator/plugin/datasources.h"

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dpa::dataplane {

// What a matched path asks for. kResource and kRoute both end in Resource.CallResource.
enum class Endpoint {
  kQuery,               // POST .../datasources/{uid}/query (or connections/{uid}/query)
  kHealth,              // GET  .../datasources/{uid}/health
  kResource,            // *    .../datasources/{uid}/resources/{path...}
  kRoute,               // a spec.services[] entry of type route
  kStream,              // GET|POST .../datasources/{uid}/stream/{path...}
  kDatasourceProxy,     // *    .../datasources/{uid}/proxy/{path...}
  kMetrics,             // GET  /metrics
  kAdmissionValidate,   // POST /admission/validate
  kAdmissionMutate,     // POST /admission/mutate
  kConversion,          // POST /conversion
};
const char* endpoint_name(Endpoint endpoint);

// One DataPlaneService as the table knows it. Shared so a RouteMatch outlives a table swap.
struct ServiceEntry {
  std::string name;  // metadata.name
  dataplaneservice::Spec spec;
};

struct RouteMatch {
  std::shared_ptr<const ServiceEntry> service;
  Endpoint endpoint = Endpoint::kQuery;
  // False when the path is a data-plane path but the method is not one it accepts: the caller
  // answers 405 MethodNotAllowed with an `Allow: <allow>` header instead of delegating.
  bool method_allowed = true;
  std::string allow;  // e.g. "POST"; empty when any method is accepted
  std::string namespace_name;   // {ns}, percent-decoded; empty for cluster-level endpoints
  std::string datasource_uid;   // {uid}, percent-decoded; empty for cluster-level endpoints
  // Raw (still percent-encoded) rest of the path after resources/, stream/ or proxy/, without a
  // leading slash; empty for other endpoints. For kRoute: the path after /namespaces/{ns}.
  std::string sub_path;
  // {name} captures of a route service's path template, percent-decoded, in template order.
  std::vector<std::pair<std::string, std::string>> path_params;
  const dataplaneservice::Service* route = nullptr;  // kRoute: the matched services[] entry
  // Who the request acts as (the authenticated or impersonated user), for PluginContext.user;
  // set by the front router, never taken from request headers.
  std::optional<plugin::RequestUser> user;
};

class ServiceMatcher;

class RouteTable {
 public:
  // Entries claiming a (group, version) already claimed are ignored (validation rejects such
  // objects; if two are stored anyway the one with the smallest name wins, deterministically).
  static std::shared_ptr<const RouteTable> build(std::vector<ServiceEntry> services);
  // Same, sharing already-built entries.
  static std::shared_ptr<const RouteTable> build(
      std::vector<std::shared_ptr<const ServiceEntry>> services);
  static std::shared_ptr<const RouteTable> empty();

  // "{group}/{version}", the key a spec is routed under; nullopt when the spec has no routable
  // group/version (empty, or containing '/').
  static std::optional<std::string> route_key(const dataplaneservice::Spec& spec);
  // This table with each key routed to its entry (null: no longer routed). Only the shards that
  // hold a changed key are copied, so a change to a table of 10,000 copies about 40 entries;
  // the caller resolves competing claims (the registration controller keeps every claim).
  std::shared_ptr<const RouteTable> with_changes(
      const std::vector<std::pair<std::string, std::shared_ptr<const ServiceEntry>>>& changes)
      const;

  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Matches a request path (without query string, as received). nullopt: not a data-plane route
  // (the front router sends the request to the delegate). `method` is the HTTP method token.
  std::optional<RouteMatch> match(std::string_view method, std::string_view path) const;

  // The service owning /apis/{group}/{version}, if any (discovery, availability).
  std::shared_ptr<const ServiceEntry> find(std::string_view group, std::string_view version) const;
  std::size_t size() const { return size_; }
  std::vector<std::shared_ptr<const ServiceEntry>> services() const;

 private:
  RouteTable() = default;

  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  // Key: "{group}/{version}", which is a substring of every request path it serves, so lookups
  // need no allocation. The map is split into immutable shards shared between tables, so a
  // table derived from another copies only the shards it changes.
  using Shard =
      std::unordered_map<std::string, std::shared_ptr<const ServiceMatcher>, Hash, Equal>;
  static constexpr std::size_t kShards = 256;
  static std::size_t shard_of(std::string_view key) { return Hash{}(key) % kShards; }
  const ServiceMatcher* find_matcher(std::string_view key) const;

  std::array<std::shared_ptr<const Shard>, kShards> shards_;  // never null
  std::size_t size_ = 0;
};

}  // namespace dpa::dataplane
