// The watch cache over both backends: lists now and at a past revision, watches replayed from its
// ring (with the object before each change), from the store's history when the ring is too
// short, 410 when even that is gone, and reads that wait until the cache has caught up.
#include "aggregator/storage/watch_cache.h"
#include "tests/storage/store_test_util.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace dpa::storage {
namespace {

using testing::BackendNames;
using testing::EngineBackends;
using testing::eventually;

// Served bytes: "<value>@<resourceVersion>"; attributes: read from the value as JSON.
ObjectPtr codec(const Record& record, int64_t resource_version) {
  if (record.value == "undecodable") return nullptr;
  auto object = std::make_shared<CachedObject>();
  object->key = record.key;
  object->create_revision = record.create_revision;
  object->resource_version = resource_version;
  object->bytes = record.value + "@" + std::to_string(resource_version);
  object->attributes = api::Attributes::of(nlohmann::json::parse(record.value, nullptr, false));
  return object;
}

// Records what a cache watch delivers.
class Received {
 public:
  WatchCache::Sink sink() {
    return [this](const std::vector<EventPtr>& events) {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.insert(events_.end(), events.begin(), events.end());
    };
  }
  WatchCache::ErrorSink on_error() {
    return [this](const api::ApiError& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      errors_.push_back(e.code);
    };
  }
  std::vector<EventPtr> events() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }
  std::vector<int> errors() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }
  bool wait_for(std::size_t n) {
    return eventually([&] { return events().size() >= n; });
  }

 private:
  mutable std::mutex mutex_;
  std::vector<EventPtr> events_;
  std::vector<int> errors_;
};

std::vector<std::string> bytes_of(const std::vector<ObjectPtr>& objects) {
  std::vector<std::string> out;
  for (const auto& o : objects) out.push_back(o->bytes);
  return out;
}

template <class Backend>
class WatchCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { open(StoreOptions{}, WatchCacheOptions{}); }
  void open(const StoreOptions& store_options, const WatchCacheOptions& cache_options) {
    cache_.reset();
    store_.reset();
    store_ = Backend::open(dir_.path(), store_options);
    ASSERT_NE(store_, nullptr);
    cache_options_ = cache_options;
  }
  void start_cache() {
    auto cache = WatchCache::start(*store_, "/r/", codec, cache_options_);
    ASSERT_TRUE(cache.ok()) << cache.error().message;
    cache_ = std::move(cache).value();
  }
  // Waits, as a consistent read does, until the cache has every acknowledged write.
  void sync() {
    std::atomic<bool> fresh{false};
    cache_->when_fresh(store_->current_revision(), [&] { fresh = true; });
    ASSERT_TRUE(eventually([&] { return fresh.load(); }));
  }
  int64_t put(const std::string& name, const std::string& value) {
    auto current = store_->get("/r/" + name);
    auto written = current.ok() ? store_->update("/r/" + name, value, 0)
                                : store_->create("/r/" + name, value);
    EXPECT_TRUE(written.ok());
    return written.ok() ? written->mod_revision : 0;
  }
  int64_t remove(const std::string& name) {
    auto removed = store_->remove("/r/" + name, 0);
    EXPECT_TRUE(removed.ok());
    return removed.ok() ? removed->mod_revision : 0;
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  WatchCacheOptions cache_options_;
  std::unique_ptr<WatchCache> cache_;
};

TYPED_TEST_SUITE(WatchCacheTest, EngineBackends, BackendNames);

TYPED_TEST(WatchCacheTest, ListsTheStateAndFollowsWrites) {
  this->put("b", R"({"n":1})");
  this->put("a", R"({"n":2})");
  ASSERT_TRUE(this->store_->create("/other/x", "{}").ok());  // outside the prefix
  this->start_cache();
  auto listed = this->cache_->list();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(bytes_of(listed->objects),
            (std::vector<std::string>{R"({"n":2})" "@2", R"({"n":1})" "@1"}));
  EXPECT_EQ(listed->revision, 3);

  this->put("c", R"({"n":3})");
  this->remove("b");
  this->sync();
  listed = this->cache_->list();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(bytes_of(listed->objects),
            (std::vector<std::string>{R"({"n":2})" "@2", R"({"n":3})" "@4"}));
  EXPECT_EQ(this->cache_->size(), 2u);
}

