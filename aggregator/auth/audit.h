// The audit log (DESIGN §6; reference kubernetes-authn-authz.md §9): one audit.k8s.io/v1 Event
// per request at level Metadata, as JSON lines, rotated by size. Requests only queue their event;
// the log's own thread formats and writes it, so a slow or full disk never holds a request: past
// the queue's bound, and on write errors, events are dropped and counted instead.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/auth/auth.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace dpa::auth {

struct AuditOptions {
  std::string path;                 // the log file ("-": standard output)
  std::uint64_t max_size_mb = 100;  // rotate past this size; 0: never
  int max_backups = 10;             // rotated files kept (path.1 is the newest)
  std::size_t queue_limit = 10000;  // events waiting to be written; more are dropped
};

// What one request contributes to its event.
struct AuditEvent {
  std::string audit_id;
  std::string trace_id;  // the request's W3C trace id: annotation kTraceIdAnnotation
  std::string request_uri;  // path and query as sent
  std::string user_agent;
  std::vector<std::string> source_ips;
  Attributes attributes;                  // verb, objectRef; attributes.user is the requester
  std::optional<UserInfo> impersonated;   // the user it acted as, when impersonating
  bool authenticated = true;              // false: a 401, `user` is empty
  std::string decision;                   // "allow" | "forbid" | "" (not authorized)
  std::string reason;
  int code = 0;
  std::chrono::system_clock::time_point received, completed;
};

inline constexpr const char* kTraceIdAnnotation = "dataplane.grafana.app/trace-id";

// The event's JSON line (no trailing newline).
std::string audit_line(const AuditEvent& event);

class AuditLog {
 public:
  // Opens (creating with mode 0600) the file; errors name the path.
  static api::Expected<std::unique_ptr<AuditLog>> open(AuditOptions options);
  ~AuditLog();  // writes what is queued, then stops
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues the event; never blocks on the disk.
  void record(AuditEvent event);
  std::uint64_t written() const { return written_.load(); }
  std::uint64_t dropped() const { return dropped_.load(); }

 private:
  explicit AuditLog(AuditOptions options, int fd);
  void run();
  void write_line(std::string line);
  void rotate();

  const AuditOptions options_;
  int fd_;
  std::uint64_t size_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<AuditEvent> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> written_{0}, dropped_{0};
  std::thread writer_;
};

}  // namespace dpa::auth
