#include "aggregator/plugin/plugin_supervisor.h"

#include "aggregator/observability/log.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

namespace dpa::plugin {
namespace {
using Clock = std::chrono::steady_clock;

std::string seconds_text(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}
}  // namespace

PluginSupervisor::PluginSupervisor(SupervisorOptions options, StatusSink sink)
    : options_(std::move(options)), sink_(std::move(sink)) {}

PluginSupervisor::~PluginSupervisor() {
  request_stop();
  join();
}

void PluginSupervisor::start() {
  if (thread_.joinable()) return;
  // The thread that forks is the one PR_SET_PDEATHSIG watches, so it must live as long as the
  // plugin does: this thread forks, supervises and stops it.
  thread_ = std::thread([this] { run(); });
}

void PluginSupervisor::request_stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  cv_.notify_all();
}

void PluginSupervisor::join() {
  if (thread_.joinable()) thread_.join();
}

bool PluginSupervisor::wait_stop(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, d, [this] { return stop_; });
}

void PluginSupervisor::publish(PluginState state, std::string message,
                               std::shared_ptr<PluginClient> client) {
  if (sink_) sink_(PluginStatus{state, std::move(message)}, std::move(client));
}

void PluginSupervisor::run() {
  const std::string& id = options_.process.plugin_id;
  auto backoff = options_.backoff.initial;
  auto stop_requested = [this] {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  };
  while (!stop_requested()) {
    publish(PluginState::kStarting, "starting plugin " + id);
    auto started = PluginProcess::start(options_.process, stop_requested);
    if (!started) {
      if (stop_requested()) break;
      const std::string& why = started.error().message;
      obs::error("plugin failed to start",
                 {{"plugin", id}, {"error", why}, {"retry_in", seconds_text(backoff)}});
      publish(PluginState::kUnavailable, why);
      if (wait_stop(backoff)) break;
      backoff = std::min(backoff * 2, options_.backoff.max);
      continue;
    }
    std::unique_ptr<PluginProcess> proc = std::move(*started);
    ++starts_;
    pid_ = proc->pid();
    obs::info("plugin started",
              {{"plugin", id}, {"pid", proc->pid()}, {"address", proc->target()}});
    auto started_at = Clock::now();
    publish(PluginState::kRunning, "", make_grpc_plugin_client(id, proc->channel(), proc->target()));

    bool stopping = false;
    while (true) {
      if (wait_stop(options_.exit_poll)) {
        stopping = true;
        break;
      }
      if (proc->exited()) break;
    }
    if (stopping) {
      publish(PluginState::kUnavailable, "plugin " + id + " is stopping");
      proc->stop(options_.stop_grace);
      obs::info("plugin stopped",
                {{"plugin", id}, {"pid", proc->pid()}, {"exit", proc->exit_description()}});
      pid_ = -1;
      break;
    }
    pid_ = -1;
    if (Clock::now() - started_at >= options_.backoff.healthy_reset) {
      backoff = options_.backoff.initial;
    }
    std::string why = "plugin " + id + " exited (" + proc->exit_description() + ")";
    proc.reset();
    obs::error("plugin exited", {{"plugin", id}, {"error", why}, {"restart_in", seconds_text(backoff)}});
    publish(PluginState::kUnavailable, why);
    if (wait_stop(backoff)) break;
    backoff = std::min(backoff * 2, options_.backoff.max);
  }
  publish(PluginState::kUnavailable, "plugin " + id + " stopped");
}

api::Expected<AttachSpec> parse_attach_spec(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
    return api::ApiError::bad_request("plugin address \"" + spec +
                                      "\": want <plugin id>=<unix:/path | host:port>");
  }
  AttachSpec out;
  out.plugin_id = spec.substr(0, eq);
  std::string addr = spec.substr(eq + 1);
  if (addr.starts_with("unix:")) {
    std::string path = addr.substr(5);
    if (path.starts_with("//")) path = path.substr(2);  // unix:///abs/path
    if (!path.starts_with("/")) {
      return api::ApiError::bad_request("plugin address \"" + spec +
                                        "\": unix socket path must be absolute");
    }
    out.target = grpc_target("unix", path);
  } else if (addr.starts_with("ipv4:") || addr.starts_with("ipv6:") || addr.starts_with("dns:")) {
    out.target = addr;
  } else {
    if (addr.starts_with("tcp:")) addr = addr.substr(4);
    auto colon = addr.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == addr.size()) {
      return api::ApiError::bad_request("plugin address \"" + spec + "\": want host:port");
    }
    out.target = grpc_target("tcp", addr);
  }
  return out;
}

AttachedPlugin::AttachedPlugin(AttachSpec spec, StatusSink sink, std::chrono::milliseconds poll)
    : spec_(std::move(spec)), sink_(std::move(sink)), poll_(poll) {}

AttachedPlugin::~AttachedPlugin() {
  request_stop();
  join();
}

void AttachedPlugin::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void AttachedPlugin::request_stop() { stop_ = true; }

void AttachedPlugin::join() {
  if (thread_.joinable()) thread_.join();
}

void AttachedPlugin::run() {
  auto channel = dial_plugin(spec_.target);
  auto client = make_grpc_plugin_client(spec_.plugin_id, channel, spec_.target);
  PluginState last = PluginState::kNotFound;
  while (!stop_) {
    auto conn = channel->GetState(/*try_to_connect=*/true);
    PluginState now = last;
    switch (conn) {
      case GRPC_CHANNEL_READY:
        now = PluginState::kRunning;
        break;
      case GRPC_CHANNEL_TRANSIENT_FAILURE:
      case GRPC_CHANNEL_SHUTDOWN:
        now = PluginState::kUnavailable;
        break;
      case GRPC_CHANNEL_IDLE:
      case GRPC_CHANNEL_CONNECTING:
        // Reconnecting after idleness is not an outage; only the first connect is "starting".
        if (last == PluginState::kNotFound) now = PluginState::kStarting;
        break;
    }
    if (now != last) {
      last = now;
      std::string message;
      if (now == PluginState::kUnavailable) {
        message = "plugin " + spec_.plugin_id + " unavailable: cannot connect to " + spec_.target;
        obs::warn("attached plugin unavailable",
                  {{"plugin", spec_.plugin_id}, {"address", spec_.target}});
      } else if (now == PluginState::kRunning) {
        obs::info("attached plugin connected",
                  {{"plugin", spec_.plugin_id}, {"address", spec_.target}});
      }
      if (sink_) {
        sink_(PluginStatus{now, message},
              now == PluginState::kRunning ? client : std::shared_ptr<PluginClient>());
      }
    }
    channel->WaitForStateChange(conn, std::chrono::system_clock::now() + poll_);
  }
  if (sink_) sink_(PluginStatus{PluginState::kUnavailable, "plugin " + spec_.plugin_id + " detached"}, {});
}

}  // namespace dpa::plugin
