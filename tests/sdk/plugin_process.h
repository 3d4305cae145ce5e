// Test helper: starts a plugin binary the way a host does (go-plugin env, stdout/stderr pipes),
// reads its handshake line and opens a gRPC channel to the announced address.
#pragma once

#include <grpcpp/grpcpp.h>

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace dpa::sdk::testing {

class PluginProcess {
 public:
  struct Options {
    bool with_cookie = true;
    std::vector<std::string> extra_env;  // "KEY=value"
    std::chrono::milliseconds handshake_timeout{15000};
  };

  // Starts `binary`. With a cookie, waits for the handshake line (empty handshake() on failure).
  static std::unique_ptr<PluginProcess> start(const std::string& binary, const Options& options);
  static std::unique_ptr<PluginProcess> start(const std::string& binary) {
    return start(binary, Options{});
  }
  ~PluginProcess();  // SIGKILLs and reaps a process still running

  const std::string& handshake() const { return handshake_; }
  // Fields of the handshake line split on '|'.
  std::vector<std::string> handshake_fields() const;
  std::string network() const;
  std::string address() const;
  pid_t pid() const { return pid_; }

  std::shared_ptr<grpc::Channel> channel();
  // Waits for the process to exit; its wait status, or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();
  std::string stderr_text();
  void signal(int sig);

 private:
  PluginProcess() = default;
  void drain();

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::optional<int> exit_status_;
  std::string handshake_;
  std::mutex mutex_;
  std::string stdout_buffer_;  // guarded by mutex_
  std::string stderr_buffer_;  // guarded by mutex_
  std::thread drainer_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace dpa::sdk::testing
