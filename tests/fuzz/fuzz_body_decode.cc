// A DataPlaneService request body as the API decodes it: JSON or YAML (aliases, tags, deep
// nesting), type meta, unknown fields, validation, and the object written back as JSON and YAML.
#include "aggregator/apimachinery/codec.h"
#include "aggregator/dataplaneservice/types.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto object = api::decode_body(body);
  if (!object) {
    (void)object.error().body();
    return 0;
  }
  if (auto ok = dataplaneservice::check_type_meta(*object); !ok) {
    (void)ok.error().body();
  }
  (void)dataplaneservice::unknown_fields(*object);
  if (auto ok = dataplaneservice::validate(*object); !ok) (void)ok.error().body();
  if (auto ok = dataplaneservice::validate_status(*object); !ok) (void)ok.error().body();
  (void)api::dump_json(*object);
  (void)api::to_yaml(*object);
  return 0;
}
