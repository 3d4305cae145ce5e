#include "aggregator/storage/store_engine.h"

#include "aggregator/observability/log.h"
#include "aggregator/storage/store_common.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>

namespace dpa::storage {

namespace {

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}


}  // namespace

StoreEngine::StoreEngine(std::unique_ptr<Journal> journal, StoreOptions options)
    : journal_(std::move(journal)),
      options_(options),
      values_in_journal_(journal_->keeps_values()) {}

StoreEngine::~StoreEngine() {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    stopping_ = true;
  }
  queue_wake_.notify_one();
  if (writer_.joinable()) writer_.join();
  hub_.stop();
}

api::Outcome StoreEngine::start() {
  auto state = journal_->load(options_.memory_history_limit);
  if (!state.ok()) return std::move(state).error();
  {
    std::unique_lock<std::shared_mutex> lock(state_mutex_);
    for (Record& record : state->records) {
      std::string key = std::move(record.key);
      if (!values_in_journal_) record.key = key;
      records_.emplace(std::move(key), std::move(record));
    }
    for (TimedEvent& event : state->recent_events) history_.push_back(std::move(event));
    current_.store(state->current_revision);
    compacted_.store(state->compacted_revision);
  }
  writer_ = std::thread([this] { run_writer(); });
  return api::Ok{};
}

api::Expected<Record> StoreEngine::get(const std::string& key) const {
  if (values_in_journal_) {
    auto stored = journal_->read_key(key);
    if (!stored.ok()) return std::move(stored).error();
    if (!*stored) return key_not_found(key);
    return std::move(**stored);
  }
  std::shared_lock<std::shared_mutex> lock(state_mutex_);
  return get_record(records_, key);
}

api::Expected<ListResult> StoreEngine::list(const ListOptions& options) const {
  if (values_in_journal_) return journal_->read_range(options);
  std::shared_lock<std::shared_mutex> lock(state_mutex_);
  return list_records(records_, options, current_.load());
}

int64_t StoreEngine::current_revision() const { return current_.load(); }
int64_t StoreEngine::compacted_revision() const { return compacted_.load(); }

api::Expected<Record> StoreEngine::create(const std::string& key, const std::string& value) {
  WriteRequest request;
  request.kind = WriteKind::kCreate;
  request.key = key;
  request.value = value;
  return submit(request);
}

api::Expected<Record> StoreEngine::update(const std::string& key, const std::string& value,
                                          int64_t expected_mod_revision) {
  WriteRequest request;
  request.kind = WriteKind::kUpdate;
  request.key = key;
  request.value = value;
  request.revision = expected_mod_revision;
  return submit(request);
}

api::Expected<Record> StoreEngine::remove(const std::string& key, int64_t expected_mod_revision) {
  WriteRequest request;
  request.kind = WriteKind::kRemove;
  request.key = key;
  request.revision = expected_mod_revision;
  return submit(request);
}

api::Outcome StoreEngine::compact(int64_t revision) {
  WriteRequest request;
  request.kind = WriteKind::kCompact;
  request.revision = revision;
  auto result = submit(request);
  if (!result.ok()) return std::move(result).error();
  return api::Ok{};
}

api::Expected<Record> StoreEngine::submit(WriteRequest& request) {
  if (request.kind != WriteKind::kCompact && request.key.empty()) {
    return api::ApiError::bad_request("storage key must not be empty");
  }
  if (request.value.size() > options_.max_value_bytes) {
    return api::ApiError::too_large("the object is " + std::to_string(request.value.size()) +
                                    " bytes, more than the storage limit of " +
                                    std::to_string(options_.max_value_bytes) + " bytes");
  }
  auto done = request.done.get_future();
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    if (stopping_ || !writer_.joinable()) {
      return api::ApiError::unavailable("storage is shutting down");
    }
    queue_.push_back(&request);
  }
  queue_wake_.notify_one();
  return done.get();
}

