#include "aggregator/auth/audit.h"

#include "aggregator/apimachinery/codec.h"
#include "aggregator/observability/log.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dpa::auth {
namespace {

using ojson = nlohmann::ordered_json;

ojson user_json(const UserInfo& user) {
  ojson u = ojson::object();
  if (!user.name.empty()) u["username"] = user.name;
  if (!user.uid.empty()) u["uid"] = user.uid;
  if (!user.groups.empty()) u["groups"] = user.groups;
  if (!user.extra.empty()) u["extra"] = user.extra;
  return u;
}

}  // namespace

std::string audit_line(const AuditEvent& e) {
  const Attributes& a = e.attributes;
  ojson event;
  event["kind"] = "Event";
  event["apiVersion"] = "audit.k8s.io/v1";
  event["level"] = "Metadata";
  event["auditID"] = e.audit_id;
  event["stage"] = e.authenticated ? "ResponseComplete" : "ResponseStarted";
  event["requestURI"] = e.request_uri;
  event["verb"] = a.verb;
  event["user"] = e.authenticated ? user_json(a.user) : ojson::object();
  if (e.impersonated) event["impersonatedUser"] = user_json(*e.impersonated);
  event["sourceIPs"] = e.source_ips;
  // kube cuts user agents at 1024 bytes.
  event["userAgent"] =
      e.user_agent.size() > 1024 ? e.user_agent.substr(0, 1024) + "...TRUNCATED" : e.user_agent;
  if (a.resource_request) {
    ojson ref = ojson::object();
    if (!a.resource.empty()) ref["resource"] = a.resource;
    if (!a.namespace_name.empty()) ref["namespace"] = a.namespace_name;
    if (!a.name.empty()) ref["name"] = a.name;
    ref["apiGroup"] = a.api_group;
    if (!a.api_version.empty()) ref["apiVersion"] = a.api_version;
    if (!a.subresource.empty()) ref["subresource"] = a.subresource;
    event["objectRef"] = std::move(ref);
  }
  event["responseStatus"] = {{"metadata", ojson::object()}, {"code", e.code}};
  event["requestReceivedTimestamp"] = obs::rfc3339_micros(e.received);
  event["stageTimestamp"] = obs::rfc3339_micros(e.completed);
  ojson annotations = ojson::object();
  if (!e.decision.empty()) {
    annotations["authorization.k8s.io/decision"] = e.decision;
    annotations["authorization.k8s.io/reason"] = e.reason;
  }
  if (!e.trace_id.empty()) annotations[kTraceIdAnnotation] = e.trace_id;
  if (!annotations.empty()) event["annotations"] = std::move(annotations);
  return api::dump_json(event);
}

api::Expected<std::unique_ptr<AuditLog>> AuditLog::open(AuditOptions options) {
  int fd = options.path == "-" ? ::dup(STDOUT_FILENO)
                               : ::open(options.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return api::ApiError::internal("cannot open the audit log " + options.path + ": " +
                                   std::strerror(errno));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(options), fd));
}

AuditLog::AuditLog(AuditOptions options, int fd) : options_(std::move(options)), fd_(fd) {
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) size_ = static_cast<std::uint64_t>(st.st_size);
  writer_ = std::thread([this] { run(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
  ::close(fd_);
}

void AuditLog::record(AuditEvent event) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.size() >= options_.queue_limit) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(event));
  }
  wake_.notify_one();
}

void AuditLog::run() {
  for (;;) {
    std::deque<AuditEvent> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      batch.swap(queue_);
    }
    for (const auto& event : batch) write_line(audit_line(event) + "\n");
  }
}

void AuditLog::write_line(std::string line) {
  if (options_.max_size_mb > 0 && size_ + line.size() > options_.max_size_mb * 1024 * 1024) rotate();
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // A full disk or a failing device: the event is lost, the request was not held for it.
      if (dropped_.fetch_add(1, std::memory_order_relaxed) % 1000 == 0) {
        obs::warn("audit event dropped: cannot write the audit log",
                  {{"path", options_.path}, {"error", std::strerror(errno)}});
      }
      return;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  size_ += line.size();
  written_.fetch_add(1, std::memory_order_relaxed);
}

// path -> path.1 -> path.2 ... (the oldest beyond max_backups removed), then a fresh path.
void AuditLog::rotate() {
  if (options_.path == "-") return;
  for (int i = options_.max_backups; i >= 1; --i) {
    const std::string from = i == 1 ? options_.path : options_.path + "." + std::to_string(i - 1);
    const std::string to = options_.path + "." + std::to_string(i);
    std::rename(from.c_str(), to.c_str());
  }
  if (options_.max_backups <= 0) std::remove(options_.path.c_str());
  int fd = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    obs::warn("cannot reopen the audit log after rotation; writing to the rotated file",
              {{"path", options_.path}, {"error", std::strerror(errno)}});
    return;
  }
  ::close(fd_);
  fd_ = fd;
  size_ = 0;
}

}  // namespace dpa::auth
