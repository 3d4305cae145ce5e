#include "aggregator/plugin/plugin_registry.h"

#include "aggregator/observability/log.h"

#include <sys/utsname.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

namespace dpa::plugin {
namespace fs = std::filesystem;
namespace {

// Directories deeper than this below a --plugins-dir are not searched (Grafana's nested plugins,
// e.g. an app's dist/datasource/, sit two or three levels down).
constexpr int kMaxScanDepth = 4;
constexpr std::uintmax_t kMaxPluginJsonBytes = 1 << 20;

api::ApiError load_error(const fs::path& file, const std::string& why) {
  return api::ApiError::bad_request(file.string() + ": " + why);
}

std::string string_field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// Grafana joins with path semantics, so "../gpx_x" leaves dir; lexically_normal keeps it tidy.
fs::path binary_path(const fs::path& dir, const std::string& executable, const std::string& arch) {
  return (dir / (executable + "_linux_" + arch)).lexically_normal();
}

void scan_dir(const fs::path& dir, int depth, std::vector<fs::path>& found) {
  std::error_code ec;
  // Grafana uses a plugin folder's dist/ when it has one.
  fs::path plugin_dir = dir;
  if (fs::is_regular_file(dir / "dist" / "plugin.json", ec)) plugin_dir = dir / "dist";
  if (fs::is_regular_file(plugin_dir / "plugin.json", ec)) found.push_back(plugin_dir);
  if (depth >= kMaxScanDepth) return;
  // Plugins may nest (an app's datasource in dist/datasource/), so keep descending.
  std::vector<fs::path> children;
  for (fs::directory_iterator it(plugin_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    auto name = it->path().filename().string();
    if (name == "node_modules" || name.starts_with(".")) continue;
    children.push_back(it->path());
  }
  std::sort(children.begin(), children.end());  // deterministic: the first id found wins
  for (const auto& child : children) scan_dir(child, depth + 1, found);
}

}  // namespace

std::string host_arch() {
  struct utsname u{};
  if (uname(&u) != 0) return "amd64";
  std::string m = u.machine;
  if (m == "x86_64" || m == "amd64") return "amd64";
  if (m == "aarch64" || m == "arm64") return "arm64";
  if (m.starts_with("armv") || m == "arm") return "arm";
  if (m == "i386" || m == "i486" || m == "i586" || m == "i686") return "386";
  return m;
}

api::Expected<PluginInfo> load_plugin_dir(const fs::path& dir, const std::string& arch) {
  const fs::path file = dir / "plugin.json";
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  if (ec) return load_error(file, "cannot read: " + ec.message());
  if (size > kMaxPluginJsonBytes) return load_error(file, "file too large");
  std::ifstream in(file, std::ios::binary);
  if (!in) return load_error(file, "cannot open");
  std::stringstream buf;
  buf << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(buf.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return load_error(file, "invalid JSON");
  if (!j.is_object()) return load_error(file, "not a JSON object");

  PluginInfo info;
  info.id = string_field(j, "id");
  info.type = string_field(j, "type");
  info.name = string_field(j, "name");
  info.executable = string_field(j, "executable");
  if (auto it = j.find("info"); it != j.end() && it->is_object()) {
    info.version = string_field(*it, "version");
  }
  if (auto it = j.find("backend"); it != j.end()) {
    if (!it->is_boolean()) return load_error(file, "\"backend\" must be a boolean");
    info.backend = it->get<bool>();
  }
  if (info.id.empty()) return load_error(file, "missing \"id\"");
  if (info.type.empty()) return load_error(file, "missing \"type\"");
  info.dir = dir;
  if (info.backend) {
    if (info.executable.empty()) return load_error(file, "backend plugin without \"executable\"");
    info.executable_path = binary_path(dir, info.executable, arch);
    if (!fs::is_regular_file(info.executable_path, ec)) {
      return load_error(file, "plugin binary " + info.executable_path.string() + " not found");
    }
  }
  info.json = std::move(j);
  return info;
}

PluginRegistry PluginRegistry::scan(const std::vector<fs::path>& plugins_dirs,
                                    const std::string& arch) {
  PluginRegistry registry;
  std::set<std::string> seen;
  for (const auto& root : plugins_dirs) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
      registry.errors_.push_back(root.string() + ": plugins directory not found");
      obs::warn("plugins directory not found", {{"dir", root.string()}});
      continue;
    }
    std::vector<fs::path> dirs;
    scan_dir(root, 0, dirs);
    for (const auto& dir : dirs) {
      auto info = load_plugin_dir(dir, arch);
      if (!info) {
        registry.errors_.push_back(info.error().message);
        obs::error("skipping plugin", {{"dir", dir.string()}, {"error", info.error().message}});
        continue;
      }
      if (!seen.insert(info->id).second) {
        std::string why = (dir / "plugin.json").string() + ": duplicate plugin id " + info->id;
        registry.errors_.push_back(why);
        obs::warn("skipping duplicate plugin", {{"dir", dir.string()}, {"plugin", info->id}});
        continue;
      }
      obs::info("plugin found", {{"plugin", info->id},
                                 {"type", info->type},
                                 {"version", info->version},
                                 {"backend", info->backend},
                                 {"executable", info->executable_path.string()}});
      registry.plugins_.push_back(std::move(*info));
    }
  }
  return registry;
}

const PluginInfo* PluginRegistry::find(const std::string& id) const {
  for (const auto& p : plugins_) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

}  // namespace dpa::plugin