void StoreEngine::run_writer() {
  const bool auto_compaction =
      options_.retain_revisions > 0 || options_.retain_duration.count() > 0;
  const auto interval = std::max(options_.compaction_interval, std::chrono::milliseconds(10));
  auto next_compaction = std::chrono::steady_clock::now() + interval;
  for (;;) {
    std::vector<WriteRequest*> batch;
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      auto ready = [&] { return stopping_ || !queue_.empty(); };
      if (auto_compaction) {
        queue_wake_.wait_until(lock, next_compaction, ready);
      } else {
        queue_wake_.wait(lock, ready);
      }
      if (stopping_) {
        for (WriteRequest* request : queue_) {
          request->done.set_value(api::ApiError::unavailable("storage is shutting down"));
        }
        queue_.clear();
        return;
      }
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    // Data writes are committed in groups; a compaction request splits the batch so that it is
    // ordered with the writes around it.
    std::vector<WriteRequest*> group;
    for (WriteRequest* request : batch) {
      if (request->kind != WriteKind::kCompact) {
        group.push_back(request);
        continue;
      }
      commit_group(group);
      group.clear();
      auto outcome = run_compaction(request->revision);
      if (outcome.ok()) {
        request->done.set_value(Record{});
      } else {
        request->done.set_value(std::move(outcome).error());
      }
    }
    commit_group(group);
    if (auto_compaction && std::chrono::steady_clock::now() >= next_compaction) {
      auto_compact();
      next_compaction = std::chrono::steady_clock::now() + interval;
    }
  }
}

void StoreEngine::commit_group(const std::vector<WriteRequest*>& group) {
  if (group.empty()) return;
  // The writer thread is the only mutator of records_, so it reads it without the lock; the
  // overlay holds this group's not yet applied changes (nullopt = deleted in this group).
  std::unordered_map<std::string, std::optional<Record>> overlay;
  auto lookup = [&](const std::string& key) -> const Record* {
    if (auto it = overlay.find(key); it != overlay.end()) {
      return it->second ? &*it->second : nullptr;
    }
    auto it = records_.find(key);
    return it == records_.end() ? nullptr : &it->second;
  };

  const int64_t now = unix_ms_now();
  int64_t revision = current_.load();
  std::vector<std::optional<api::Expected<Record>>> results(group.size());
  std::vector<TimedEvent> events;
  for (std::size_t i = 0; i < group.size(); ++i) {
    WriteRequest& request = *group[i];
    const Record* existing = lookup(request.key);
    TimedEvent timed;
    timed.unix_ms = now;
    Event& event = timed.event;
    switch (request.kind) {
      case WriteKind::kCreate:
        if (existing) {
          results[i] = already_exists(request.key);
          continue;
        }
        event.type = EventType::kAdded;
        event.record = Record{request.key, std::move(request.value), revision + 1, revision + 1};
        break;
      case WriteKind::kUpdate:
        if (!existing) {
          results[i] = key_not_found(request.key);
          continue;
        }
        if (request.revision != 0 && request.revision != existing->mod_revision) {
          results[i] = revision_conflict(request.key, request.revision, existing->mod_revision);
          continue;
        }
        event.type = EventType::kModified;
        event.record =
            Record{request.key, std::move(request.value), existing->create_revision, revision + 1};
        break;
      case WriteKind::kRemove:
        if (!existing) {
          results[i] = key_not_found(request.key);
          continue;
        }
        if (request.revision != 0 && request.revision != existing->mod_revision) {
          results[i] = revision_conflict(request.key, request.revision, existing->mod_revision);
          continue;
        }
        event.type = EventType::kDeleted;
        event.record = *existing;
        event.record.key = request.key;
        if (values_in_journal_ && !overlay.count(request.key)) {
          // The delete's event carries the last value, which only the journal holds.
          auto stored = journal_->read_key(request.key);
          if (!stored.ok()) {
            results[i] = std::move(stored).error();
            continue;
          }
          if (!*stored) {
            results[i] = api::ApiError::internal("storage: key \"" + request.key +
                                                 "\" is missing from the journal");
            continue;
          }
          event.record.value = std::move((*stored)->value);
        }
        event.record.mod_revision = revision + 1;
        break;
      case WriteKind::kCompact:
        results[i] = api::ApiError::internal("compaction inside a write group");
        continue;
    }
    ++revision;
    event.revision = revision;
    results[i] = event.record;
    if (event.type == EventType::kDeleted) {
      overlay[request.key] = std::nullopt;
    } else {
      overlay[request.key] = event.record;
    }
    events.push_back(std::move(timed));
  }

  if (!events.empty()) {
    // Durable before visible: readers and watchers only ever see committed changes.
    auto outcome = journal_->append(events);
    if (!outcome.ok()) {
      obs::error("storage commit failed", {{"error", outcome.error().message},
                                           {"writes", events.size()}});
      for (std::size_t i = 0; i < group.size(); ++i) {
        if (results[i]->ok()) {
          results[i] = api::ApiError::internal("storage write failed: " + outcome.error().message);
        }
      }
    } else {
      auto batch = std::make_shared<std::vector<Event>>();
      batch->reserve(events.size());
      std::unique_lock<std::shared_mutex> lock(state_mutex_);
      for (TimedEvent& timed : events) {
        const Event& event = timed.event;
        if (event.type == EventType::kDeleted) {
          records_.erase(event.record.key);
        } else {
          // With the values in the journal only the revisions are kept (the map holds the key).
          records_.insert_or_assign(
              event.record.key,
              values_in_journal_ ? Record{{}, {}, event.record.create_revision,
                                          event.record.mod_revision}
                                 : event.record);
        }
        batch->push_back(event);
        history_.push_back(std::move(timed));
      }
      current_.store(revision);
      trim_history_locked();
      // Published under the state lock so watch() registrations are ordered with batches.
      hub_.publish(std::move(batch));
    }
  }
  for (std::size_t i = 0; i < group.size(); ++i) group[i]->done.set_value(std::move(*results[i]));
}

