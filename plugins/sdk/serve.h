// serve(): the main loop of a C++ Grafana backend plugin. It performs the go-plugin handshake
// (cookie check, version 2, listen, print `1|2|unix|<path>|grpc|`), serves the handlers' pluginv2
// services plus Health("plugin") and GRPCController over plaintext gRPC, and returns when the host
// calls Shutdown or sends SIGTERM (reference grafana-plugin-protocol.md §2.4, §2.7).
#pragma once

#include "plugins/sdk/handlers.h"

#include <chrono>
#include <string>

namespace dpa::sdk {

inline constexpr int kDefaultMaxReceiveBytes = 16 * 1024 * 1024;  // the Go SDK's default

struct ServeOptions {
  std::string plugin_id;  // for logs ("@module": "plugin.<id>")
  // Handlers are borrowed and must outlive serve(). Null ones are not registered (UNIMPLEMENTED),
  // except Diagnostics, which is always served: health answers OK and metrics are empty without
  // handlers, as the Go SDK does.
  QueryDataHandler* query_data = nullptr;
  CheckHealthHandler* check_health = nullptr;
  CollectMetricsHandler* collect_metrics = nullptr;
  CallResourceHandler* call_resource = nullptr;
  StreamHandler* stream = nullptr;
  AdmissionHandler* admission = nullptr;
  ConversionHandler* conversion = nullptr;

  // Listen on TCP 127.0.0.1 (a free port) instead of a Unix socket in the temp directory. The
  // environment variable DPA_PLUGIN_NETWORK=tcp asks for the same (for hosts and tests that want
  // a TCP handshake from an unmodified binary).
  bool use_tcp = false;
  int max_receive_bytes = kDefaultMaxReceiveBytes;
  // How long calls in flight (e.g. RunStream) get to finish after Shutdown before being cancelled.
  std::chrono::milliseconds shutdown_grace{500};
};

// Runs the plugin; returns the process exit code (0 after a clean stop, 1 when not started by a
// plugin host or when the server cannot start). Call it first thing in main(): it must print the
// handshake line before anything else reaches stdout. Never write to stdout yourself.
int serve(const ServeOptions& options);

// The message printed (to stderr) when the binary is run without the host's magic cookie.
extern const char* const kNotAPluginHostMessage;

}  // namespace dpa::sdk
