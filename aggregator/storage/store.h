// The object store: keys to JSON documents with a global, monotonically increasing revision
// (like etcd), a watch from any retained revision, and compaction. The SQLite backend
// (sqlite_store.h) is the production implementation; an etcd backend can follow behind the same
// interface. Nothing here knows about DataPlaneService or HTTP.
//
// Threading: every method is thread-safe. Reads (get/list/current_revision) never wait for a
// write: the in-memory store and etcd's mirror serve them from memory, SQLite from its file on a
// reader connection of its own (a short local read: the values are not kept in memory a second
// time beside the watch cache, which is what serves reads on I/O threads). Writes
// (create/update/remove/compact) block until the change is durable (fsync), so they must not be
// called from an I/O thread: callers run them on a blocking executor.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dpa::storage {

struct Record {
  std::string key;
  std::string value;            // the document (JSON text), exactly as written
  int64_t create_revision = 0;  // revision of the write that created the key
  int64_t mod_revision = 0;     // revision of the latest write to the key
};

enum class EventType { kAdded, kModified, kDeleted };

struct Event {
  EventType type;
  // For kDeleted: the last stored value, with mod_revision = the revision of the delete.
  Record record;
  int64_t revision = 0;  // revision of this change (== record.mod_revision)
};

struct ListResult {
  std::vector<Record> items;  // sorted by key
  int64_t revision = 0;       // the store revision the list was taken at
  bool more = false;          // true when `limit` cut the result short
};

struct ListOptions {
  std::string prefix;
  std::string start_after;  // exclusive lower bound on key (for limit/continue)
  std::size_t limit = 0;    // 0 = no limit
};

// Tuning shared by every backend. Automatic compaction keeps the union of the enabled windows:
// history is dropped only when it is older than `retain_duration` AND more than
// `retain_revisions` behind the current revision (a zero disables that window; both zero
// disables automatic compaction). Kubernetes on etcd keeps about five minutes.
struct StoreOptions {
  int64_t retain_revisions = 0;
  std::chrono::seconds retain_duration{300};
  std::chrono::milliseconds compaction_interval{30'000};
  // Most recent events kept in memory for starting watches. Older retained history is read from
  // disk (SQLite); a backend without disk (MemoryStore) compacts what falls out of memory.
  std::size_t memory_history_limit = 10'000;
  // SQLite: run `PRAGMA quick_check` at open so a corrupt file is reported before serving.
  bool verify_on_open = true;
  std::chrono::milliseconds busy_timeout{5'000};
  // Largest value a create or update may store: etcd's default request limit (1.5 MiB), so an
  // object that fits one backend fits the other. Larger: 413 RequestEntityTooLarge.
  std::size_t max_value_bytes = 1536 * 1024;
};

class Watch {
 public:
  virtual ~Watch() = default;
  // Stops delivery; after it returns, the callback is not running and will not be called again.
  virtual void cancel() = 0;
  // Every change under the prefix with revision <= this has been passed to the callback (and the
  // callback returned), even when none matched: the revision a BOOKMARK may carry. Read it, then
  // post the bookmark behind the events the callback posted (same strand), so it follows them.
  // 0 when unknown or cancelled.
  virtual int64_t progress_revision() const { return 0; }
};

// Called on the store's notification thread, in revision order. Must not block: post elsewhere.
using WatchCallback = std::function<void(const std::vector<Event>& events)>;
// Called on the same thread, in order with the events, when the store learnt that nothing under
// the watch's prefix changed up to `revision` beyond what was delivered (etcd's progress
// notifications): a watcher may advance to it. Optional; a backend may never call it.
using ProgressCallback = std::function<void(int64_t revision)>;

class Store {
 public:
  virtual ~Store() = default;

  virtual api::Expected<Record> get(const std::string& key) const = 0;
  virtual api::Expected<ListResult> list(const ListOptions& options) const = 0;
  virtual int64_t current_revision() const = 0;
  // Oldest revision a watch can start after; watching from an older one is 410 Expired.
  virtual int64_t compacted_revision() const = 0;

  // 409 AlreadyExists (reason/message chosen by the caller) is signalled as ApiError code 409.
  virtual api::Expected<Record> create(const std::string& key, const std::string& value) = 0;
  // expected_mod_revision == 0: unconditional. Mismatch: 409; missing key: 404.
  virtual api::Expected<Record> update(const std::string& key, const std::string& value,
                                       int64_t expected_mod_revision) = 0;
  // Returns the deleted record (mod_revision = delete revision).
  virtual api::Expected<Record> remove(const std::string& key, int64_t expected_mod_revision) = 0;
  // Forget history at and below `revision`.
  virtual api::Outcome compact(int64_t revision) = 0;

  // Delivers every change with revision > after_revision under `prefix`, first the retained
  // history (if after_revision < current), then live changes. after_revision <
  // compacted_revision(): ApiError 410 Expired ("too old resource version: N (M)").
  virtual api::Expected<std::unique_ptr<Watch>> watch(const std::string& prefix,
                                                      int64_t after_revision,
                                                      WatchCallback callback,
                                                      ProgressCallback on_progress = {}) = 0;
};

}  // namespace dpa::storage