TYPED_TEST(WatchCacheTest, ListsTheStateAtAPastRevision) {
  this->start_cache();
  this->put("a", R"({"v":"a1"})");
  this->put("b", R"({"v":"b1"})");
  const int64_t then = this->put("c", R"({"v":"c1"})");
  this->put("a", R"({"v":"a2"})");
  this->remove("b");
  this->put("d", R"({"v":"d1"})");
  this->put("a", R"({"v":"a3"})");
  this->sync();

  auto past = this->cache_->list(then);
  ASSERT_TRUE(past.ok()) << past.error().message;
  EXPECT_EQ(past->revision, then);
  EXPECT_EQ(bytes_of(past->objects),
            (std::vector<std::string>{R"({"v":"a1"})" "@1", R"({"v":"b1"})" "@2",
                                      R"({"v":"c1"})" "@3"}));
  // Paging at that revision continues after a key, whatever happened since.
  auto page = this->cache_->list(then, "/r/a");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(bytes_of(page->objects),
            (std::vector<std::string>{R"({"v":"b1"})" "@2", R"({"v":"c1"})" "@3"}));
  auto now = this->cache_->list();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(bytes_of(now->objects),
            (std::vector<std::string>{R"({"v":"a3"})" "@7", R"({"v":"c1"})" "@3",
                                      R"({"v":"d1"})" "@6"}));
  auto future = this->cache_->list(this->store_->current_revision() + 5);
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.error().code, 504);
}

TYPED_TEST(WatchCacheTest, ARevisionOlderThanTheRingIsGone) {
  this->open(StoreOptions{}, WatchCacheOptions{3});
  this->start_cache();
  for (int i = 0; i < 6; ++i) this->put("a", R"({"i":)" + std::to_string(i) + "}");
  this->sync();
  EXPECT_EQ(this->cache_->oldest_revision(), 3);
  EXPECT_TRUE(this->cache_->list(3).ok());
  auto old = this->cache_->list(2);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, 410);
  EXPECT_EQ(old.error().message, "too old resource version: 2 (3)");
}

TYPED_TEST(WatchCacheTest, TheRingHoldsAtMostItsBytesOfHistory) {
  // Every update's previous state is 9 bytes ("{"i":N}@R"): 20 bytes hold two of them.
  WatchCacheOptions options;
  options.ring_bytes = 20;
  this->open(StoreOptions{}, options);
  this->start_cache();
  for (int i = 0; i < 6; ++i) this->put("a", R"({"i":)" + std::to_string(i) + "}");
  this->sync();
  EXPECT_EQ(this->cache_->oldest_revision(), 4);
  EXPECT_TRUE(this->cache_->list(4).ok());
  auto old = this->cache_->list(3);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, 410);

  // A watch from before the ring still gets every event, from the store's history.
  Received received;
  auto watch = this->cache_->watch(2, received.sink(), received.on_error());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(received.wait_for(4));
  auto events = received.events();
  ASSERT_EQ(events.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(events[i]->revision, 3 + i);
    EXPECT_EQ(events[i]->object->bytes,
              R"({"i":)" + std::to_string(2 + i) + "}@" + std::to_string(3 + i));
  }
}

TYPED_TEST(WatchCacheTest, AWatchReplaysTheMissedEventsInOrderWithTheirPreviousState) {
  this->start_cache();
  const int64_t seen = this->put("a", R"({"v":1})");
  this->put("a", R"({"v":2})");
  this->put("b", R"({"v":3})");
  this->remove("a");
  this->sync();

  Received received;
  auto watch = this->cache_->watch(seen, received.sink(), received.on_error());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(received.wait_for(3));
  auto events = received.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]->type, EventType::kModified);
  EXPECT_EQ(events[0]->object->bytes, R"({"v":2})" "@2");
  ASSERT_NE(events[0]->prev, nullptr);
  EXPECT_EQ(events[0]->prev->bytes, R"({"v":1})" "@1");
  EXPECT_EQ(events[1]->type, EventType::kAdded);
  EXPECT_EQ(events[1]->prev, nullptr);
  EXPECT_EQ(events[2]->type, EventType::kDeleted);
  EXPECT_EQ(events[2]->object->bytes, R"({"v":2})" "@4");  // the last state, at the delete
  EXPECT_EQ(events[2]->prev->bytes, R"({"v":2})" "@2");

  // Then live events, and the watch reports its progress.
  this->put("c", R"({"v":5})");
  ASSERT_TRUE(received.wait_for(4));
  EXPECT_EQ(received.events()[3]->revision, 5);
  EXPECT_TRUE(eventually([&] { return (*watch)->progress_revision() == 5; }));
  EXPECT_EQ(this->cache_->watchers(), 1u);
  (*watch)->cancel();
  EXPECT_EQ(this->cache_->watchers(), 0u);
  this->put("c", R"({"v":6})");
  this->sync();
  EXPECT_EQ(received.events().size(), 4u);
}

