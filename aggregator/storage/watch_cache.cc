#include "aggregator/storage/watch_cache.h"

#include "aggregator/observability/containment.h"
#include "aggregator/observability/log.h"
#include "aggregator/storage/store_common.h"

#include <algorithm>
#include <utility>

namespace dpa::storage {

struct WatchCache::Watcher {
  Sink sink;
  ErrorSink on_error;
  // Held while the sink runs, so deliveries never overlap and cancel() waits for one in progress.
  std::mutex mutex;
  bool ready = false;  // the backlog is delivered; until then live events wait in `held`
  bool cancelled = false;
  int64_t cursor = 0;  // events at or below it were delivered (or predate the watch)
  std::vector<EventPtr> held;
  std::unique_ptr<Watch> store_watch;  // a watcher older than the ring reads the store's history
  std::atomic<int64_t> progress{0};
};

// Counts live watchers and tells the notification thread to drop cancelled ones. Shared with
// each Watch handle, which may outlive the cache.
struct WatchCache::Registry {
  std::atomic<std::size_t> active{0};
  std::atomic<bool> sweep{false};
};

namespace {

using Registry = WatchCache::Registry;


// Called with watcher.mutex held and the watcher ready.
void send_locked(WatchCache::Watcher& watcher, const std::vector<EventPtr>& events) {
  if (events.empty()) return;
  if (events.front()->revision > watcher.cursor) {
    obs::contain("watch cache sink", [&] { watcher.sink(events); });
  } else {
    std::vector<EventPtr> newer;
    for (const auto& event : events) {
      if (event->revision > watcher.cursor) newer.push_back(event);
    }
    if (!newer.empty()) obs::contain("watch cache sink", [&] { watcher.sink(newer); });
  }
  watcher.cursor = std::max(watcher.cursor, events.back()->revision);
  watcher.progress.store(watcher.cursor, std::memory_order_release);
}

void deliver(WatchCache::Watcher& watcher, const std::vector<EventPtr>& events) {
  std::lock_guard<std::mutex> lock(watcher.mutex);
  if (watcher.cancelled) return;
  if (!watcher.ready) {
    watcher.held.insert(watcher.held.end(), events.begin(), events.end());
    return;
  }
  send_locked(watcher, events);
}

class CacheWatch final : public Watch {
 public:
  CacheWatch(std::shared_ptr<WatchCache::Watcher> watcher, std::shared_ptr<Registry> registry)
      : watcher_(std::move(watcher)), registry_(std::move(registry)) {}
  ~CacheWatch() override { cancel(); }

  void cancel() override {
    if (!watcher_) return;
    std::unique_ptr<Watch> store_watch;
    {
      std::lock_guard<std::mutex> lock(watcher_->mutex);
      watcher_->cancelled = true;
      store_watch = std::move(watcher_->store_watch);
    }
    // Outside the watcher's lock: the store watch's callback takes it.
    if (store_watch) store_watch->cancel();
    registry_->active.fetch_sub(1);
    registry_->sweep.store(true);
    watcher_.reset();
  }

  int64_t progress_revision() const override {
    return watcher_ ? watcher_->progress.load(std::memory_order_acquire) : 0;
  }

