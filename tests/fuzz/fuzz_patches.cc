// JSON merge patches and JSON patches applied to a DataPlaneService-shaped object.
#include "aggregator/apimachinery/patch.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  static const nlohmann::json target = nlohmann::json::parse(R"({
    "apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
    "metadata": {"name": "v1.g.example.com", "labels": {"a": "b"}},
    "spec": {"pluginID": "p", "group": "g.example.com", "version": "v1",
             "services": [{"type": "query"}, {"type": "route", "path": "/x"}]}})");
  std::string_view patch(reinterpret_cast<const char*>(data), size);
  (void)api::apply_merge_patch(target, patch);
  (void)api::apply_json_patch(target, patch);
  return 0;
}
