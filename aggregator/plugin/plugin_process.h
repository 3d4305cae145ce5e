// One run of a backend plugin binary (reference §2.3-2.6): fork+exec in its own process group with
// PR_SET_PDEATHSIG, the go-plugin environment, stdout/stderr pipes drained by a reader thread, the
// handshake line read under a start timeout, and an insecure gRPC channel to the announced address.
// All methods that wait are for the supervisor thread only, never an I/O thread.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/plugin/handshake.h"
#include "aggregator/plugin/plugin_log.h"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace grpc {
class Channel;
}

namespace dpa::plugin {

constexpr std::chrono::milliseconds kDefaultStartTimeout{60000};  // go-plugin's StartTimeout
constexpr std::chrono::milliseconds kDefaultStopGrace{2000};      // go-plugin's Kill() wait

struct EnvOptions {
  std::string grafana_version;                      // GF_VERSION
  std::map<std::string, std::string> extra;         // added as-is, overriding the host env
  std::map<std::string, std::string> plugin_settings;  // [plugin.<id>] keys -> GF_PLUGIN_<KEY>
};

// The child's environment as go-plugin builds it for Grafana: host env minus PLUGIN_CLIENT_CERT and
// PLUGIN_MULTIPLEX_GRPC, GF_VERSION, GF_PLUGIN_* (an existing env var of that name wins), extras,
// then the handshake variables. `host_env` is a NULL-terminated "K=V" array (environ by default).
std::vector<std::string> build_plugin_env(const EnvOptions& options,
                                          const char* const* host_env = nullptr);

struct ProcessOptions {
  std::string plugin_id;
  std::filesystem::path executable;
  std::vector<std::string> env;  // complete "K=V" list
  std::chrono::milliseconds start_timeout = kDefaultStartTimeout;
};

// The channel the host uses for plugins: plaintext, max send/receive message size INT32_MAX.
std::shared_ptr<grpc::Channel> dial_plugin(const std::string& target);

class PluginProcess {
 public:
  // Spawns the binary and waits (up to start_timeout, or until `cancelled()` turns true) for a
  // valid handshake line, then dials. Exiting first, a bad line, or a timeout is an error that
  // says so (quoting the line and the last stderr lines); the child is then killed and reaped.
  static api::Expected<std::unique_ptr<PluginProcess>> start(
      const ProcessOptions& options, const std::function<bool()>& cancelled = {});

  PluginProcess(const PluginProcess&) = delete;
  PluginProcess& operator=(const PluginProcess&) = delete;
  // Kills the process group and reaps the child if it is still there; joins the reader thread.
  ~PluginProcess();

  pid_t pid() const { return pid_; }
  const Handshake& handshake() const { return handshake_; }
  const std::string& target() const { return target_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  // Non-blocking. True once the process has exited; it is then reaped (and its group killed).
  bool exited();
  // "exit code N" / "killed by signal N" once exited() is true.
  const std::string& exit_description() const { return exit_description_; }

  // Grafana's Kill(): GRPCController/Shutdown (errors ignored), wait up to `grace` for the exit,
  // then SIGKILL the group; always reaps. Blocking.
  void stop(std::chrono::milliseconds grace = kDefaultStopGrace);

 private:
  explicit PluginProcess(ProcessOptions options);
  api::Outcome spawn();
  void read_loop();
  void on_stdout_line(std::string line);
  void on_stderr_line(const std::string& line);
  void kill_and_reap();
  std::string recent_stderr() const;

  ProcessOptions options_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string exit_description_;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::thread reader_;
  std::atomic<bool> stop_reader_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool have_handshake_line_ = false;
  bool stdout_closed_ = false;
  std::string handshake_line_;
  std::deque<std::string> last_stderr_;
  PluginLogParser log_parser_;  // reader thread only

  Handshake handshake_;
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace dpa::plugin
