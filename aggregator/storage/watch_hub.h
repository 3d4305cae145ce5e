// Fans committed event batches out to every watcher on one notification thread. A batch is
// published once and shared; each watcher sees only its prefix and only revisions after its
// cursor, so a watcher registered with a backlog gets the backlog, then live events, with no gap
// and no duplicate.
#pragma once

#include "aggregator/storage/store.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dpa::storage {

class WatchHub {
 public:
  // Largest number of events handed to one callback invocation (backlogs are split).
  static constexpr std::size_t kMaxEventsPerCallback = 1024;

  WatchHub();
  ~WatchHub();
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Registers a watcher. `backlog` holds the already committed events it must see first (all
  // with revision <= cursor); afterwards it receives published events with revision > cursor.
  // The caller must order add() and publish() (StoreEngine does both under its state lock).
  std::unique_ptr<Watch> add(std::string prefix, int64_t cursor, std::vector<Event> backlog,
                             WatchCallback callback, ProgressCallback on_progress = {});
  // Queues a batch (ascending revisions) for delivery; never blocks on callbacks.
  void publish(std::shared_ptr<const std::vector<Event>> batch);
  // Queues word that nothing changed up to `revision` beyond the batches published before it:
  // each watcher behind it moves its cursor there and gets its progress callback. Same ordering
  // rule as publish().
  void advance(int64_t revision);
  // Watchers registered and not cancelled.
  std::size_t active_watchers() const;
  // Stops the notification thread; queued batches are dropped. Idempotent.
  void stop();

  struct Watcher;
  struct Shared;

 private:
  void run();

  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace dpa::storage
