// Grafana datasource provisioning (provisioning/datasources/*.yaml, apiVersion 1): parsed into an
// immutable DatasourceSet snapshot that readers take without locking, re-read when the files change
// (a bad file keeps the previous snapshot). Also builds the PluginContext of reference §1.2/§2.8.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/plugin/plugin_registry.h"

#include "plugins/proto/backend.pb.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace dpa::plugin {

struct Datasource {
  std::int64_t id = 0;  // Grafana's numeric id (deprecated): stable for the life of the process
  std::string uid;      // generated from orgId+name when the file has none
  std::string name;
  std::string type;     // plugin id
  std::string access;   // proxy / direct
  std::string url;
  std::string user;
  std::string database;
  bool basic_auth = false;
  std::string basic_auth_user;
  bool with_credentials = false;
  bool is_default = false;
  bool editable = false;
  std::int64_t org_id = 1;
  std::int64_t version = 0;
  std::string api_version;
  nlohmann::json json_data = nlohmann::json::object();
  std::map<std::string, std::string> secure_json_data;  // decrypted (provisioning holds plain text)
  std::int64_t last_updated_ms = 0;  // bumped whenever the settings above change

  // Every setting except id and last_updated_ms, for change detection.
  nlohmann::json settings_json() const;
};

struct RequestUser {
  std::string login;
  std::string name;
  std::string email;
  std::string role;  // Viewer, Editor, Admin
};

class DatasourceSet {
 public:
  DatasourceSet() = default;
  explicit DatasourceSet(std::vector<Datasource> datasources);
  // By uid; with org_id > 0 only that org's datasource. nullptr when absent. The pointer lives as
  // long as the snapshot.
  const Datasource* find(std::string_view uid, std::int64_t org_id = 0) const;
  const std::vector<Datasource>& all() const { return datasources_; }

 private:
  std::vector<Datasource> datasources_;
};

// Grafana's env expansion of provisioning values: $VAR and ${VAR} (unset -> ""), "$$" -> "$",
// plus $__env{VAR} and $__file{path}.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
std::string expand_env(std::string_view value, const EnvLookup& env);
EnvLookup process_env();

// One file's content. `deletes` are {name, orgId} of deleteDatasources.
struct ProvisioningFile {
  std::vector<Datasource> datasources;
  std::vector<std::pair<std::string, std::int64_t>> deletes;
};
api::Expected<ProvisioningFile> parse_provisioning_yaml(std::string_view text,
                                                        const std::string& source,
                                                        const EnvLookup& env = process_env());
// A file, or every *.yaml/*.yml of a directory in name order, merged as Grafana applies them:
// per file, its deletes first, then its datasources (same orgId+name replaces). Validates one
// default per org and unique uids per org. lastUpdatedMS is not set here.
api::Expected<std::vector<Datasource>> load_provisioning(const std::filesystem::path& path,
                                                         const EnvLookup& env = process_env());

// Owns the current snapshot of a provisioning path and keeps it fresh.
class DatasourceProvider {
 public:
  explicit DatasourceProvider(std::filesystem::path path, EnvLookup env = process_env());
  ~DatasourceProvider();  // stop_watching()

  // Re-reads now. On error the previous snapshot stays and the error is returned (and logged).
  api::Outcome reload();
  // Polls the files' mtimes and sizes every `interval` on a background thread; reloads on change.
  void start_watching(std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
  void stop_watching();

  std::shared_ptr<const DatasourceSet> snapshot() const { return snapshot_.load(); }
  std::optional<Datasource> find(std::string_view uid, std::int64_t org_id = 0) const;
  // Called (on the reloading thread) after every successful reload that changed something.
  void on_change(std::function<void(std::shared_ptr<const DatasourceSet>)> cb);

 private:
  std::string fingerprint() const;
  void watch_loop(std::chrono::milliseconds interval);

  std::filesystem::path path_;
  EnvLookup env_;
  std::atomic<std::shared_ptr<const DatasourceSet>> snapshot_;
  std::mutex reload_mu_;  // serialises reloads; guards ids_ and callbacks_
  std::map<std::string, std::int64_t> ids_;  // "<org>/<uid>" -> id, stable across reloads
  std::int64_t next_id_ = 1;
  std::vector<std::function<void(std::shared_ptr<const DatasourceSet>)>> callbacks_;
  std::thread watcher_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stop_ = false;
  std::string last_fingerprint_;
};

// "default" -> 1, "org-<n>" -> n; anything else (e.g. "stacks-<n>") -> 1.
std::int64_t org_id_from_namespace(std::string_view ns);

// "Grafana/<version> (linux; <arch>)", the user agent the Go SDK parses (reference §1.2).
std::string grafana_user_agent(const std::string& grafana_version);

// PluginContext per reference §1.2/§2.8: pluginId, pluginVersion, orgId (the datasource's, else
// 1), dataSourceInstanceSettings (or appInstanceSettings for an app plugin without datasource),
// user when given, grafanaConfig, userAgent, namespace.
pluginv2::PluginContext build_plugin_context(const PluginInfo& plugin, const Datasource* ds,
                                             const RequestUser* user, const std::string& ns,
                                             const std::map<std::string, std::string>& grafana_config,
                                             const std::string& user_agent);

}  // namespace dpa::plugin
