// The go-plugin handshake line a plugin prints first on stdout (`CORE|APP|NETWORK|ADDR|PROTOCOL`),
// as the plugin host reads it: parse_handshake, then the gRPC target built from an accepted line
// and the HTTP/2 channel's reading of that target. A refused line becomes a Status body that
// quotes it (plugins can print any bytes, invalid UTF-8 included).
#include "aggregator/plugin/h2_unary_channel.h"
#include "aggregator/plugin/handshake.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto handshake = plugin::parse_handshake(line);
  if (!handshake) {
    (void)handshake.error().body();
    return 0;
  }
  (void)plugin::parse_h2_target(plugin::grpc_target(handshake->network, handshake->address));
  return 0;
}
