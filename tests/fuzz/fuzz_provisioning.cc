// Grafana datasource provisioning files (provisioning/datasources/*.yaml), read at start and on
// every change: the input is written to a file and loaded as the aggregator loads it (YAML
// decoding, field reading with env expansion, the merge's default and uid checks), then each
// datasource becomes the PluginContext a plugin receives. A bad file is an error naming it,
// never a crash or a hang.
#include "aggregator/apimachinery/codec.h"
#include "aggregator/plugin/datasources.h"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  static const std::string path = "/tmp/dpa-fuzz-provisioning-" + std::to_string(getpid()) + ".yaml";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  // A fixed environment, so an input means the same on every machine.
  const plugin::EnvLookup env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "HOST") return "prom.local";
    if (name == "SECRET") return "s3cr3t";
    return std::nullopt;
  };
  auto loaded = plugin::load_provisioning(path, env);
  if (!loaded) {
    (void)loaded.error().body();
    return 0;
  }
  plugin::PluginInfo info;
  info.id = "prometheus";
  info.type = "datasource";
  for (const auto& ds : *loaded) {
    (void)api::dump_json(ds.settings_json());
    (void)plugin::build_plugin_context(info, &ds, nullptr, "default", {}, "Grafana/11.0.0");
  }
  return 0;
}
