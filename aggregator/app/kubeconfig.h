// Writes <data-dir>/aggregator.kubeconfig on start so `kubectl --kubeconfig` works at once
// (DESIGN §3). Written to a temporary file and renamed, so a reader never sees half a file.
#pragma once

#include <string>

namespace dpa::app {

// server: "http://127.0.0.1:8080" or "https://..."; ca_file: CA to trust for https (may be empty);
// token: bearer token of its user (may be empty). The file is 0600: it may hold a credential.
void write_kubeconfig(const std::string& path, const std::string& server, const std::string& ca_file,
                      const std::string& token);

// The admin token of a deployment started without authentication flags (DESIGN §6, secure by
// default): read from `path`, or generated there (256 random bits, hex, mode 0600) on first start.
std::string load_or_create_admin_token(const std::string& path);

}  // namespace dpa::app
