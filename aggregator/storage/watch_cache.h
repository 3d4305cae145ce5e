// The watch cache (DESIGN §5): one decoded, immutable copy of every object under a prefix, kept
// current by a single store watch, and a ring of the recent events, each holding the object
// before and after its change. Lists, lists at a past revision (paged lists, Exact reads) and
// watch starts are served from it, so they cost the objects or events they return, never a read
// of the store or a parse of the whole state; a thousand watchers cost one store watch, and each
// event is decoded once and its encodings shared by every watcher.
//
// "Decoded" is the caller's choice: a Codec turns a stored Record into a CachedObject holding the
// bytes served for it and what selectors read (its labels, name and namespace). Memory per object
// is then its encoded size plus those. The cache knows nothing about DataPlaneService or HTTP.
//
// Freshness: the cache trails the store by one hop of the store's notification thread. A read
// that must see every acknowledged write (kube's consistent read) first waits, without blocking,
// for the cache to reach the store's current revision: when_fresh(). The prefix must cover every
// key written to the store, or a wait for a revision outside it lasts until the next change.
//
// Threading: every method is thread-safe. Store events are applied and fanned out on the store's
// notification thread; sinks run there, except a new watcher's backlog, which its watch() call
// delivers on the calling thread before any live event. Sinks must not block.
#pragma once

#include "aggregator/apimachinery/selectors.h"
#include "aggregator/apimachinery/status.h"
#include "aggregator/storage/store.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dpa::storage {

// An object as the cache holds it: immutable, shared by the current state, the event ring and
// every watcher.
struct CachedObject {
  std::string key;
  int64_t create_revision = 0;
  int64_t resource_version = 0;  // the revision the bytes carry
  std::string bytes;             // the object as served
  api::Attributes attributes;    // what selectors evaluate
};
using ObjectPtr = std::shared_ptr<const CachedObject>;

class CachedEvent {
 public:
  static constexpr std::size_t kEncodingSlots = 4;

  CachedEvent(EventType type, int64_t revision, ObjectPtr object, ObjectPtr prev, bool prev_known)
      : type(type),
        revision(revision),
        object(std::move(object)),
        prev(std::move(prev)),
        prev_known(prev_known) {}

  const EventType type;
  const int64_t revision;
  // The new state; for kDeleted the last state, carrying the delete's revision.
  const ObjectPtr object;
  // The state before the change (null for kAdded). Unknown only for events read back from the
  // store's history because the ring no longer held them: prev_known is false then.
  const ObjectPtr prev;
  const bool prev_known;

  // A memoized encoding of this event: the first call for `slot` runs make(); every later call,
  // from any thread, shares its result.
  std::shared_ptr<const std::string> encoded(std::size_t slot,
                                             const std::function<std::string()>& make) const;

 private:
  mutable std::array<std::once_flag, kEncodingSlots> once_;
  mutable std::array<std::shared_ptr<const std::string>, kEncodingSlots> encodings_;
};
using EventPtr = std::shared_ptr<const CachedEvent>;

struct WatchCacheOptions {
  // Events kept for starting watches and for lists at a past revision.
  std::size_t ring_capacity = 10'000;
  // Bytes of the objects only the ring holds (the state before each change, and each deleted
  // object): past this the oldest events go too. It bounds the history's memory whatever the
  // objects weigh (an object may be 1.5 MiB): a ring of 10,000 status updates of 1 KiB objects
  // would otherwise hold a second 10 MB copy of the state. A watch from a revision no longer in
  // the ring catches up from the store's history instead (SQLite reads it from disk; etcd keeps
  // its own); a list at such a revision (a continue token) is 410 and the client lists again.
  std::size_t ring_bytes = 1 << 20;
};

class WatchCache {
 public:
  // Returns the served form of `record` at `resource_version` (for a delete, the delete's
  // revision), or null when the stored value cannot be decoded (it is then left out).
  using Codec = std::function<ObjectPtr(const Record& record, int64_t resource_version)>;
  // Receives events in revision order. Must not block.
  using Sink = std::function<void(const std::vector<EventPtr>& events)>;
  // A watch that can no longer be served (its history was compacted while it caught up).
  using ErrorSink = std::function<void(const api::ApiError& error)>;

  struct Snapshot {
    int64_t revision = 0;
    std::vector<ObjectPtr> objects;  // ascending key
  };

  // Lists `prefix` and follows it with one store watch.
  static api::Expected<std::unique_ptr<WatchCache>> start(Store& store, std::string prefix,
                                                          Codec codec,
                                                          WatchCacheOptions options = {});
  ~WatchCache();
  WatchCache(const WatchCache&) = delete;
  WatchCache& operator=(const WatchCache&) = delete;

  // Every change up to this revision is applied.
  int64_t revision() const;
  // The ring holds every event after this revision: lists at a revision and watches from one
  // are served from memory back to here.
  int64_t oldest_revision() const;
  // Runs `ready` once every change up to `revision` is applied: at once on this thread, or later
  // on the notification thread (so post real work elsewhere).
  void when_fresh(int64_t revision, std::function<void()> ready);

  // The objects whose key sorts after `start_after`, as they were at `revision` (0: now).
  // 410 Expired when `revision` is older than the ring or compacted in the store, 504 when
  // newer than the cache.
  api::Expected<Snapshot> list(int64_t revision = 0, const std::string& start_after = "") const;
  // The object under `key` now, or null.
  ObjectPtr get(const std::string& key) const;

  // Delivers every change after `after_revision`: the ring's events, then live ones. With
  // `initial`, the current state is copied there and the watch starts at its revision instead.
  // Older than the ring: the events come from the store's retained history, through a store
  // watch this watcher alone uses, started on the cache's catch-up thread (never the caller's);
  // their prev is unknown. Compacted in the store: 410 Expired, even when the ring still has it.
  // The returned Watch must not be cancelled from inside `sink`.
  api::Expected<std::unique_ptr<Watch>> watch(int64_t after_revision, Sink sink,
                                              ErrorSink on_error, Snapshot* initial = nullptr);

  // Watchers registered and not cancelled.
  std::size_t watchers() const;
  // Objects held.
  std::size_t size() const;

  struct Watcher;
  struct Registry;

 private:
  WatchCache(Store& store, std::string prefix, Codec codec, WatchCacheOptions options);
  void apply(const std::vector<Event>& events);
  // Nothing under the prefix changed up to `revision` (the store's progress callback).
  void advance(int64_t revision);
  EventPtr decode(const Event& event, ObjectPtr prev, bool prev_known) const;
  // Drops cancelled watchers (after a cancel() flagged some); with mutex_ held.
  void sweep_locked();
  void run_catch_up();

  Store& store_;
  const std::string prefix_;
  const Codec codec_;
  const WatchCacheOptions options_;

  mutable std::mutex mutex_;
  std::map<std::string, ObjectPtr> objects_;
  std::deque<EventPtr> ring_;
  std::size_t ring_bytes_ = 0;  // ring_history_bytes() of every event in ring_
  int64_t revision_ = 0;
  int64_t oldest_ = 0;
  std::vector<std::shared_ptr<Watcher>> watchers_;
  std::multimap<int64_t, std::function<void()>> waiters_;

  const std::shared_ptr<Registry> registry_;
  std::unique_ptr<Watch> store_watch_;

  // Catch-up jobs: store watches for watchers older than the ring.
  std::mutex jobs_mutex_;
  std::condition_variable jobs_wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread catch_up_;
};

}  // namespace dpa::storage
