// A tiny pluginv2 plugin for the tests, built into plugin_test itself: run as a child process (the
// test binary re-executed with DPA_TEST_FAKE_PLUGIN=1) it does the go-plugin handshake over a unix
// socket; in-process it serves the same services on a TCP port for attach tests.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace dpa::plugin::testing {

// main() of the child mode. Returns the exit code.
int run_fake_plugin_process();

// A server in this process with Data/Resource/Stream/Diagnostics/Health/GRPCController; port 0.
class InProcessFakePlugin {
 public:
  InProcessFakePlugin();
  ~InProcessFakePlugin();
  int port() const { return port_; }
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace dpa::plugin::testing
