// The production PluginHost: scans --plugins-dir for plugin.json, runs one PluginSupervisor per
// backend plugin and one AttachedPlugin per --plugin-address, and publishes their status.
// start_all()/stop_all() are called by the app at start-up and shutdown (not on an I/O thread).
#pragma once

#include "aggregator/plugin/plugin_client.h"
#include "aggregator/plugin/plugin_registry.h"
#include "aggregator/plugin/plugin_supervisor.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dpa::plugin {

struct PluginHostOptions {
  std::vector<std::filesystem::path> plugins_dirs;
  std::vector<std::string> plugin_addresses;  // "<plugin id>=unix:/path" | "<plugin id>=host:port"
  std::chrono::milliseconds start_timeout = kDefaultStartTimeout;
  std::string grafana_version = "12.0.0";     // GF_VERSION
  std::map<std::string, std::string> extra_env;  // added to every plugin's environment
  // Grafana's [plugin.<id>] sections: id -> key -> value, passed as GF_PLUGIN_<KEY>.
  std::map<std::string, std::map<std::string, std::string>> plugin_settings;
  BackoffOptions backoff;
  std::chrono::milliseconds stop_grace = kDefaultStopGrace;
  std::chrono::milliseconds exit_poll{100};
};

class ProcessPluginHost final : public PluginHost {
 public:
  // Throws std::invalid_argument for a malformed plugin address (start-up configuration).
  explicit ProcessPluginHost(PluginHostOptions options);
  ~ProcessPluginHost() override;  // stop_all()

  // Scans the plugin directories and starts every backend plugin and attachment (non-blocking:
  // processes come up on their supervisor threads; watch on_status_change or status()).
  void start_all();
  // Stops every plugin in parallel (Shutdown, grace, SIGKILL) and waits until all are gone.
  void stop_all();

  std::shared_ptr<PluginClient> client(const std::string& plugin_id) override;
  PluginStatus status(const std::string& plugin_id) const override;
  std::optional<PluginInfo> info(const std::string& plugin_id) const override;
  void on_status_change(std::function<void(const std::string&, PluginStatus)> cb) override;

  std::vector<std::string> plugin_ids() const;
  // The current process id of a supervised plugin, -1 when none (attached, stopped, unknown).
  pid_t pid(const std::string& plugin_id) const;

 private:
  struct Entry {
    PluginInfo info;
    PluginStatus status;
    std::shared_ptr<PluginClient> client;
    std::unique_ptr<Supervisor> supervisor;
    PluginSupervisor* process = nullptr;  // same object as supervisor when it runs a process
  };
  void update(const std::string& id, PluginStatus status, std::shared_ptr<PluginClient> client);

  PluginHostOptions options_;
  std::vector<AttachSpec> attach_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::vector<std::function<void(const std::string&, PluginStatus)>> callbacks_;
  bool started_ = false;
};

}  // namespace dpa::plugin
