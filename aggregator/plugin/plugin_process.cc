#include "aggregator/plugin/plugin_process.h"

#include "aggregator/plugin/plugin_log.h"

#include "plugins/proto/grpc_controller.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

extern char** environ;

namespace dpa::plugin {
namespace {

using Clock = std::chrono::steady_clock;

// A plugin that writes a line longer than this without a newline gets it split; keeps the reader's
// memory bounded whatever the plugin prints.
constexpr std::size_t kMaxLineBytes = 64 * 1024;
constexpr std::size_t kRecentStderrLines = 5;
constexpr std::chrono::milliseconds kReaderPoll{100};
constexpr std::chrono::milliseconds kStartPoll{50};
// Once a plugin has announced its address it is listening: connecting should be immediate.
constexpr std::chrono::milliseconds kMaxConnectWait{10000};
constexpr std::chrono::milliseconds kMaxShutdownRpc{1000};

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return "killed by signal " + std::to_string(WTERMSIG(status)) +
           (name ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "status " + std::to_string(status);
}

// Runs in the forked child: only async-signal-safe calls until execve.
[[noreturn]] void exec_child(pid_t parent, int out_w, int err_w, const char* path, char** argv,
                             char** envp) {
  // Own process group, so the host can kill everything the plugin started at once.
  setpgid(0, 0);
  // Die with the host (strictly: with the host thread that forked us, the supervisor thread).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  dup2(out_w, STDOUT_FILENO);
  dup2(err_w, STDERR_FILENO);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);  // SIGKILL/SIGSTOP fail
  if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
    for (int fd = 3; fd < 65536; ++fd) close(fd);
  }
  execve(path, argv, envp);
  static const char kMsg[] = "cannot execute plugin binary\n";
  ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
  (void)ignored;
  _exit(127);
}

}  // namespace

