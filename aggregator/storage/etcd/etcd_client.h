// A client for an etcd v3 cluster over gRPC (KV, Watch, Lease; rpc.proto): one channel per member,
// requests with a deadline and kube's `hasleader` metadata (so a member without a leader answers at
// once instead of after its own 7 s timeout), and failover: a member that fails a call with
// UNAVAILABLE or a deadline is left for the next one. The mapping from etcd's gRPC errors to
// Kubernetes Status codes is stated once here (etcd_error).
//
// Threading: every method is thread-safe. Unary calls block their caller until the reply or the
// deadline, so they run on the store's own threads or a blocking executor, never an I/O thread.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/storage/etcd/rpc.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace dpa::storage::etcd {

struct ClientOptions {
  // Members as URLs (http://host:port or https://host:port) or host:port.
  std::vector<std::string> servers;
  // TLS to etcd (all three for client certificates; the CA alone to verify the members).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Deadline of one unary call.
  std::chrono::milliseconds request_timeout{5'000};
};

// etcd's gRPC error as a Status: quorum loss, no leader, timeouts and unreachable members are 503
// "storage unavailable"; a compacted revision is 410 Expired; a value over --max-request-bytes is
// 413; the rest 500. `what` names the operation for the message.
api::ApiError etcd_error(const grpc::Status& status, const std::string& what);
// True when the call may not have reached etcd or may have been applied there (the outcome is
// unknown): the caller may retry on another member after checking what is stored.
bool outcome_unknown(const grpc::Status& status);

// The end of the key range covering every key that starts with `prefix` (etcd's prefix rule).
std::string prefix_end(const std::string& prefix);

class Client {
 public:
  // Reads the TLS files and creates the channels (connections are made lazily). 400 on a bad
  // server URL, 500 on unreadable TLS files.
  static api::Expected<std::shared_ptr<Client>> create(ClientOptions options);

  // A context for one call to the member `member()` names: deadline (zero: none) and metadata.
  std::unique_ptr<grpc::ClientContext> context(std::chrono::milliseconds timeout) const;
  std::unique_ptr<grpc::ClientContext> context() const { return context(options_.request_timeout); }

  // The member calls go to now, and its stubs.
  std::size_t member() const { return current_.load() % stubs_.size(); }
  etcdserverpb::KV::Stub& kv(std::size_t member) const { return *stubs_[member].kv; }
  etcdserverpb::Watch::Stub& watch(std::size_t member) const { return *stubs_[member].watch; }
  etcdserverpb::Lease::Stub& lease(std::size_t member) const { return *stubs_[member].lease; }
  const std::string& endpoint(std::size_t member) const { return stubs_[member].endpoint; }
  // After `status` failed a call on `member`: move to the next member when the failure was the
  // member's (unreachable, no leader, timed out). Returns whether it moved.
  bool fail_over(std::size_t member, const grpc::Status& status);

  // Unary calls on the current member, failing over once for a failure that is the member's and
  // happened before the request was applied (reads; writes decide for themselves).
  grpc::Status range(const etcdserverpb::RangeRequest& request, etcdserverpb::RangeResponse* response);
  grpc::Status txn(const etcdserverpb::TxnRequest& request, etcdserverpb::TxnResponse* response,
                   std::size_t* member_used = nullptr);
  grpc::Status compact(const etcdserverpb::CompactionRequest& request,
                       etcdserverpb::CompactionResponse* response);

  const ClientOptions& options() const { return options_; }

 private:
  struct Stubs {
    std::string endpoint;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  };
  explicit Client(ClientOptions options) : options_(std::move(options)) {}

  const ClientOptions options_;
  std::vector<Stubs> stubs_;
  std::atomic<std::size_t> current_{0};
};

}  // namespace dpa::storage::etcd
