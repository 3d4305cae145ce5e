// The Kubernetes REST API of DataPlaneService (aggregation.grafana.app/v0alpha1, DESIGN §2.1):
// discovery, CRUD, patch (merge, JSON, server-side apply), /status, list and watch with their
// resourceVersion semantics, Table output and OpenAPI v3, on top of a storage::Store. Objects are
// stored as their JSON without metadata.resourceVersion, which is the record's mod_revision.
//
// Threading: handle() runs on an I/O thread and only does non-blocking reads there; every store
// write runs on the `blocking` executor, which answers the exchange directly (Exchange is
// thread-safe). The handler must outlive every exchange it was given.
#pragma once

#include "aggregator/apimachinery/request_options.h"
#include "aggregator/apimachinery/status.h"
#include "aggregator/http/exchange.h"
#include "aggregator/apimachinery/negotiation.h"
#include "aggregator/apimachinery/selectors.h"
#include "aggregator/apimachinery/table.h"
#include "aggregator/storage/store.h"
#include "aggregator/storage/watch_cache.h"

#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::obs {
class WorkerPool;
}

namespace dpa::dataplaneservice {

struct RestOptions {
  std::size_t max_body_bytes = 3 << 20;  // kube-apiserver's request body limit
  std::chrono::seconds min_watch_timeout{1800};  // watches last 1x..2x this unless timeoutSeconds
  std::chrono::seconds bookmark_interval{60};
  std::size_t max_watch_pending_bytes = 16 << 20;  // a watcher this far behind is cut off
};

// What a write produced: the HTTP code (200/201), the object, and Warning headers.
struct WriteResult {
  int code = 200;
  nlohmann::json object;
  std::vector<std::string> warnings;
};

// A decoded write request (the parts of the HTTP request the write logic needs).
struct WriteRequest {
  std::string name;         // from the URL ("" for create)
  bool status = false;      // the /status subresource
  std::string body;
  std::string content_type; // media type without parameters
  bool dry_run = false;
  std::string field_manager;  // "" = derive from user_agent
  std::string user_agent;
  api::FieldValidation validation = api::FieldValidation::kWarn;
  bool force = false;
};

class RestHandler {
 public:
  // Starts the watch cache over `store` (lists and watches are served from it).
  RestHandler(storage::Store& store, boost::asio::any_io_executor blocking, RestOptions options);
  ~RestHandler();

  // /api, /api/*, /apis/aggregation.grafana.app[/...], /openapi/v3[/...], /openapi/v2.
  bool serves(std::string_view path) const;
  void handle(std::shared_ptr<http::Exchange> exchange);

  // Discovery entries for our group, for the merged /apis: a legacy APIGroup and an
  // apidiscovery.k8s.io/v2 APIGroupDiscovery item.
  static nlohmann::json api_group();
  static nlohmann::json aggregated_discovery_group();
  static nlohmann::json api_resource_list();
  // The "paths" members of our /openapi/v3 index, for merging with a delegate's index.
  static nlohmann::json openapi_v3_index_paths();
  // The OpenAPI v3 document of aggregation.grafana.app/v0alpha1 and its hash (ETag, ?hash=).
  static const std::string& openapi_v3_document();
  static const std::string& openapi_v3_hash();

  // Sets status.conditions[type=Available] (lastTransitionTime changes only when status flips),
  // writing only if something changed. Blocking: call off I/O threads.
  api::Outcome set_available_condition(const std::string& name, bool available, std::string reason,
                                       std::string message);

  // The write operations, synchronous and blocking (exposed for tests and controllers).
  api::Expected<WriteResult> create(const WriteRequest& request);
  api::Expected<WriteResult> update(const WriteRequest& request);
  api::Expected<WriteResult> patch(const WriteRequest& request);
  api::Expected<WriteResult> remove(const WriteRequest& request);  // body = DeleteOptions or ""
  // Deletes every object matching the selectors; returns a DataPlaneServiceList of them.
  api::Expected<WriteResult> remove_collection(const std::string& label_selector,
                                               const std::string& field_selector, bool dry_run);

  // Where lists and watches are served from (for metrics).
  const storage::WatchCache& watch_cache() const { return *cache_; }

  // The object as stored (resourceVersion set), or 404: a read of the store, for callers off the
  // I/O threads (a GET request is served from the watch cache).
  api::Expected<nlohmann::json> get(const std::string& name) const;

 private:
  // A list, parsed and checked, waiting for the cache to be fresh enough.
  struct ListPlan {
    api::LabelSelector labels;
    api::FieldSelector fields;
    api::Negotiated negotiated;
    api::IncludeObject include{};
    int64_t limit = 0;
    int64_t revision = 0;  // 0: the cache's current state
    std::string start_after;
    bool continuing = false;
  };

  void handle_discovery(const std::shared_ptr<http::Exchange>& ex, std::string_view path);
  void handle_openapi(const std::shared_ptr<http::Exchange>& ex, std::string_view path);
  void handle_list(const std::shared_ptr<http::Exchange>& ex, bool force_watch,
                   const std::string& single_name);
  void handle_watch(const std::shared_ptr<http::Exchange>& ex, const api::ListRequest& request,
                    const std::string& label_selector, const std::string& field_selector);
  void serve_list(const std::shared_ptr<http::Exchange>& ex, const ListPlan& plan);
  void handle_get(const std::shared_ptr<http::Exchange>& ex, const std::string& name);
  void handle_write(const std::shared_ptr<http::Exchange>& ex, const std::string& verb,
                    const std::string& name, bool status);
  void handle_delete_collection(const std::shared_ptr<http::Exchange>& ex);

  api::Expected<WriteResult> commit_update(const storage::Record& current_record,
                                           const nlohmann::json& current, nlohmann::json candidate,
                                           const WriteRequest& request, bool apply,
                                           std::vector<std::string> warnings);

  storage::Store& store_;
  boost::asio::any_io_executor blocking_;
  RestOptions options_;
  std::unique_ptr<storage::WatchCache> cache_;
  // Ends watch sessions' cache watches (which waits for a running delivery): its own thread, so a
  // closed watch is never queued behind store writes that wait on a slow or unreachable etcd.
  // Declared after cache_: drained before the cache goes.
  std::unique_ptr<obs::WorkerPool> cancels_;
};

}  // namespace dpa::dataplaneservice
