// The plugin.json registry: scans Grafana-layout plugin directories (reference §2.1) and resolves
// each backend plugin's binary `<dir>/<executable>_linux_<arch>`. A bad plugin.json or a missing
// binary is logged and skipped; the scan itself never fails.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace dpa::plugin {

// What plugin.json says about one plugin, plus the resolved binary.
struct PluginInfo {
  std::string id;
  std::string type;     // datasource, app, panel, ...
  std::string name;
  std::string version;  // info.version
  bool backend = false;
  std::string executable;                  // as written in plugin.json (may hold "../x")
  std::filesystem::path dir;               // directory holding plugin.json (dist/ when present)
  std::filesystem::path executable_path;   // <dir>/<executable>_linux_<arch>; empty if !backend
  nlohmann::json json = nlohmann::json::object();  // the whole plugin.json
};

// GOARCH-style name of this machine (uname): amd64, arm64, arm, 386, or the raw machine name.
std::string host_arch();

// Parses `<dir>/plugin.json`. Errors (unreadable, bad JSON, missing id/type, backend binary not
// found) are values naming the file.
api::Expected<PluginInfo> load_plugin_dir(const std::filesystem::path& dir,
                                          const std::string& arch = host_arch());

class PluginRegistry {
 public:
  // Scans each directory (the directory itself and its subdirectories, recursively, using `dist/`
  // when a plugin folder has one). The first plugin with a given id wins.
  static PluginRegistry scan(const std::vector<std::filesystem::path>& plugins_dirs,
                             const std::string& arch = host_arch());

  const std::vector<PluginInfo>& plugins() const { return plugins_; }
  const PluginInfo* find(const std::string& id) const;
  // Human-readable reasons for every skipped plugin.json (also logged).
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<PluginInfo> plugins_;
  std::vector<std::string> errors_;
};

}  // namespace dpa::plugin
