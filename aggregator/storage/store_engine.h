// The Store semantics shared by every backend: an in-memory index of all keys (with their values
// too, unless the journal serves them: SQLite does, so memory holds no second copy), one
// writer thread that validates, group-commits batches to a Journal and only then applies them,
// a ring of recent events for starting watches, and automatic compaction. SqliteStore and
// MemoryStore are this engine over different journals.
#pragma once

#include "aggregator/storage/journal.h"
#include "aggregator/storage/store.h"
#include "aggregator/storage/watch_hub.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

namespace dpa::storage {

class StoreEngine : public Store {
 public:
  // Most write requests committed in one transaction (one fsync) by the writer thread.
  static constexpr std::size_t kMaxBatch = 512;

  ~StoreEngine() override;
  StoreEngine(const StoreEngine&) = delete;
  StoreEngine& operator=(const StoreEngine&) = delete;

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

  // Watches registered and not cancelled (for metrics and tests).
  std::size_t active_watches() const { return hub_.active_watchers(); }

 protected:
  StoreEngine(std::unique_ptr<Journal> journal, StoreOptions options);
  // Loads the journal and starts the writer thread; call once, right after construction.
  api::Outcome start();

 private:
  enum class WriteKind { kCreate, kUpdate, kRemove, kCompact };
  struct WriteRequest {
    WriteKind kind = WriteKind::kCreate;
    std::string key;
    std::string value;
    int64_t revision = 0;  // expected mod revision, or the compaction revision
    std::promise<api::Expected<Record>> done;
  };

  api::Expected<Record> submit(WriteRequest& request);
  void run_writer();
  void commit_group(const std::vector<WriteRequest*>& group);
  api::Outcome run_compaction(int64_t revision);
  void auto_compact();
  // Drops ring entries beyond the memory limit; without disk history that is a compaction.
  void trim_history_locked();

  std::unique_ptr<Journal> journal_;
  const StoreOptions options_;
  // Reads of values go to the journal; records_ holds keys and revisions only.
  const bool values_in_journal_;

  mutable std::shared_mutex state_mutex_;
  // Written only by the writer thread, under state_mutex_. With values_in_journal_ a Record holds
  // only the revisions (key and value empty).
  std::map<std::string, Record> records_;
  std::deque<TimedEvent> history_;         // contiguous revisions ending at current_
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> compacted_{0};

  WatchHub hub_;

  std::mutex queue_mutex_;
  std::condition_variable queue_wake_;
  std::deque<WriteRequest*> queue_;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace dpa::storage
