// Keeps one plugin available: a PluginSupervisor owns a dedicated thread that starts the process,
// watches it, restarts it with exponential back-off when it exits, and stops it (Shutdown, grace,
// SIGKILL). An AttachedPlugin does the same for an already-running plugin given by address: no
// process, its state follows the gRPC channel's connectivity.
#pragma once

#include "aggregator/plugin/plugin_client.h"
#include "aggregator/plugin/plugin_process.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace dpa::plugin {

struct BackoffOptions {
  std::chrono::milliseconds initial{1000};
  std::chrono::milliseconds max{30000};
  // A process that ran at least this long restarts after `initial` again.
  std::chrono::milliseconds healthy_reset{60000};
};

// Told about every state change: the new status, and the client when the state is kRunning.
using StatusSink = std::function<void(PluginStatus, std::shared_ptr<PluginClient>)>;

// Common shape of the two kinds, so the host can keep one list.
class Supervisor {
 public:
  virtual ~Supervisor() = default;
  virtual void start() = 0;
  virtual void request_stop() = 0;  // non-blocking
  virtual void join() = 0;          // waits until stopped (the process is gone)
};

struct SupervisorOptions {
  ProcessOptions process;
  BackoffOptions backoff;
  std::chrono::milliseconds stop_grace = kDefaultStopGrace;
  std::chrono::milliseconds exit_poll{100};  // how often the process is checked for exit
};

class PluginSupervisor final : public Supervisor {
 public:
  PluginSupervisor(SupervisorOptions options, StatusSink sink);
  ~PluginSupervisor() override;  // request_stop() + join()

  void start() override;
  void request_stop() override;
  void join() override;

  pid_t pid() const { return pid_.load(); }  // current child, or -1
  int starts() const { return starts_.load(); }  // processes started so far

 private:
  void run();
  bool wait_stop(std::chrono::milliseconds d);  // true when stop was requested
  void publish(PluginState state, std::string message, std::shared_ptr<PluginClient> client = {});

  SupervisorOptions options_;
  StatusSink sink_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<pid_t> pid_{-1};
  std::atomic<int> starts_{0};
};

// "<plugin id>=unix:/path", "<id>=unix:///path", "<id>=tcp:host:port" or "<id>=host:port".
struct AttachSpec {
  std::string plugin_id;
  std::string target;  // gRPC target
};
api::Expected<AttachSpec> parse_attach_spec(const std::string& spec);

class AttachedPlugin final : public Supervisor {
 public:
  AttachedPlugin(AttachSpec spec, StatusSink sink,
                 std::chrono::milliseconds poll = std::chrono::milliseconds(200));
  ~AttachedPlugin() override;

  void start() override;
  void request_stop() override;
  void join() override;

 private:
  void run();

  AttachSpec spec_;
  StatusSink sink_;
  std::chrono::milliseconds poll_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace dpa::plugin
