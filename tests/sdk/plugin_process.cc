#include "tests/sdk/plugin_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <sstream>

extern char** environ;

namespace dpa::sdk::testing {

std::unique_ptr<PluginProcess> PluginProcess::start(const std::string& binary,
                                                    const Options& options) {
  std::unique_ptr<PluginProcess> p(new PluginProcess());
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) return p;

  // The host's own environment minus handshake variables, then the go-plugin ones (§2.3).
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("grafana_plugin_type=", 0) == 0 || entry.rfind("PLUGIN_", 0) == 0) continue;
    env.push_back(entry);
  }
  if (options.with_cookie) {
    env.push_back("grafana_plugin_type=datasource");
    env.push_back("PLUGIN_PROTOCOL_VERSIONS=2");
    env.push_back("PLUGIN_MIN_PORT=10000");
    env.push_back("PLUGIN_MAX_PORT=25000");
  }
  for (const auto& e : options.extra_env) env.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string path = binary;
  char* argv[] = {path.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  const int rc = posix_spawn(&p->pid_, binary.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  p->stdout_fd_ = out_pipe[0];
  p->stderr_fd_ = err_pipe[0];
  if (rc != 0) {
    p->pid_ = -1;
    return p;
  }
  p->drainer_ = std::thread([raw = p.get()] { raw->drain(); });

  if (options.with_cookie) {
    const auto deadline = std::chrono::steady_clock::now() + options.handshake_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(p->mutex_);
        const auto nl = p->stdout_buffer_.find('\n');
        if (nl != std::string::npos) {
          p->handshake_ = p->stdout_buffer_.substr(0, nl);
          break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return p;
}

void PluginProcess::drain() {
  pollfd fds[2] = {{stdout_fd_, POLLIN, 0}, {stderr_fd_, POLLIN, 0}};
  int open = 2;
  char buf[4096];
  while (open > 0) {
    if (poll(fds, 2, 200) < 0) break;
    for (auto& f : fds) {
      if (f.fd < 0 || (f.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(f.fd, buf, sizeof buf);
      if (n <= 0) {
        f.fd = -1;
        --open;
        continue;
      }
      std::lock_guard lock(mutex_);
      (f.fd == stdout_fd_ ? stdout_buffer_ : stderr_buffer_).append(buf, static_cast<size_t>(n));
    }
  }
}

PluginProcess::~PluginProcess() {
  channel_.reset();
  if (pid_ > 0 && !exit_status_) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (drainer_.joinable()) drainer_.join();
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (stderr_fd_ >= 0) close(stderr_fd_);
}

std::vector<std::string> PluginProcess::handshake_fields() const {
  std::vector<std::string> fields;
  std::string field;
  std::stringstream in(handshake_);
  while (std::getline(in, field, '|')) fields.push_back(field);
  if (!handshake_.empty() && handshake_.back() == '|') fields.emplace_back();
  return fields;
}

std::string PluginProcess::network() const {
  const auto f = handshake_fields();
  return f.size() > 2 ? f[2] : "";
}

std::string PluginProcess::address() const {
  const auto f = handshake_fields();
  return f.size() > 3 ? f[3] : "";
}

std::shared_ptr<grpc::Channel> PluginProcess::channel() {
  if (!channel_) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT_MAX);
    args.SetMaxSendMessageSize(INT_MAX);
    const std::string target = network() == "unix" ? "unix:" + address() : "ipv4:" + address();
    channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }
  return channel_;
}

std::optional<int> PluginProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_status_) return exit_status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_status_ = status;
      return exit_status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool PluginProcess::running() { return !wait_exit(std::chrono::milliseconds(0)).has_value(); }

std::string PluginProcess::stderr_text() {
  std::lock_guard lock(mutex_);
  return stderr_buffer_;
}

void PluginProcess::signal(int sig) {
  if (pid_ > 0 && !exit_status_) kill(pid_, sig);
}

}  // namespace dpa::sdk::testing
