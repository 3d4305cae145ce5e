#include "aggregator/plugin/process_plugin_host.h"

#include "aggregator/observability/log.h"

#include <stdexcept>

namespace dpa::plugin {

ProcessPluginHost::ProcessPluginHost(PluginHostOptions options) : options_(std::move(options)) {
  for (const auto& spec : options_.plugin_addresses) {
    auto parsed = parse_attach_spec(spec);
    if (!parsed) throw std::invalid_argument(parsed.error().message);
    attach_.push_back(std::move(*parsed));
  }
}

ProcessPluginHost::~ProcessPluginHost() { stop_all(); }

void ProcessPluginHost::start_all() {
  std::vector<Supervisor*> to_start;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return;
    started_ = true;
  }
  auto registry = PluginRegistry::scan(options_.plugins_dirs);
  std::map<std::string, Entry> entries;
  for (const auto& info : registry.plugins()) {
    Entry e;
    e.info = info;
    if (!info.backend) e.status = {PluginState::kNotFound, "plugin " + info.id + " has no backend"};
    entries.emplace(info.id, std::move(e));
  }
  for (const auto& spec : attach_) {
    auto& e = entries[spec.plugin_id];
    if (e.info.id.empty()) {  // attached without a plugin.json: what we know is the id
      e.info.id = spec.plugin_id;
      e.info.type = "datasource";
      e.info.backend = true;
    }
    e.status = {PluginState::kStarting, "connecting to " + spec.target};
    auto id = spec.plugin_id;
    e.supervisor = std::make_unique<AttachedPlugin>(
        spec, [this, id](PluginStatus s, std::shared_ptr<PluginClient> c) {
          update(id, std::move(s), std::move(c));
        });
  }
  for (auto& [id, e] : entries) {
    if (e.supervisor || !e.info.backend) continue;
    SupervisorOptions so;
    so.process.plugin_id = id;
    so.process.executable = e.info.executable_path;
    so.process.start_timeout = options_.start_timeout;
    EnvOptions env;
    env.grafana_version = options_.grafana_version;
    env.extra = options_.extra_env;
    if (auto it = options_.plugin_settings.find(id); it != options_.plugin_settings.end()) {
      env.plugin_settings = it->second;
    }
    so.process.env = build_plugin_env(env);
    so.backoff = options_.backoff;
    so.stop_grace = options_.stop_grace;
    so.exit_poll = options_.exit_poll;
    e.status = {PluginState::kStarting, "starting plugin " + id};
    auto sup = std::make_unique<PluginSupervisor>(
        std::move(so), [this, id = id](PluginStatus s, std::shared_ptr<PluginClient> c) {
          update(id, std::move(s), std::move(c));
        });
    e.process = sup.get();
    e.supervisor = std::move(sup);
  }
  std::vector<std::pair<std::string, PluginStatus>> initial;
  std::vector<std::function<void(const std::string&, PluginStatus)>> callbacks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries_ = std::move(entries);
    for (auto& [id, e] : entries_) {
      if (e.supervisor) to_start.push_back(e.supervisor.get());
      initial.emplace_back(id, e.status);
    }
    callbacks = callbacks_;
  }
  // Listeners registered before start_all learn every plugin's first status too.
  for (const auto& [id, status] : initial) {
    for (const auto& cb : callbacks) cb(id, status);
  }
  // Started outside the lock: the first status callbacks take it.
  for (auto* s : to_start) s->start();
}

void ProcessPluginHost::stop_all() {
  std::vector<Supervisor*> sups;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, e] : entries_) {
      if (e.supervisor) sups.push_back(e.supervisor.get());
    }
  }
  // In parallel: every plugin gets its Shutdown and grace period at the same time.
  for (auto* s : sups) s->request_stop();
  for (auto* s : sups) s->join();
}

void ProcessPluginHost::update(const std::string& id, PluginStatus status,
                               std::shared_ptr<PluginClient> client) {
  std::vector<std::function<void(const std::string&, PluginStatus)>> callbacks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;  // start_all has not published the entries yet
    auto& e = it->second;
    bool changed = e.status.state != status.state || e.status.message != status.message;
    e.status = status;
    e.client = status.state == PluginState::kRunning ? std::move(client) : nullptr;
    if (!changed) return;
    callbacks = callbacks_;
  }
  for (const auto& cb : callbacks) cb(id, status);
}

std::shared_ptr<PluginClient> ProcessPluginHost::client(const std::string& plugin_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(plugin_id);
  return it == entries_.end() ? nullptr : it->second.client;
}

PluginStatus ProcessPluginHost::status(const std::string& plugin_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(plugin_id);
  if (it == entries_.end()) {
    return {PluginState::kNotFound, "plugin " + plugin_id + " not found"};
  }
  return it->second.status;
}

std::optional<PluginInfo> ProcessPluginHost::info(const std::string& plugin_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(plugin_id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.info;
}

void ProcessPluginHost::on_status_change(std::function<void(const std::string&, PluginStatus)> cb) {
  std::lock_guard<std::mutex> lock(mu_);
  callbacks_.push_back(std::move(cb));
}

std::vector<std::string> ProcessPluginHost::plugin_ids() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, e] : entries_) ids.push_back(id);
  return ids;
}

pid_t ProcessPluginHost::pid(const std::string& plugin_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(plugin_id);
  if (it == entries_.end() || it->second.process == nullptr) return -1;
  return it->second.process->pid();
}

}  // namespace dpa::plugin
