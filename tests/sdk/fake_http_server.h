// Test helper: a tiny HTTP/1.1 server on 127.0.0.1:<port 0> that answers canned responses by
// path (query string ignored) and records every request line and header block it receives.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dpa::sdk::testing {

class FakeHttpServer {
 public:
  struct Reply {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
  };
  FakeHttpServer();
  ~FakeHttpServer();

  void set_reply(const std::string& path, Reply reply);
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Raw request heads ("GET /x?y HTTP/1.1\r\nHost: ...\r\n\r\n") in arrival order.
  std::vector<std::string> requests();

 private:
  void serve();
  void handle(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::map<std::string, Reply> replies_;  // guarded by mutex_
  std::vector<std::string> requests_;     // guarded by mutex_
  std::thread thread_;
};

}  // namespace dpa::sdk::testing
