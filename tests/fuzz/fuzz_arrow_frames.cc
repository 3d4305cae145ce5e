// A plugin's Arrow IPC frame (QueryDataResponse.frames) read, then written as Grafana's frame JSON
// and back to Arrow: every byte a plugin sends is outside data.
#include "aggregator/frames/arrow_codec.h"
#include "aggregator/frames/json_codec.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  auto frame = frames::read_arrow(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!frame) return 0;
  std::string json;
  frames::append_json(*frame, json);
  (void)frames::write_arrow(*frame);
  return 0;
}