TYPED_TEST(WatchCacheTest, InitialStateAndLiveEventsHaveNoGapAndNoDuplicate) {
  this->start_cache();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) this->put("k" + std::to_string(i % 50), "{}");
  });
  ASSERT_TRUE(eventually([&] { return this->store_->current_revision() > 100; }));
  Received received;
  WatchCache::Snapshot initial;
  auto watch = this->cache_->watch(0, received.sink(), received.on_error(), &initial);
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(eventually([&] { return this->store_->current_revision() > initial.revision + 100; }));
  stop = true;
  writer.join();
  this->sync();
  const int64_t last = this->store_->current_revision();
  ASSERT_TRUE(eventually([&] {
    auto events = received.events();
    return !events.empty() && events.back()->revision == last;
  }));
  // Every revision after the snapshot, exactly once, in order (each write is one revision).
  int64_t expected = initial.revision + 1;
  for (const auto& event : received.events()) EXPECT_EQ(event->revision, expected++);
  EXPECT_EQ(expected, last + 1);
}

TYPED_TEST(WatchCacheTest, AWatchOlderThanTheRingCatchesUpFromTheStore) {
  this->open(StoreOptions{}, WatchCacheOptions{2});
  this->start_cache();
  const int64_t seen = this->put("a", R"({"v":1})");
  this->put("a", R"({"v":2})");
  this->put("b", R"({"v":3})");
  this->put("b", R"({"v":4})");
  this->sync();
  ASSERT_GT(this->cache_->oldest_revision(), seen);

  Received received;
  auto watch = this->cache_->watch(seen, received.sink(), received.on_error());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(received.wait_for(3));
  auto events = received.events();
  EXPECT_EQ(events[0]->revision, 2);
  EXPECT_EQ(events[0]->object->bytes, R"({"v":2})" "@2");
  EXPECT_FALSE(events[0]->prev_known);  // read back from the store: the state before is unknown
  EXPECT_TRUE(events[1]->prev_known);   // an ADDED has none
  this->put("c", R"({"v":5})");
  ASSERT_TRUE(received.wait_for(4));
  EXPECT_EQ(received.events()[3]->revision, 5);
  EXPECT_EQ(this->cache_->watchers(), 1u);
}

TYPED_TEST(WatchCacheTest, ARevisionCompactedInTheStoreIsGoneEvenWhileTheRingHasIt) {
  this->start_cache();
  for (int i = 0; i < 5; ++i) this->put("a", "{}");
  ASSERT_TRUE(this->store_->compact(3).ok());
  this->sync();
  Received received;
  auto gone = this->cache_->watch(2, received.sink(), received.on_error());
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, 410);
  EXPECT_EQ(gone.error().message, "too old resource version: 2 (3)");
  auto listed = this->cache_->list(2);
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.error().code, 410);
  EXPECT_TRUE(this->cache_->watch(3, received.sink(), received.on_error()).ok());
  EXPECT_TRUE(this->cache_->list(3).ok());

  // With a short ring, the same holds on the way to the store's history.
  this->open(StoreOptions{}, WatchCacheOptions{1});
  this->start_cache();
  for (int i = 0; i < 5; ++i) this->put("a", "{}");
  ASSERT_TRUE(this->store_->compact(this->store_->current_revision() - 1).ok());
  this->sync();
  gone = this->cache_->watch(this->store_->current_revision() - 3, received.sink(),
                             received.on_error());
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, 410);
}

TYPED_TEST(WatchCacheTest, FreshnessWaitsForTheRevision) {
  this->start_cache();
  this->put("a", "{}");
  this->sync();
  std::atomic<int> calls{0};
  const int64_t next = this->store_->current_revision() + 1;
  this->cache_->when_fresh(next, [&] { ++calls; });
  EXPECT_EQ(calls.load(), 0);
  this->put("b", "{}");
  EXPECT_TRUE(eventually([&] { return calls.load() == 1; }));
  this->cache_->when_fresh(next, [&] { ++calls; });  // already there: runs at once
  EXPECT_EQ(calls.load(), 2);
}

TYPED_TEST(WatchCacheTest, AnUndecodableValueIsLeftOutAndReportedGone) {
  this->start_cache();
  this->put("a", "{}");
  this->sync();
  Received received;
  auto watch = this->cache_->watch(this->store_->current_revision(), received.sink(),
                                   received.on_error());
  ASSERT_TRUE(watch.ok());
  this->put("a", "undecodable");
  ASSERT_TRUE(received.wait_for(1));
  EXPECT_EQ(received.events()[0]->type, EventType::kDeleted);
  auto listed = this->cache_->list();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->objects.empty());
}

}  // namespace
}  // namespace dpa::storage
