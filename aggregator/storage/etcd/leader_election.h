// One leader among the replicas sharing an etcd (DESIGN §7), for work only one of them may do
// (writing the Available condition). The leader holds a key bound to an etcd lease it keeps alive:
//
//   grant lease (TTL) ─▶ Txn[create_revision(key) == 0] put(key, identity, lease) ─┬▶ leader: keep alive every TTL/3
//                                   ▲                                              └▶ follower: retry every second
//                                   └──── lease lost (keep-alive says TTL 0, or none succeeded for a TTL) ◀──┘
//
// A leader that cannot reach etcd steps down once its lease may have expired (a TTL after its last
// successful keep-alive), so two replicas never both believe they lead for longer than clock drift.
// A stopped leader revokes its lease so another takes over at once; a killed one is replaced
// within about a TTL.
#pragma once

#include "aggregator/storage/etcd/etcd_client.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace dpa::storage::etcd {

struct LeaderElectionOptions {
  std::string key;       // e.g. <etcd-prefix>/leases/availability-controller
  std::string identity;  // this replica (--replica-id), stored as the key's value
  std::chrono::seconds ttl{15};
  std::chrono::milliseconds retry_interval{1'000};
};

class LeaderElection {
 public:
  // Called on the election's thread whenever leadership is gained (true) or lost (false).
  using OnChange = std::function<void(bool leader)>;

  LeaderElection(std::shared_ptr<Client> client, LeaderElectionOptions options, OnChange on_change);
  ~LeaderElection();  // stops, revoking the lease when leading
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  void start();
  void stop();

  bool is_leader() const { return leader_.load(); }
  // The identity the key names (this replica's when leading; empty when nobody holds it or unknown).
  std::string holder() const;

 private:
  void run();
  // One attempt to take the key with `lease`; sets holder_.
  bool try_acquire(int64_t lease);
  enum class Renewal { kAlive, kGone, kUnknown };
  // kGone: etcd says the lease expired; kUnknown: etcd could not be asked.
  Renewal keep_alive(int64_t lease);
  void revoke(int64_t lease);
  void set_leader(bool leader);
  bool pause(std::chrono::milliseconds d);

  const std::shared_ptr<Client> client_;
  const LeaderElectionOptions options_;
  const OnChange on_change_;

  std::atomic<bool> leader_{false};
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string holder_;
  std::thread thread_;
};

}  // namespace dpa::storage::etcd
