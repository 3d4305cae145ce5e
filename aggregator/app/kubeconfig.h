// Writes <data-dir>/aggregator.kubeconfig on start so `kubectl --kubeconfig` works at once
// (DESIGN §3). Written to a temporary file and renamed, so a reader never sees half a file.
#pragma once

#include <string>

namespace dpa::app {

// server: "http://127.0.0.1:8080" or "https://..."; ca_file: CA to trust for https (may be empty).
void write_kubeconfig(const std::string& path, const std::string& server, const std::string& ca_file);

}  // namespace dpa::app
