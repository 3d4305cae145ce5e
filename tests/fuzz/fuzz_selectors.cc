// Label and field selectors from a query string, matched against a fixed object.
#include "aggregator/apimachinery/selectors.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  static const nlohmann::json object = {
      {"metadata", {{"name", "v1.g.example.com"}, {"labels", {{"app", "x"}, {"tier", "web"}}}}}};
  static const auto attributes = api::Attributes::of(object);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto labels = api::LabelSelector::parse(text)) (void)labels->matches(attributes);
  if (auto fields = api::FieldSelector::parse(text)) (void)fields->matches(attributes);
  return 0;
}
