// The durable side of a store: where StoreEngine persists each batch of changes before it
// acknowledges them. SQLite implements it (sqlite_store.cc); MemoryStore uses a journal that keeps
// nothing. Internal to storage/: other components use Store.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/storage/store.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dpa::storage {

// An event with the wall-clock time of its commit (unix milliseconds), for time-based compaction.
struct TimedEvent {
  Event event;
  int64_t unix_ms = 0;
};

// What a journal holds at open.
struct JournalState {
  int64_t current_revision = 0;
  int64_t compacted_revision = 0;
  // Every live key; their values only from a journal that does not keep them (keeps_values()).
  std::vector<Record> records;
  std::vector<TimedEvent> recent_events;  // newest retained events, ascending revision
};

class Journal {
 public:
  virtual ~Journal() = default;

  // Reads everything back; at most `max_events` of the newest retained events.
  virtual api::Expected<JournalState> load(std::size_t max_events) = 0;
  // Persists the events (ascending, contiguous revisions) and the new current revision in one
  // transaction; durable when it returns ok. On error nothing of the batch is stored.
  virtual api::Outcome append(const std::vector<TimedEvent>& events) = 0;
  // Drops history at and below `revision` and records it as the compacted revision.
  virtual api::Outcome compact(int64_t revision) = 0;

  // True when read_history can serve retained events that are no longer in memory.
  virtual bool keeps_history() const = 0;
  // Retained events with after < revision <= upto whose key starts with prefix, ascending.
  virtual api::Expected<std::vector<Event>> read_history(const std::string& prefix,
                                                         int64_t after, int64_t upto) = 0;
  // Newest retained revision committed before `unix_ms`, or 0 when none.
  virtual api::Expected<int64_t> last_revision_before(int64_t unix_ms) = 0;

  // True when the journal serves the live values (read_key, read_range) from any thread. The
  // engine then keeps only keys and revisions in memory: the watch cache holds the one decoded
  // copy of each object, and a second copy of every value here would double the memory.
  virtual bool keeps_values() const { return false; }
  // The live record of `key`, or nullopt. Only when keeps_values().
  virtual api::Expected<std::optional<Record>> read_key(const std::string& key) {
    (void)key;
    return api::ApiError::internal("storage: this journal keeps no values");
  }
  // Store::list over the live values, taken at the revision it reports (which may be newer than
  // the engine has applied: a committed batch is on disk before it is in memory). Only when
  // keeps_values().
  virtual api::Expected<ListResult> read_range(const ListOptions& options) {
    (void)options;
    return api::ApiError::internal("storage: this journal keeps no values");
  }
};

}  // namespace dpa::storage
