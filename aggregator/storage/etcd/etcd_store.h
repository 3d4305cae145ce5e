// The etcd3 Store backend (DESIGN §7): the objects live in an etcd v3 cluster shared by every
// replica, under `prefix`; this process keeps a mirror of them fed by ONE etcd watch.
//
//   writes ──Txn (compare mod_revision, as kube-apiserver)──▶ etcd ──watch (prev_kv, progress)──▶ mirror
//   reads, store watches ◀──────────────────────────────────────────────────────────────── mirror
//
// - A store key K (which starts with '/') is the etcd key prefix + K; the mirror covers exactly
//   those keys ([prefix + "/", ...)), so keys beside it (prefix + "-leases/...") never move its
//   revision. resourceVersion is etcd's mod_revision; a list's is the mirror's revision: the
//   revision of the last change under the prefix it applied, or of etcd's last progress
//   notification (which its store watches are told of too).
// - create = Txn on mod_revision == 0; update/remove = Txn on mod_revision == expected (or on the
//   key existing, when no revision is given); the failure branch reads the key, so a conflict is
//   409 and a missing key 404 without a second round trip. A write returns once the mirror has
//   applied it, so this replica reads its own writes. A write whose outcome is unknown (the
//   member died or timed out) is retried once on the next member; what the retry finds stored
//   decides whether the first attempt was applied.
// - Reads and watch starts are served from the mirror and its ring of recent events (never a call
//   to etcd); watches from before the ring, or from a compacted revision, are 410 Expired.
// - The etcd watch asks for progress notifications: when etcd says nothing under the prefix
//   changed up to its revision, the mirror moves there and tells its store watches
//   (ProgressCallback), so the watch cache's lists and bookmarks move with etcd.
// - The etcd watch resumes from the last applied revision on another member when its stream ends;
//   if that revision was compacted it relists and turns the difference into events. If etcd's
//   revision went backwards (restored or restarted empty) it relists too, says so in the log, and
//   keeps resourceVersions increasing by shifting etcd's revisions past everything served so far.
// - Compaction every `compaction_interval`, by whichever replica wins a Txn on the key
//   `compact_rev_key`, exactly as kube-apiserver does (so it can share etcd with one).
//
// Threading: as Store. Writes block their caller for at most about two request timeouts.
#pragma once

#include "aggregator/storage/etcd/etcd_client.h"
#include "aggregator/storage/store.h"
#include "aggregator/storage/watch_hub.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

namespace dpa::storage::etcd {

struct EtcdStoreOptions {
  std::string prefix = "/registry/dataplane-aggregator";
  // 0: never compact.
  std::chrono::milliseconds compaction_interval{std::chrono::minutes(5)};
  // How long open() tries to make the first list before giving up.
  std::chrono::milliseconds start_timeout{std::chrono::seconds(60)};
};

class EtcdStore final : public Store {
 public:
  // Lists the prefix (retrying until start_timeout) and starts the watch and the compactor.
  static api::Expected<std::unique_ptr<EtcdStore>> open(std::shared_ptr<Client> client,
                                                         EtcdStoreOptions options,
                                                         StoreOptions store_options = {});
  ~EtcdStore() override;
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;

  api::Expected<Record> get(const std::string& key) const override;
  api::Expected<ListResult> list(const ListOptions& options) const override;
  int64_t current_revision() const override;
  int64_t compacted_revision() const override;

  api::Expected<Record> create(const std::string& key, const std::string& value) override;
  api::Expected<Record> update(const std::string& key, const std::string& value,
                               int64_t expected_mod_revision) override;
  api::Expected<Record> remove(const std::string& key, int64_t expected_mod_revision) override;
  api::Outcome compact(int64_t revision) override;

  api::Expected<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t after_revision,
                                              WatchCallback callback,
                                              ProgressCallback on_progress = {}) override;

  // Store watches registered and not cancelled.
  std::size_t active_watches() const { return hub_.active_watchers(); }
  // etcd watch streams open now (1 while connected, 0 while reconnecting).
  int etcd_watches() const { return etcd_watches_.load(); }
  const std::shared_ptr<Client>& client() const { return client_; }

 private:
  EtcdStore(std::shared_ptr<Client> client, EtcdStoreOptions options, StoreOptions store_options);

  enum class Op { kCreate, kUpdate, kRemove };
  api::Expected<Record> write(Op op, const std::string& key, const std::string& value,
                              int64_t expected);
  // Waits until the mirror has applied `revision` (bounded by the request timeout).
  void wait_applied(int64_t revision);

  // Lists the prefix at one revision (paged) into a key -> record map, store keys and revisions.
  api::Expected<std::pair<std::map<std::string, Record>, int64_t>> read_all();
  // Replaces the mirror with a fresh list, publishing the difference as events. `backwards`:
  // etcd's revision went below the mirror's.
  api::Outcome relist(bool backwards);
  void run_watch();
  void apply(const etcdserverpb::WatchResponse& response);
  // Appends events (ascending revisions) to the ring, moves the mirror's revision to the last
  // one and publishes them; with state_mutex_ held.
  void publish_locked(std::vector<Event> events);
  void run_compactor();
  // Sleeps up to `d`; false when stopping.
  bool pause(std::chrono::milliseconds d);

  // etcd <-> store revisions (shifted after etcd's revision went backwards).
  int64_t to_store(int64_t etcd_revision) const { return etcd_revision + offset_.load(); }
  int64_t to_etcd(int64_t store_revision) const { return store_revision - offset_.load(); }
  Record record_of(const mvccpb::KeyValue& kv) const;

  const std::shared_ptr<Client> client_;
  const EtcdStoreOptions options_;
  const StoreOptions store_options_;
  const std::string range_start_;
  const std::string range_end_;

  mutable std::shared_mutex state_mutex_;
  std::map<std::string, Record> records_;
  std::deque<Event> history_;             // ascending revisions (not contiguous: etcd is shared)
  std::atomic<int64_t> current_{0};        // store revision the mirror has applied
  std::atomic<int64_t> floor_{0};          // watches start after this or are 410
  std::atomic<int64_t> compacted_{0};      // store revision etcd compacted (as far as known)
  std::atomic<int64_t> offset_{0};
  int64_t last_etcd_revision_ = 0;         // the watch thread's cursor, in etcd revisions

  std::mutex applied_mutex_;
  std::condition_variable applied_;

  WatchHub hub_;

  std::mutex stop_mutex_;
  std::condition_variable stop_wake_;
  std::atomic<bool> stopping_{false};
  grpc::ClientContext* watch_context_ = nullptr;  // the open etcd watch, under stop_mutex_
  std::atomic<int> etcd_watches_{0};
  std::thread watcher_;
  std::thread compactor_;
};

}  // namespace dpa::storage::etcd
