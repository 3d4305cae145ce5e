#include "aggregator/storage/watch_hub.h"

#include "aggregator/observability/containment.h"
#include "aggregator/storage/store_common.h"

#include <algorithm>
#include <deque>
#include <exception>
#include <utility>

namespace dpa::storage {

struct WatchHub::Watcher {
  std::string prefix;
  WatchCallback callback;
  ProgressCallback on_progress;
  // Only the notification thread touches these two after registration.
  int64_t cursor = 0;
  std::vector<Event> backlog;
  // Held while the callback runs, so cancel() from another thread waits for it to finish.
  std::mutex delivery_mutex;
  std::atomic<bool> cancelled{false};
  // Published for Watch::progress_revision(): cursor once the events up to it were delivered.
  std::atomic<int64_t> progress{0};
};

struct WatchHub::Shared {
  mutable std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  // A batch of events, or (batch null) word that nothing changed up to `progress`.
  struct Item {
    std::shared_ptr<const std::vector<Event>> batch;
    int64_t progress = 0;
  };
  std::deque<Item> queue;
  std::vector<std::shared_ptr<Watcher>> added;
  std::atomic<std::size_t> active{0};
  std::atomic<bool> sweep_needed{false};
  std::thread::id notification_thread;
};

namespace {

class HubWatch final : public Watch {
 public:
  HubWatch(std::shared_ptr<WatchHub::Watcher> watcher, std::weak_ptr<WatchHub::Shared> shared,
           std::thread::id notification_thread)
      : watcher_(std::move(watcher)),
        shared_(std::move(shared)),
        notification_thread_(notification_thread) {}
  ~HubWatch() override { cancel(); }

  void cancel() override {
    if (!watcher_) return;
    if (std::this_thread::get_id() == notification_thread_) {
      // Called from a callback: the hub thread is the only one delivering, so after the flag is
      // set no further call can start; waiting on delivery_mutex here would deadlock.
      mark_cancelled();
    } else {
      std::lock_guard<std::mutex> lock(watcher_->delivery_mutex);
      mark_cancelled();
    }
    watcher_.reset();
  }

  int64_t progress_revision() const override {
    return watcher_ ? watcher_->progress.load(std::memory_order_acquire) : 0;
  }

 private:
  void mark_cancelled() {
    if (watcher_->cancelled.exchange(true)) return;
    if (auto shared = shared_.lock()) {
      shared->active.fetch_sub(1);
      shared->sweep_needed.store(true);
      shared->wake.notify_one();
    }
  }

