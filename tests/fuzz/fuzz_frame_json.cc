// A frame in Grafana's JSON form (plugins may send JSON frames too) decoded, then encoded both ways.
#include "aggregator/frames/arrow_codec.h"
#include "aggregator/frames/json_codec.h"
#include "aggregator/frames/json_text.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  auto doc = frames::detail::parse_limited(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!doc) return 0;
  auto frame = frames::from_json(*doc);
  if (!frame) return 0;
  std::string json;
  frames::append_json(*frame, json);
  (void)frames::write_arrow(*frame);
  return 0;
}