 private:
  std::shared_ptr<WatchCache::Watcher> watcher_;
  std::shared_ptr<Registry> registry_;
};

// What an event keeps alive that the current state does not: the object before the change, and
// a deleted object. (An event's new object stays current until a later event, which then holds it
// as its prev.)
std::size_t ring_history_bytes(const CachedEvent& event) {
  std::size_t bytes = event.prev ? event.prev->bytes.size() : 0;
  if (event.type == EventType::kDeleted && event.object != event.prev) {
    bytes += event.object->bytes.size();
  }
  return bytes;
}

}  // namespace

std::shared_ptr<const std::string> CachedEvent::encoded(
    std::size_t slot, const std::function<std::string()>& make) const {
  std::call_once(once_.at(slot),
                 [&] { encodings_[slot] = std::make_shared<const std::string>(make()); });
  return encodings_[slot];
}

WatchCache::WatchCache(Store& store, std::string prefix, Codec codec, WatchCacheOptions options)
    : store_(store),
      prefix_(std::move(prefix)),
      codec_(std::move(codec)),
      options_(options),
      registry_(std::make_shared<Registry>()) {}

api::Expected<std::unique_ptr<WatchCache>> WatchCache::start(Store& store, std::string prefix,
                                                             Codec codec,
                                                             WatchCacheOptions options) {
  std::unique_ptr<WatchCache> cache(
      new WatchCache(store, std::move(prefix), std::move(codec), options));
  ListOptions list_options;
  list_options.prefix = cache->prefix_;
  auto listed = store.list(list_options);
  if (!listed) return listed.error();
  for (const Record& record : listed->items) {
    if (auto object = cache->codec_(record, record.mod_revision)) {
      cache->objects_.emplace_hint(cache->objects_.end(), record.key, std::move(object));
    }
  }
  cache->revision_ = listed->revision;
  cache->oldest_ = listed->revision;
  WatchCache* raw = cache.get();
  auto watch = store.watch(
      cache->prefix_, listed->revision,
      [raw](const std::vector<Event>& events) { raw->apply(events); },
      [raw](int64_t revision) { raw->advance(revision); });
  if (!watch) return watch.error();
  cache->store_watch_ = std::move(*watch);
  cache->catch_up_ = std::thread([raw] { raw->run_catch_up(); });
  return cache;
}

WatchCache::~WatchCache() {
  if (store_watch_) store_watch_->cancel();
  {
    std::lock_guard<std::mutex> lock(jobs_mutex_);
    stopping_ = true;
  }
  jobs_wake_.notify_all();
  if (catch_up_.joinable()) catch_up_.join();
}

int64_t WatchCache::revision() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return revision_;
}

int64_t WatchCache::oldest_revision() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return oldest_;
}

ObjectPtr WatchCache::get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second;
}

std::size_t WatchCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return objects_.size();
}

std::size_t WatchCache::watchers() const { return registry_->active.load(); }

void WatchCache::when_fresh(int64_t revision, std::function<void()> ready) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // The store's progress also counts changes outside the prefix, which never reach apply().
    const bool fresh =
        revision_ >= revision || (store_watch_ && store_watch_->progress_revision() >= revision);
    if (!fresh) {
      waiters_.emplace(revision, std::move(ready));
      return;
    }
  }
  ready();
}

EventPtr WatchCache::decode(const Event& event, ObjectPtr prev, bool prev_known) const {
  ObjectPtr object = codec_(event.record, event.revision);
  if (event.type == EventType::kDeleted) {
    if (!object) object = prev;
    if (!object) return nullptr;
    return std::make_shared<CachedEvent>(EventType::kDeleted, event.revision, std::move(object),
                                         std::move(prev), prev_known);
  }
  if (!object) {
    // A value that cannot be decoded is left out, as if deleted: watchers that had the object
    // are told it is gone.
    obs::warn("watch cache: stored value cannot be decoded; left out", {{"key", event.record.key}});
    if (!prev) return nullptr;
    return std::make_shared<CachedEvent>(EventType::kDeleted, event.revision, prev, prev, true);
  }
  return std::make_shared<CachedEvent>(event.type, event.revision, std::move(object),
                                       std::move(prev), prev_known);
}

