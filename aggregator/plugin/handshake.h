// The go-plugin handshake line a plugin prints first on stdout (reference §2.4 step 5, §2.5 step 3):
// `CORE|APP|NETWORK|ADDR|PROTOCOL[|CERT[|MUX]]`, e.g. `1|2|unix|/tmp/plugin123|grpc|`.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <string>
#include <string_view>

namespace dpa::plugin {

constexpr int kCoreProtocolVersion = 1;
constexpr int kAppProtocolVersion = 2;  // Grafana's pluginv2

struct Handshake {
  int core_version = 0;
  int app_version = 0;
  std::string network;   // "unix" or "tcp"
  std::string address;   // socket path or host:port
  std::string protocol;  // always "grpc" once accepted
};

// Validates the line exactly as go-plugin's client does; every error quotes the line.
api::Expected<Handshake> parse_handshake(std::string_view line);

// The gRPC target for a network/address pair: "unix:/path", "ipv4:1.2.3.4:5", "ipv6:[::1]:5",
// or "dns:///host:port" for a name.
std::string grpc_target(const std::string& network, const std::string& address);

}  // namespace dpa::plugin