std::vector<std::string> build_plugin_env(const EnvOptions& options, const char* const* host_env) {
  if (host_env == nullptr) host_env = environ;
  std::map<std::string, std::string> env;
  for (const char* const* e = host_env; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    std::string key(kv.substr(0, eq));
    // Reference §2.3: a Go plugin seeing these switches on mTLS or a 7th handshake field.
    if (key == "PLUGIN_CLIENT_CERT" || key == "PLUGIN_MULTIPLEX_GRPC") continue;
    env.emplace(std::move(key), std::string(kv.substr(eq + 1)));
  }
  for (const auto& [key, value] : options.plugin_settings) {
    if (key == "path" || key == "id") continue;
    std::string name = "GF_PLUGIN_" + key;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    env.emplace(std::move(name), value);  // an existing process env var of that name wins
  }
  if (!options.grafana_version.empty()) env["GF_VERSION"] = options.grafana_version;
  for (const auto& [key, value] : options.extra) env[key] = value;
  env["grafana_plugin_type"] = "datasource";
  env["PLUGIN_MIN_PORT"] = "10000";
  env["PLUGIN_MAX_PORT"] = "25000";
  env["PLUGIN_PROTOCOL_VERSIONS"] = "2";
  std::vector<std::string> out;
  out.reserve(env.size());
  for (auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

std::shared_ptr<grpc::Channel> dial_plugin(const std::string& target) {
  grpc::ChannelArguments args;
  // Reference §2.5 step 5 / §7.5: Grafana uses MaxInt32 both ways; gRPC C++ defaults to 4 MiB.
  args.SetMaxReceiveMessageSize(INT_MAX);
  args.SetMaxSendMessageSize(INT_MAX);
  // Plugins are local: reconnect quickly, and never share a subchannel with an earlier process.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

PluginProcess::PluginProcess(ProcessOptions options) : options_(std::move(options)) {}

PluginProcess::~PluginProcess() {
  channel_.reset();
  if (pid_ > 0) kill_and_reap();
  stop_reader_ = true;
  if (reader_.joinable()) reader_.join();
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (stderr_fd_ >= 0) close(stderr_fd_);
}

api::Outcome PluginProcess::spawn() {
  int out[2];
  int err[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    return api::ApiError::internal(std::string("pipe: ") + strerror(errno));
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    close(out[0]);
    close(out[1]);
    return api::ApiError::internal(std::string("pipe: ") + strerror(e));
  }
  // Everything the child needs is prepared before fork: it may not allocate afterwards.
  std::string path = options_.executable.string();
  std::vector<char*> argv{path.data(), nullptr};
  std::vector<std::string> env = options_.env;
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) exec_child(parent, out[1], err[1], path.c_str(), argv.data(), envp.data());
  int fork_errno = errno;
  close(out[1]);
  close(err[1]);
  if (pid < 0) {
    close(out[0]);
    close(err[0]);
    return api::ApiError::internal(std::string("fork: ") + strerror(fork_errno));
  }
  setpgid(pid, pid);  // also from the parent, so a kill(-pid) right away cannot miss
  pid_ = pid;
  stdout_fd_ = out[0];
  stderr_fd_ = err[0];
  reader_ = std::thread([this] { read_loop(); });
  return api::Ok{};
}

void PluginProcess::read_loop() {
  std::string out_buf;
  std::string err_buf;
  bool out_open = true;
  bool err_open = true;
  char chunk[8192];
  auto drain_lines = [](std::string& buf, bool eof, const auto& emit) {
    std::size_t start = 0;
    while (true) {
      auto nl = buf.find('\n', start);
      if (nl == std::string::npos) break;
      emit(buf.substr(start, nl - start));
      start = nl + 1;
    }
    buf.erase(0, start);
    if (buf.size() >= kMaxLineBytes || (eof && !buf.empty())) {
      emit(std::move(buf));
      buf.clear();
    }
  };
  auto on_out = [this](std::string line) { on_stdout_line(std::move(line)); };
  auto on_err = [this](const std::string& line) { on_stderr_line(line); };

  while ((out_open || err_open) && !stop_reader_) {
    pollfd fds[2];
    int n = 0;
    int out_idx = -1;
    int err_idx = -1;
    if (out_open) {
      out_idx = n;
      fds[n++] = {stdout_fd_, POLLIN, 0};
    }
    if (err_open) {
      err_idx = n;
      fds[n++] = {stderr_fd_, POLLIN, 0};
    }
    int r = poll(fds, static_cast<nfds_t>(n), static_cast<int>(kReaderPoll.count()));
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t k = read(fds[i].fd, chunk, sizeof chunk);
      if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      bool eof = k <= 0;
      if (i == out_idx) {
        if (k > 0) out_buf.append(chunk, static_cast<std::size_t>(k));
        drain_lines(out_buf, eof, on_out);
        if (eof) out_open = false;
      } else if (i == err_idx) {
        if (k > 0) err_buf.append(chunk, static_cast<std::size_t>(k));
        drain_lines(err_buf, eof, on_err);
        if (eof) err_open = false;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  stdout_closed_ = true;
  cv_.notify_all();
}

void PluginProcess::on_stdout_line(std::string line) {
  // Only the first line matters (the handshake); the rest is drained and discarded, as go-plugin
  // does, so the child never blocks on a full pipe.
  std::lock_guard<std::mutex> lock(mu_);
  if (have_handshake_line_) return;
  handshake_line_ = std::move(line);
  have_handshake_line_ = true;
  cv_.notify_all();
}

void PluginProcess::on_stderr_line(const std::string& line) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_stderr_.push_back(line.substr(0, 300));
    if (last_stderr_.size() > kRecentStderrLines) last_stderr_.pop_front();
  }
  relog_plugin_line(log_parser_, options_.plugin_id, line);
}

std::string PluginProcess::recent_stderr() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (last_stderr_.empty()) return {};
  std::string s = "; last stderr: ";
  for (std::size_t i = 0; i < last_stderr_.size(); ++i) {
    if (i) s += " | ";
    s += last_stderr_[i];
  }
  return s;
}

api::Expected<std::unique_ptr<PluginProcess>> PluginProcess::start(
    const ProcessOptions& options, const std::function<bool()>& cancelled) {
  std::unique_ptr<PluginProcess> proc(new PluginProcess(options));
  const std::string who = "plugin " + options.plugin_id + ": ";
  if (auto spawned = proc->spawn(); !spawned) {
    auto e = spawned.error();
    e.message = who + "cannot start " + options.executable.string() + ": " + e.message;
    return e;
  }
  const auto deadline = Clock::now() + options.start_timeout;
  std::string line;
  while (true) {
    bool stdout_closed = false;
    {
      std::unique_lock<std::mutex> lock(proc->mu_);
      proc->cv_.wait_for(lock, kStartPoll,
                         [&] { return proc->have_handshake_line_ || proc->stdout_closed_; });
      if (proc->have_handshake_line_) {
        line = proc->handshake_line_;
        break;
      }
      stdout_closed = proc->stdout_closed_;
    }
    if (proc->exited() || stdout_closed) {
      // Give the exit status a moment to become visible when stdout closed first.
      for (int i = 0; i < 20 && !proc->exited(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      std::string why = proc->reaped_ ? "plugin exited before we could connect (" +
                                            proc->exit_description_ + ")"
                                      : "plugin closed stdout before printing its handshake line";
      return api::ApiError::unavailable(who + why + proc->recent_stderr());
    }
    if (cancelled && cancelled()) return api::ApiError::unavailable(who + "start cancelled");
    if (Clock::now() >= deadline) {
      return api::ApiError::unavailable(
          who + "timed out after " + std::to_string(options.start_timeout.count()) +
          " ms waiting for the handshake line" + proc->recent_stderr());
    }
  }
  auto hs = parse_handshake(line);
  if (!hs) {
    auto e = std::move(hs).error();
    e.message = who + e.message + proc->recent_stderr();
    return e;
  }
  proc->handshake_ = std::move(*hs);
  proc->target_ = grpc_target(proc->handshake_.network, proc->handshake_.address);
  proc->channel_ = dial_plugin(proc->target_);
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto wait = std::clamp(remaining, std::chrono::milliseconds(100), kMaxConnectWait);
  if (!proc->channel_->WaitForConnected(std::chrono::system_clock::now() + wait)) {
    return api::ApiError::unavailable(who + "announced " + proc->target_ +
                                      " but cannot be reached" + proc->recent_stderr());
  }
  return proc;
}

bool PluginProcess::exited() {
  if (reaped_) return true;
  if (pid_ <= 0) return true;
  siginfo_t info{};
  // WNOWAIT: look without reaping, so the zombie still pins the process group id while we kill
  // whatever the plugin left running in it.
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno == ECHILD) {  // reaped by someone else (e.g. SIGCHLD ignored)
      reaped_ = true;
      exit_description_ = "exit status unknown";
      return true;
    }
    return false;
  }
  if (info.si_pid != pid_) return false;
  kill(-pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  exit_description_ = describe_wait_status(status);
  return true;
}

void PluginProcess::kill_and_reap() {
  if (reaped_ || pid_ <= 0) return;
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  exit_description_ = r == pid_ ? describe_wait_status(status) : "exit status unknown";
}

void PluginProcess::stop(std::chrono::milliseconds grace) {
  if (exited()) return;
  if (channel_) {
    ::plugin::GRPCController::Stub controller(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::min(grace, kMaxShutdownRpc));
    ::plugin::Empty req;
    ::plugin::Empty resp;
    controller.Shutdown(&ctx, req, &resp);  // errors ignored, as go-plugin does
  }
  const auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (exited()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill_and_reap();
}

}  // namespace dpa::plugin
