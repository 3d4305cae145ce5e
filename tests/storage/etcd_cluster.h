// A real etcd cluster for tests: Debian's `etcd` (3.4) members on free loopback ports, data in a
// temporary directory, killed with the test process (PR_SET_PDEATHSIG) so none outlives a crash.
#pragma once

#include "aggregator/storage/etcd/etcd_client.h"
#include "tests/storage/store_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fcntl.h>
#include <string>
#include <thread>
#include <vector>

namespace dpa::storage::testing {

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::abort();
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

class EtcdCluster {
 public:
  explicit EtcdCluster(int members = 1) {
    std::string initial;
    for (int i = 0; i < members; ++i) {
      client_ports_.push_back(free_port());
      peer_ports_.push_back(free_port());
      if (!initial.empty()) initial += ",";
      initial += "m" + std::to_string(i) + "=http://127.0.0.1:" + std::to_string(peer_ports_[i]);
    }
    for (int i = 0; i < members; ++i) {
      const std::string name = "m" + std::to_string(i);
      const std::string client = "http://127.0.0.1:" + std::to_string(client_ports_[i]);
      const std::string peer = "http://127.0.0.1:" + std::to_string(peer_ports_[i]);
      std::vector<std::string> args = {
          "etcd", "--name", name, "--data-dir", dir_.path() + "/" + name,
          "--listen-client-urls", client, "--advertise-client-urls", client,
          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
          "--initial-cluster", initial, "--initial-cluster-state", "new",
          "--initial-cluster-token", "dpa-test-" + std::to_string(::getpid()) + "-" + name,
          "--log-level", "error", "--experimental-watch-progress-notify-interval", "200ms"};
      const std::string log = dir_.path() + "/" + name + ".log";
      pid_t pid = ::fork();
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
          ::dup2(fd, 1);
          ::dup2(fd, 2);
        }
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp("etcd", argv.data());
        ::_exit(127);
      }
      pids_.push_back(pid);
    }
    ready_ = wait_ready();
  }

  ~EtcdCluster() {
    for (pid_t pid : pids_) {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  }
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // True once a Range through every member succeeded.
  bool ready() const { return ready_; }
  std::vector<std::string> urls() const {
    std::vector<std::string> urls;
    for (int port : client_ports_) urls.push_back("http://127.0.0.1:" + std::to_string(port));
    return urls;
  }

 private:
  bool wait_ready() {
    for (const std::string& url : urls()) {
      auto client = etcd::Client::create({.servers = {url}});
      if (!client.ok()) return false;
      const bool up = eventually(
          [&] {
            etcdserverpb::RangeRequest request;
            request.set_key("health");
            etcdserverpb::RangeResponse response;
            return (*client)->range(request, &response).ok();
          },
          std::chrono::seconds(30));
      if (!up) return false;
    }
    return true;
  }

  TempDir dir_;
  std::vector<int> client_ports_;
  std::vector<int> peer_ports_;
  std::vector<pid_t> pids_;
  bool ready_ = false;
};

// One single-member cluster for a whole test binary (each test uses its own key prefix).
inline EtcdCluster& shared_etcd() {
  static EtcdCluster cluster(1);
  return cluster;
}

}  // namespace dpa::storage::testing