void WatchCache::apply(const std::vector<Event>& events) {
  // Only this thread changes objects_, so reading it without the lock is safe; `changed` tracks
  // keys changed earlier in this batch.
  std::map<std::string, ObjectPtr> changed;
  std::vector<EventPtr> batch;
  batch.reserve(events.size());
  for (const Event& event : events) {
    const std::string& key = event.record.key;
    if (!has_prefix(key, prefix_)) continue;
    ObjectPtr prev;
    if (auto it = changed.find(key); it != changed.end()) {
      prev = it->second;
    } else if (auto current = objects_.find(key); current != objects_.end()) {
      prev = current->second;
    }
    EventPtr decoded = decode(event, std::move(prev), true);
    if (!decoded) continue;
    changed[key] = decoded->type == EventType::kDeleted ? nullptr : decoded->object;
    batch.push_back(std::move(decoded));
  }

  std::vector<std::shared_ptr<Watcher>> watchers;
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [key, object] : changed) {
      if (object) {
        objects_[key] = std::move(object);
      } else {
        objects_.erase(key);
      }
    }
    for (const auto& event : batch) {
      ring_bytes_ += ring_history_bytes(*event);
      ring_.push_back(event);
    }
    while (!ring_.empty() &&
           (ring_.size() > options_.ring_capacity || ring_bytes_ > options_.ring_bytes)) {
      oldest_ = ring_.front()->revision;
      ring_bytes_ -= ring_history_bytes(*ring_.front());
      ring_.pop_front();
    }
    if (!events.empty()) revision_ = std::max(revision_, events.back().revision);
    sweep_locked();
    if (!batch.empty()) watchers = watchers_;
    auto end = waiters_.upper_bound(revision_);
    for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  for (const auto& watcher : watchers) deliver(*watcher, batch);
  for (auto& fn : ready) obs::contain("watch cache freshness", fn);
}

void WatchCache::advance(int64_t revision) {
  std::vector<std::shared_ptr<Watcher>> watchers;
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (revision <= revision_) return;
    revision_ = revision;
    sweep_locked();
    watchers = watchers_;
    auto end = waiters_.upper_bound(revision_);
    for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  // Watchers fed by the cache (not still catching up from the store) move with it, so their
  // bookmarks carry the new revision.
  for (const auto& watcher : watchers) {
    std::lock_guard<std::mutex> lock(watcher->mutex);
    if (watcher->cancelled || !watcher->ready || watcher->store_watch) continue;
    watcher->cursor = std::max(watcher->cursor, revision);
    watcher->progress.store(watcher->cursor, std::memory_order_release);
  }
  for (auto& fn : ready) obs::contain("watch cache freshness", fn);
}

api::Expected<WatchCache::Snapshot> WatchCache::list(int64_t revision,
                                                     const std::string& start_after) const {
  Snapshot snapshot;
  std::lock_guard<std::mutex> lock(mutex_);
  // The current state is always served, however far the store has compacted.
  const bool now = revision == 0 || revision == revision_;
  if (revision == 0) revision = revision_;
  if (revision > revision_) {
    return api::ApiError::timeout("Too large resource version: " + std::to_string(revision) +
                                  ", current: " + std::to_string(revision_));
  }
  // The store's compaction bounds what is served as well: history is kept as long as the
  // operator configured, the same with or without the cache.
  const int64_t oldest = std::max(oldest_, store_.compacted_revision());
  if (!now && revision < oldest) {
    return api::ApiError::expired("too old resource version: " + std::to_string(revision) + " (" +
                                  std::to_string(oldest) + ")");
  }
  snapshot.revision = revision;
  // The state at `revision`: the current one with every later event undone. Walking the ring
  // from the newest event back, the last prev written for a key is its state at `revision`.
  std::map<std::string, ObjectPtr> undone;
  for (auto it = ring_.rbegin(); it != ring_.rend() && (*it)->revision > revision; ++it) {
    undone[(*it)->object->key] = (*it)->type == EventType::kAdded ? nullptr : (*it)->prev;
  }
  auto current = start_after.empty() ? objects_.begin() : objects_.upper_bound(start_after);
  auto old = start_after.empty() ? undone.begin() : undone.upper_bound(start_after);
  snapshot.objects.reserve(objects_.size());
  while (current != objects_.end() || old != undone.end()) {
    if (old == undone.end() || (current != objects_.end() && current->first < old->first)) {
      snapshot.objects.push_back(current->second);
      ++current;
      continue;
    }
    if (current != objects_.end() && current->first == old->first) ++current;
    if (old->second) snapshot.objects.push_back(old->second);
    ++old;
  }
  return snapshot;
}