void StoreEngine::trim_history_locked() {
  while (history_.size() > options_.memory_history_limit) {
    if (!journal_->keeps_history()) compacted_.store(history_.front().event.revision);
    history_.pop_front();
  }
}

api::Outcome StoreEngine::run_compaction(int64_t revision) {
  const int64_t current = current_.load();
  if (revision > current) {
    return api::ApiError::bad_request("compaction revision " + std::to_string(revision) +
                                      " is newer than the current revision " +
                                      std::to_string(current));
  }
  if (revision <= compacted_.load()) return api::Ok{};
  auto outcome = journal_->compact(revision);
  if (!outcome.ok()) {
    obs::error("storage compaction failed",
               {{"error", outcome.error().message}, {"revision", revision}});
    return outcome;
  }
  std::unique_lock<std::shared_mutex> lock(state_mutex_);
  while (!history_.empty() && history_.front().event.revision <= revision) history_.pop_front();
  compacted_.store(revision);
  return api::Ok{};
}

void StoreEngine::auto_compact() {
  const int64_t current = current_.load();
  // Each enabled window names the newest revision it allows to drop; keep their union.
  int64_t target = current;
  if (options_.retain_revisions > 0) target = std::min(target, current - options_.retain_revisions);
  if (options_.retain_duration.count() > 0) {
    const int64_t cutoff =
        unix_ms_now() -
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.retain_duration).count();
    int64_t by_time = 0;
    if (!history_.empty() && history_.front().unix_ms < cutoff) {
      // The writer thread is the only mutator of history_, so it may read it without the lock.
      auto it = std::partition_point(history_.begin(), history_.end(),
                                     [&](const TimedEvent& e) { return e.unix_ms < cutoff; });
      by_time = std::prev(it)->event.revision;
    } else if (journal_->keeps_history()) {
      auto found = journal_->last_revision_before(cutoff);
      if (!found.ok()) {
        obs::warn("storage compaction skipped", {{"error", found.error().message}});
        return;
      }
      by_time = *found;
    }
    target = std::min(target, by_time);
  }
  if (target > compacted_.load()) {
    auto outcome = run_compaction(target);
    if (outcome.ok()) obs::debug("storage compacted", {{"revision", target}});
  }
}

api::Expected<std::unique_ptr<Watch>> StoreEngine::watch(const std::string& prefix,
                                                         int64_t after_revision,
                                                         WatchCallback callback,
                                                         ProgressCallback on_progress) {
  std::vector<Event> backlog;
  int64_t after = after_revision;
  for (bool first = true;; first = false) {
    std::shared_lock<std::shared_mutex> lock(state_mutex_);
    const int64_t current = current_.load();
    const int64_t compacted = compacted_.load();
    if (first && after_revision < compacted) {
      return too_old(after_revision, compacted);
    }
    const int64_t ring_first = history_.empty() ? current + 1 : history_.front().event.revision;
    if (after >= current || ring_first <= after + 1) {
      // history_ holds contiguous revisions, so the first one after `after` is found by index.
      if (after < current) {
        for (auto it = history_.begin() + (after + 1 - ring_first); it != history_.end(); ++it) {
          if (has_prefix(it->event.record.key, prefix)) backlog.push_back(it->event);
        }
      }
      return hub_.add(prefix, std::max(current, after_revision), std::move(backlog),
                      std::move(callback), std::move(on_progress));
    }
    lock.unlock();
    // Older than memory: read the gap from disk, then look at memory again (it may have moved).
    if (!journal_->keeps_history()) {
      return too_old(after_revision, compacted);
    }
    auto older = journal_->read_history(prefix, after, ring_first - 1);
    if (!older.ok()) return std::move(older).error();
    for (Event& event : *older) backlog.push_back(std::move(event));
    after = ring_first - 1;
  }
}

}  // namespace dpa::storage
