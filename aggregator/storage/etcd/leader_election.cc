#include "aggregator/storage/etcd/leader_election.h"

#include "aggregator/observability/log.h"

namespace dpa::storage::etcd {

LeaderElection::LeaderElection(std::shared_ptr<Client> client, LeaderElectionOptions options,
                               OnChange on_change)
    : client_(std::move(client)), options_(std::move(options)), on_change_(std::move(on_change)) {}

LeaderElection::~LeaderElection() { stop(); }

void LeaderElection::start() {
  thread_ = std::thread([this] { run(); });
}

void LeaderElection::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string LeaderElection::holder() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return holder_;
}

bool LeaderElection::pause(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !wake_.wait_for(lock, d, [&] { return stopping_; });
}

void LeaderElection::set_leader(bool leader) {
  if (leader_.exchange(leader) == leader) return;
  obs::info(leader ? "became leader" : "no longer leader",
            {{"key", options_.key}, {"identity", options_.identity}});
  if (on_change_) on_change_(leader);
}

void LeaderElection::run() {
  using clock = std::chrono::steady_clock;
  const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(options_.ttl);
  int64_t lease = 0;
  auto renewed = clock::now();
  for (;;) {
    if (lease == 0) {
      etcdserverpb::LeaseGrantRequest request;
      request.set_ttl(options_.ttl.count());
      etcdserverpb::LeaseGrantResponse response;
      const std::size_t member = client_->member();
      auto ctx = client_->context();
      grpc::Status status = client_->lease(member).LeaseGrant(ctx.get(), request, &response);
      if (status.ok()) {
        lease = response.id();
        renewed = clock::now();
      } else {
        client_->fail_over(member, status);
      }
    }
    if (lease != 0 && !leader_.load()) {
      if (try_acquire(lease)) set_leader(true);
    }
    if (lease != 0 && (leader_.load() || clock::now() - renewed >= ttl / 3)) {
      // A follower keeps its lease alive too, so it can take the key the moment it is free.
      const Renewal renewal = keep_alive(lease);
      if (renewal == Renewal::kAlive) {
        renewed = clock::now();
      } else if (renewal == Renewal::kGone || clock::now() - renewed >= ttl) {
        // Expired, or may have: another replica may lead now.
        set_leader(false);
        lease = 0;
      }
    }
    const auto wait = leader_.load() ? ttl / 3 : options_.retry_interval;
    if (!pause(wait)) break;
  }
  if (leader_.load()) {
    set_leader(false);
  }
  if (lease != 0) revoke(lease);  // frees the key at once for the next leader
}

bool LeaderElection::try_acquire(int64_t lease) {
  etcdserverpb::TxnRequest txn;
  auto* compare = txn.add_compare();
  compare->set_key(options_.key);
  compare->set_target(etcdserverpb::Compare::CREATE);
  compare->set_result(etcdserverpb::Compare::EQUAL);
  compare->set_create_revision(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(options_.key);
  put->set_value(options_.identity);
  put->set_lease(lease);
  txn.add_failure()->mutable_request_range()->set_key(options_.key);
  etcdserverpb::TxnResponse response;
  grpc::Status status = client_->txn(txn, &response);
  if (!status.ok()) return false;
  std::string holder = options_.identity;
  if (!response.succeeded()) {
    const auto& range = response.responses(0).response_range();
    holder = range.kvs_size() > 0 ? range.kvs(0).value() : "";
    // Our own key from before (a lease we lost track of) is not leadership: wait for it to expire.
  }
  std::lock_guard<std::mutex> lock(mutex_);
  holder_ = holder;
  return response.succeeded();
}

LeaderElection::Renewal LeaderElection::keep_alive(int64_t lease) {
  const std::size_t member = client_->member();
  auto ctx = client_->context();
  auto stream = client_->lease(member).LeaseKeepAlive(ctx.get());
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseKeepAliveResponse response;
  const bool answered = stream->Write(request) && stream->Read(&response);
  ctx->TryCancel();
  grpc::Status status = stream->Finish();
  if (!answered) {
    client_->fail_over(member, status);
    return Renewal::kUnknown;
  }
  return response.ttl() > 0 ? Renewal::kAlive : Renewal::kGone;
}

void LeaderElection::revoke(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  const std::size_t member = client_->member();
  auto ctx = client_->context(std::chrono::milliseconds(2'000));
  grpc::Status status = client_->lease(member).LeaseRevoke(ctx.get(), request, &response);
  if (!status.ok()) obs::warn("cannot revoke the leader lease", {{"error", status.error_message()}});
}

}  // namespace dpa::storage::etcd