api::Expected<std::unique_ptr<Watch>> WatchCache::watch(int64_t after_revision, Sink sink,
                                                        ErrorSink on_error, Snapshot* initial) {
  auto watcher = std::make_shared<Watcher>();
  watcher->sink = std::move(sink);
  watcher->on_error = std::move(on_error);
  std::vector<EventPtr> backlog;
  bool in_ring = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (initial) {
      initial->revision = revision_;
      initial->objects.clear();
      initial->objects.reserve(objects_.size());
      for (const auto& [key, object] : objects_) initial->objects.push_back(object);
      after_revision = revision_;
    }
    sweep_locked();
    in_ring = after_revision >= oldest_ && after_revision >= store_.compacted_revision();
    if (in_ring) {
      auto first = std::upper_bound(
          ring_.begin(), ring_.end(), after_revision,
          [](int64_t revision, const EventPtr& event) { return revision < event->revision; });
      backlog.assign(first, ring_.end());
      watcher->cursor = std::max(after_revision, revision_);
      watchers_.push_back(watcher);
      registry_->active.fetch_add(1);
    }
  }
  if (!in_ring) {
    // Older than the ring: this watcher reads the store's retained history on its own watch.
    if (after_revision < store_.compacted_revision()) {
      return api::ApiError::expired("too old resource version: " + std::to_string(after_revision) +
                                    " (" + std::to_string(store_.compacted_revision()) + ")");
    }
    watcher->ready = true;
    watcher->cursor = after_revision;
    watcher->progress.store(after_revision);
    registry_->active.fetch_add(1);
    auto job = [store = &store_, prefix = prefix_, codec = codec_, watcher, after_revision] {
      {
        std::lock_guard<std::mutex> lock(watcher->mutex);
        if (watcher->cancelled) return;
      }
      auto store_watch = store->watch(
          prefix, after_revision, [codec, watcher](const std::vector<Event>& events) {
            std::vector<EventPtr> decoded;
            for (const Event& event : events) {
              ObjectPtr object = codec(event.record, event.revision);
              if (!object) continue;
              decoded.push_back(std::make_shared<CachedEvent>(
                  event.type, event.revision, std::move(object), nullptr,
                  event.type == EventType::kAdded));
            }
            deliver(*watcher, decoded);
          });
      std::unique_lock<std::mutex> lock(watcher->mutex);
      if (watcher->cancelled) {
        lock.unlock();
        if (store_watch) (*store_watch)->cancel();
        return;
      }
      if (!store_watch) {
        if (watcher->on_error) {
          obs::contain("watch cache error sink", [&] { watcher->on_error(store_watch.error()); });
        }
        return;
      }
      watcher->store_watch = std::move(*store_watch);
    };
    {
      std::lock_guard<std::mutex> lock(jobs_mutex_);
      jobs_.push_back(std::move(job));
    }
    jobs_wake_.notify_one();
    return std::unique_ptr<Watch>(std::make_unique<CacheWatch>(std::move(watcher), registry_));
  }
  {
    std::lock_guard<std::mutex> lock(watcher->mutex);
    if (!backlog.empty()) {
      obs::contain("watch cache sink", [&] { watcher->sink(backlog); });
    }
    watcher->ready = true;
    std::vector<EventPtr> held = std::move(watcher->held);
    watcher->held.clear();
    send_locked(*watcher, held);
    watcher->progress.store(watcher->cursor, std::memory_order_release);
  }
  return std::unique_ptr<Watch>(std::make_unique<CacheWatch>(std::move(watcher), registry_));
}

void WatchCache::sweep_locked() {
  if (!registry_->sweep.exchange(false)) return;
  std::erase_if(watchers_, [](const auto& w) {
    std::lock_guard<std::mutex> watcher_lock(w->mutex);
    return w->cancelled;
  });
}

void WatchCache::run_catch_up() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(jobs_mutex_);
      jobs_wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    obs::contain("watch cache catch-up", job);
  }
}

}  // namespace dpa::storage