  std::shared_ptr<WatchHub::Watcher> watcher_;
  std::weak_ptr<WatchHub::Shared> shared_;
  std::thread::id notification_thread_;
};


// Runs one callback; a throwing callback must not take the notification thread down.
void invoke(WatchHub::Watcher& watcher, const std::vector<Event>& events) {
  std::lock_guard<std::mutex> lock(watcher.delivery_mutex);
  if (watcher.cancelled.load()) return;
  obs::contain("storage watch callback", [&] { watcher.callback(events); });
}

void deliver_backlog(WatchHub::Watcher& watcher) {
  std::vector<Event> backlog = std::move(watcher.backlog);
  watcher.backlog.clear();
  for (std::size_t begin = 0; begin < backlog.size(); begin += WatchHub::kMaxEventsPerCallback) {
    if (watcher.cancelled.load()) return;
    std::size_t end = std::min(backlog.size(), begin + WatchHub::kMaxEventsPerCallback);
    if (begin == 0 && end == backlog.size()) {
      invoke(watcher, backlog);
    } else {
      std::vector<Event> chunk(std::make_move_iterator(backlog.begin() + begin),
                               std::make_move_iterator(backlog.begin() + end));
      invoke(watcher, chunk);
    }
  }
  watcher.progress.store(watcher.cursor, std::memory_order_release);
}

void deliver_progress(WatchHub::Watcher& watcher, int64_t revision) {
  if (watcher.cancelled.load() || revision <= watcher.cursor) return;
  watcher.cursor = revision;
  watcher.progress.store(watcher.cursor, std::memory_order_release);
  if (!watcher.on_progress) return;
  std::lock_guard<std::mutex> lock(watcher.delivery_mutex);
  if (watcher.cancelled.load()) return;
  obs::contain("storage watch progress callback", [&] { watcher.on_progress(revision); });
}

void deliver_batch(WatchHub::Watcher& watcher, const std::vector<Event>& batch) {
  if (watcher.cancelled.load() || batch.empty()) return;
  bool all_match = batch.front().revision > watcher.cursor;
  for (const Event& event : batch) {
    if (!all_match) break;
    all_match = has_prefix(event.record.key, watcher.prefix);
  }
  if (all_match) {
    // The common case (a watch on the whole collection): every watcher shares the same vector.
    invoke(watcher, batch);
  } else {
    std::vector<Event> filtered;
    for (const Event& event : batch) {
      if (event.revision > watcher.cursor && has_prefix(event.record.key, watcher.prefix)) {
        filtered.push_back(event);
      }
    }
    if (!filtered.empty()) invoke(watcher, filtered);
  }
  watcher.cursor = std::max(watcher.cursor, batch.back().revision);
  watcher.progress.store(watcher.cursor, std::memory_order_release);
}

}  // namespace

WatchHub::WatchHub() : shared_(std::make_shared<Shared>()) {
  std::unique_lock<std::mutex> lock(shared_->mutex);
  thread_ = std::thread([this] { run(); });
  shared_->notification_thread = thread_.get_id();
}

WatchHub::~WatchHub() { stop(); }

std::unique_ptr<Watch> WatchHub::add(std::string prefix, int64_t cursor,
                                     std::vector<Event> backlog, WatchCallback callback,
                                     ProgressCallback on_progress) {
  auto watcher = std::make_shared<Watcher>();
  watcher->prefix = std::move(prefix);
  watcher->callback = std::move(callback);
  watcher->on_progress = std::move(on_progress);
  watcher->cursor = cursor;
  watcher->backlog = std::move(backlog);
  // Until the backlog is delivered, progress stops just before its first event.
  watcher->progress.store(watcher->backlog.empty() ? cursor
                                                    : watcher->backlog.front().revision - 1);
  std::thread::id notification_thread;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    notification_thread = shared_->notification_thread;
    if (!shared_->stopping) {
      shared_->added.push_back(watcher);
      shared_->active.fetch_add(1);
    } else {
      watcher->cancelled.store(true);
    }
  }
  shared_->wake.notify_one();
  return std::make_unique<HubWatch>(std::move(watcher), shared_, notification_thread);
}

void WatchHub::publish(std::shared_ptr<const std::vector<Event>> batch) {
  if (!batch || batch->empty()) return;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->stopping) return;
    shared_->queue.push_back({std::move(batch), 0});
  }
  shared_->wake.notify_one();
}

void WatchHub::advance(int64_t revision) {
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->stopping) return;
    shared_->queue.push_back({nullptr, revision});
  }
  shared_->wake.notify_one();
}

std::size_t WatchHub::active_watchers() const { return shared_->active.load(); }

void WatchHub::stop() {
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->stopping = true;
  }
  shared_->wake.notify_one();
  if (thread_.joinable()) thread_.join();
}

void WatchHub::run() {
  // Owned by this thread alone: no lock is needed to walk it.
  std::vector<std::shared_ptr<Watcher>> watchers;
  {
    // The constructor publishes notification_thread under the mutex before we may read it.
    std::lock_guard<std::mutex> lock(shared_->mutex);
  }
  for (;;) {
    std::vector<std::shared_ptr<Watcher>> added;
    std::deque<Shared::Item> batches;
    {
      std::unique_lock<std::mutex> lock(shared_->mutex);
      shared_->wake.wait(lock, [&] {
        return shared_->stopping || !shared_->queue.empty() || !shared_->added.empty() ||
               shared_->sweep_needed.load();
      });
      if (shared_->stopping) break;
      added.swap(shared_->added);
      batches.swap(shared_->queue);
    }
    if (shared_->sweep_needed.exchange(false)) {
      std::erase_if(watchers, [](const auto& w) { return w->cancelled.load(); });
    }
    // Backlogs first: every batch taken above was published after (or filtered by the cursor
    // of) each watcher registered before it, so this order is revision order per watcher.
    for (auto& watcher : added) {
      deliver_backlog(*watcher);
      watchers.push_back(std::move(watcher));
    }
    for (const auto& item : batches) {
      for (const auto& watcher : watchers) {
        if (item.batch) {
          deliver_batch(*watcher, *item.batch);
        } else {
          deliver_progress(*watcher, item.progress);
        }
      }
    }
  }
}

}  // namespace dpa::storage
