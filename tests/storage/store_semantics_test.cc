// The Store contract, run against SqliteStore, MemoryStore and the etcd3 backend (a real etcd): the
// fake other components test with must behave exactly like the real things. Revisions are counted
// from the store's revision when the test opened it (r(1) is its first write): etcd's revisions
// are shared by every test in the binary.
#include "aggregator/storage/memory_store.h"
#include "aggregator/storage/sqlite_store.h"
#include "tests/storage/store_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <thread>

namespace dpa::storage {
namespace {

using testing::EventLog;
using testing::MemoryBackend;
using testing::SqliteBackend;
using testing::Backends;
using testing::active_watches;
using testing::BackendNames;
using testing::TempDir;
using testing::eventually;
using testing::revisions_of;

template <class Backend>
class StoreSemanticsTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(StoreOptions{}); }
  void reopen(const StoreOptions& options) {
    store_.reset();
    store_ = Backend::open(dir_.path(), options);
    ASSERT_NE(store_, nullptr);
    base_ = store_->current_revision();
  }
  Store& store() { return *store_; }
  // The store's n-th revision since the test opened it.
  int64_t r(int64_t n) const { return base_ + n; }
  static constexpr bool kEtcd = std::is_same_v<Backend, testing::EtcdBackend>;

  TempDir dir_;
  std::unique_ptr<Store> store_;
  int64_t base_ = 0;
};

TYPED_TEST_SUITE(StoreSemanticsTest, Backends, BackendNames);

TYPED_TEST(StoreSemanticsTest, CrudAssignsIncreasingRevisions) {
  Store& store = this->store();
  auto a = store.create("/a", R"({"v":1})");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->create_revision, this->r(1));
  EXPECT_EQ(a->mod_revision, this->r(1));
  auto b = store.create("/b", R"({"v":2})");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->mod_revision, this->r(2));

  auto got = store.get("/a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value, R"({"v":1})");
  EXPECT_EQ(got->mod_revision, this->r(1));

  auto updated = store.update("/a", R"({"v":3})", this->r(1));
  ASSERT_TRUE(updated.ok()) << updated.error().message;
  EXPECT_EQ(updated->create_revision, this->r(1));
  EXPECT_EQ(updated->mod_revision, this->r(3));
  EXPECT_EQ(store.get("/a")->value, R"({"v":3})");

  auto removed = store.remove("/b", 0);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->value, R"({"v":2})");
  EXPECT_EQ(removed->create_revision, this->r(2));
  EXPECT_EQ(removed->mod_revision, this->r(4));
  EXPECT_EQ(store.get("/b").error().code, 404);
  EXPECT_EQ(store.current_revision(), this->r(4));

  // A deleted key can be created again, with a fresh create revision.
  auto again = store.create("/b", "{}");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->create_revision, this->r(5));
}

TYPED_TEST(StoreSemanticsTest, ConflictsAndMissingKeysDoNotConsumeRevisions) {
  Store& store = this->store();
  ASSERT_TRUE(store.create("/k", "1").ok());

  auto duplicate = store.create("/k", "2");
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.error().code, 409);
  EXPECT_EQ(duplicate.error().reason, "AlreadyExists");

  auto stale_update = store.update("/k", "2", this->r(7));
  ASSERT_FALSE(stale_update.ok());
  EXPECT_EQ(stale_update.error().code, 409);
  EXPECT_EQ(stale_update.error().reason, "Conflict");

  auto stale_remove = store.remove("/k", this->r(7));
  ASSERT_FALSE(stale_remove.ok());
  EXPECT_EQ(stale_remove.error().code, 409);

  EXPECT_EQ(store.update("/missing", "1", 0).error().code, 404);
  EXPECT_EQ(store.remove("/missing", 0).error().code, 404);
  EXPECT_EQ(store.get("/missing").error().code, 404);
  EXPECT_EQ(store.create("", "1").error().code, 400);

  EXPECT_EQ(store.current_revision(), this->r(1));
  EXPECT_EQ(store.get("/k")->value, "1");

  auto unconditional = store.update("/k", "3", 0);
  ASSERT_TRUE(unconditional.ok());
  EXPECT_EQ(unconditional->mod_revision, this->r(2));
}

TYPED_TEST(StoreSemanticsTest, ListPagesWithPrefixStartAfterAndLimit) {
  Store& store = this->store();
  for (const char* key : {"/a/3", "/a/1", "/b/1", "/a/5", "/a/2", "/a/4", "/ab"}) {
    ASSERT_TRUE(store.create(key, "{}").ok());
  }
  std::vector<std::string> seen;
  ListOptions options{.prefix = "/a/", .start_after = "", .limit = 2};
  for (int page = 0; page < 10; ++page) {
    auto result = store.list(options);
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->revision, this->r(7));
    for (const Record& record : result->items) seen.push_back(record.key);
    if (!result->more) break;
    ASSERT_EQ(result->items.size(), 2u);
    options.start_after = result->items.back().key;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"/a/1", "/a/2", "/a/3", "/a/4", "/a/5"}));

  auto exact = store.list({.prefix = "/a/", .start_after = "/a/3", .limit = 2});
  ASSERT_TRUE(exact.ok());
  ASSERT_EQ(exact->items.size(), 2u);
  EXPECT_FALSE(exact->more);  // exactly two left: no further page

  auto all = store.list({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->items.size(), 7u);
  EXPECT_TRUE(std::is_sorted(all->items.begin(), all->items.end(),
                             [](const Record& x, const Record& y) { return x.key < y.key; }));
  EXPECT_FALSE(all->more);

  auto none = store.list({.prefix = "/zzz"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->items.empty());
}

TYPED_TEST(StoreSemanticsTest, WatchReplaysLaterHistoryThenLiveEvents) {
  Store& store = this->store();
  ASSERT_TRUE(store.create("/w/a", "1").ok());     // 1
  ASSERT_TRUE(store.create("/w/b", "2").ok());     // 2
  ASSERT_TRUE(store.create("/other", "x").ok());   // 3
  ASSERT_TRUE(store.update("/w/a", "3", this->r(1)).ok());  // 4

  EventLog log;
  auto watch = store.watch("/w/", this->r(1), log.callback());
  ASSERT_TRUE(watch.ok()) << watch.error().message;
  ASSERT_TRUE(log.wait_for(2));

  ASSERT_TRUE(store.remove("/w/b", this->r(2)).ok());  // 5
  ASSERT_TRUE(store.create("/other2", "y").ok());  // 6
  ASSERT_TRUE(store.create("/w/c", "4").ok());     // 7
  ASSERT_TRUE(log.wait_for(4));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // nothing else may arrive

  auto events = log.events();
  EXPECT_EQ(revisions_of(events),
            (std::vector<int64_t>{this->r(2), this->r(4), this->r(5), this->r(7)}));
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, EventType::kAdded);
  EXPECT_EQ(events[0].record.key, "/w/b");
  EXPECT_EQ(events[1].type, EventType::kModified);
  EXPECT_EQ(events[1].record.value, "3");
  EXPECT_EQ(events[1].record.create_revision, this->r(1));
  EXPECT_EQ(events[2].type, EventType::kDeleted);
  EXPECT_EQ(events[2].record.value, "2");  // the last stored value
  EXPECT_EQ(events[2].record.mod_revision, this->r(5));
  EXPECT_EQ(events[3].record.key, "/w/c");
}

TYPED_TEST(StoreSemanticsTest, WatchFromCurrentOrFutureRevisionSeesOnlyLaterEvents) {
  Store& store = this->store();
  ASSERT_TRUE(store.create("/k1", "1").ok());
  EventLog from_current;
  EventLog from_future;
  auto w1 = store.watch("", store.current_revision(), from_current.callback());
  auto w2 = store.watch("", this->r(3), from_future.callback());
  ASSERT_TRUE(w1.ok() && w2.ok());
  for (int i = 2; i <= 4; ++i) ASSERT_TRUE(store.create("/k" + std::to_string(i), "1").ok());
  ASSERT_TRUE(from_current.wait_for(3));
  ASSERT_TRUE(from_future.wait_for(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(revisions_of(from_current.events()),
            (std::vector<int64_t>{this->r(2), this->r(3), this->r(4)}));
  EXPECT_EQ(revisions_of(from_future.events()), (std::vector<int64_t>{this->r(4)}));
}

TYPED_TEST(StoreSemanticsTest, WatchFromCompactedRevisionIsExpired) {
  Store& store = this->store();
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(store.create("/c/" + std::to_string(i), "{}").ok());
  ASSERT_TRUE(store.compact(this->r(3)).ok());
  EXPECT_EQ(store.compacted_revision(), this->r(3));

  auto too_old = store.watch("/c/", this->r(2), [](const std::vector<Event>&) {});
  ASSERT_FALSE(too_old.ok());
  EXPECT_EQ(too_old.error().code, 410);
  EXPECT_EQ(too_old.error().reason, "Expired");
  EXPECT_EQ(too_old.error().message, "too old resource version: " + std::to_string(this->r(2)) +
                                         " (" + std::to_string(this->r(3)) + ")");

  EventLog log;
  auto oldest = store.watch("/c/", this->r(3), log.callback());
  ASSERT_TRUE(oldest.ok());
  ASSERT_TRUE(log.wait_for(2));
  EXPECT_EQ(revisions_of(log.events()), (std::vector<int64_t>{this->r(4), this->r(5)}));

  // Compacting backwards is a no-op; past the current revision is a bad request.
  EXPECT_TRUE(store.compact(this->r(1)).ok());
  EXPECT_EQ(store.compacted_revision(), this->r(3));
  auto future = store.compact(this->r(99));
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.error().code, 400);
  // Reads are unaffected by compaction.
  EXPECT_TRUE(store.get("/c/1").ok());
}

TYPED_TEST(StoreSemanticsTest, ThousandWatchersAllReceiveAnEvent) {
  Store& store = this->store();
  constexpr int kWatchers = 1000;
  std::vector<std::atomic<int>> received(kWatchers);
  std::vector<std::unique_ptr<Watch>> watches;
  for (int i = 0; i < kWatchers; ++i) {
    auto watch = store.watch("/fan/", this->r(0), [&received, i](const std::vector<Event>& events) {
      received[i].fetch_add(static_cast<int>(events.size()));
    });
    ASSERT_TRUE(watch.ok());
    watches.push_back(std::move(watch).value());
  }
  EXPECT_EQ(active_watches(*this->store_), static_cast<std::size_t>(kWatchers));
  ASSERT_TRUE(store.create("/fan/one", "{}").ok());
  ASSERT_TRUE(eventually([&] {
    return std::all_of(received.begin(), received.end(), [](const auto& n) { return n >= 1; });
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (const auto& n : received) EXPECT_EQ(n.load(), 1);
  watches.clear();
  EXPECT_EQ(active_watches(*this->store_), 0u);
}

TYPED_TEST(StoreSemanticsTest, ConcurrentWritersGetUniqueIncreasingRevisions) {
  Store& store = this->store();
  constexpr int kThreads = 6;
  constexpr int kWrites = 60;
  EventLog log;
  auto watch = store.watch("", this->r(0), log.callback());
  ASSERT_TRUE(watch.ok());

  std::vector<std::vector<int64_t>> revisions(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, &revisions, t] {
      for (int i = 0; i < kWrites; ++i) {
        auto key = "/t" + std::to_string(t) + "/" + std::to_string(i);
        auto created = store.create(key, "{}");
        if (!created.ok()) return;
        revisions[t].push_back(created->mod_revision);
        // Conditional updates racing with other threads' creates: the expected revision is ours.
        auto updated = store.update(key, R"({"u":1})", created->mod_revision);
        if (!updated.ok()) return;
        revisions[t].push_back(updated->mod_revision);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  std::set<int64_t> all;
  for (const auto& mine : revisions) {
    ASSERT_EQ(mine.size(), static_cast<std::size_t>(2 * kWrites));
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    all.insert(mine.begin(), mine.end());
  }
  const int64_t total = 2 * kThreads * kWrites;
  EXPECT_EQ(static_cast<int64_t>(all.size()), total);
  EXPECT_EQ(*all.begin(), this->r(1));
  EXPECT_EQ(*all.rbegin(), this->r(total));
  EXPECT_EQ(store.current_revision(), this->r(total));

  // The watcher saw every revision exactly once, in order.
  ASSERT_TRUE(log.wait_for(static_cast<std::size_t>(total)));
  auto seen = revisions_of(log.events());
  ASSERT_EQ(static_cast<int64_t>(seen.size()), total);
  for (int64_t i = 0; i < total; ++i) EXPECT_EQ(seen[i], this->r(i + 1));
}

TYPED_TEST(StoreSemanticsTest, WatchStartedDuringWritesHasNoGapOrDuplicate) {
  Store& store = this->store();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load() && i < 2000; ++i) {
      if (!store.create("/g/" + std::to_string(i), "{}").ok()) return;
    }
  });
  std::vector<std::unique_ptr<EventLog>> logs;
  std::vector<std::unique_ptr<Watch>> watches;
  std::vector<int64_t> starts;
  for (int i = 0; i < 20; ++i) {
    int64_t start = this->r((store.current_revision() - this->r(0)) / 2);
    logs.push_back(std::make_unique<EventLog>());
    auto watch = store.watch("/g/", start, logs.back()->callback());
    ASSERT_TRUE(watch.ok());
    watches.push_back(std::move(watch).value());
    starts.push_back(start);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop = true;
  writer.join();
  const int64_t last = store.current_revision();
  for (std::size_t w = 0; w < logs.size(); ++w) {
    ASSERT_TRUE(logs[w]->wait_for(static_cast<std::size_t>(last - starts[w])));
    auto seen = revisions_of(logs[w]->events());
    ASSERT_EQ(static_cast<int64_t>(seen.size()), last - starts[w]);
    for (std::size_t i = 0; i < seen.size(); ++i) {
      ASSERT_EQ(seen[i], starts[w] + 1 + static_cast<int64_t>(i)) << "watch " << w;
    }
  }
}

TYPED_TEST(StoreSemanticsTest, CancelledWatchIsNeverCalledAgain) {
  Store& store = this->store();
  std::atomic<int> calls{0};
  std::atomic<bool> inside{false};
  auto watch = store.watch("", this->r(0), [&](const std::vector<Event>&) {
    inside = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    calls.fetch_add(1);
    inside = false;
  });
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(store.create("/x1", "{}").ok());
  ASSERT_TRUE(eventually([&] { return inside.load() || calls.load() > 0; }));
  (*watch)->cancel();
  // cancel() waited for a running callback: none is running now, and none may start.
  EXPECT_FALSE(inside.load());
  const int after_cancel = calls.load();
  for (int i = 2; i <= 5; ++i) ASSERT_TRUE(store.create("/x" + std::to_string(i), "{}").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls.load(), after_cancel);
  (*watch)->cancel();  // idempotent
}

TYPED_TEST(StoreSemanticsTest, WatchCanCancelItselfFromItsCallback) {
  Store& store = this->store();
  std::atomic<int> calls{0};
  std::unique_ptr<Watch> self;
  std::mutex self_mutex;
  auto watch = store.watch("", this->r(0), [&](const std::vector<Event>&) {
    calls.fetch_add(1);
    std::lock_guard<std::mutex> lock(self_mutex);
    if (self) self->cancel();
  });
  ASSERT_TRUE(watch.ok());
  {
    std::lock_guard<std::mutex> lock(self_mutex);
    self = std::move(watch).value();
  }
  ASSERT_TRUE(store.create("/s1", "{}").ok());
  ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
  ASSERT_TRUE(store.create("/s2", "{}").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls.load(), 1);
}

TYPED_TEST(StoreSemanticsTest, ProgressRevisionAdvancesPastNonMatchingChanges) {
  Store& store = this->store();
  ASSERT_TRUE(store.create("/p/1", "{}").ok());  // 1
  ASSERT_TRUE(store.create("/q/1", "{}").ok());  // 2
  EventLog log;
  auto watch = store.watch("/p/", this->r(0), log.callback());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(log.wait_for(1));
  ASSERT_TRUE(eventually([&] { return (*watch)->progress_revision() == this->r(2); }));
  // Changes outside the prefix still move the safe bookmark revision forward.
  ASSERT_TRUE(store.create("/q/2", "{}").ok());  // 3
  ASSERT_TRUE(eventually([&] { return (*watch)->progress_revision() == this->r(3); }));
  EXPECT_EQ(log.size(), 1u);
  (*watch)->cancel();
  EXPECT_EQ((*watch)->progress_revision(), 0);
}

TYPED_TEST(StoreSemanticsTest, AutomaticCompactionKeepsTheLastRevisions) {
  if (TestFixture::kEtcd) GTEST_SKIP() << "etcd compacts by --etcd-compaction-interval (etcd_store_test)";
  StoreOptions options;
  options.retain_revisions = 5;
  options.retain_duration = std::chrono::seconds(0);
  options.compaction_interval = std::chrono::milliseconds(20);
  this->reopen(options);
  Store& store = this->store();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store.create("/ac/" + std::to_string(i), "{}").ok());
  ASSERT_TRUE(eventually([&] { return store.compacted_revision() == 15; }))
      << store.compacted_revision();
  EXPECT_EQ(store.watch("", 14, [](const std::vector<Event>&) {}).error().code, 410);
  EventLog log;
  auto watch = store.watch("", 15, log.callback());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(log.wait_for(5));
  EXPECT_EQ(revisions_of(log.events()), (std::vector<int64_t>{16, 17, 18, 19, 20}));
}

TYPED_TEST(StoreSemanticsTest, AutomaticCompactionByAge) {
  if (TestFixture::kEtcd) GTEST_SKIP() << "etcd compacts by --etcd-compaction-interval (etcd_store_test)";
  StoreOptions options;
  options.retain_revisions = 0;
  options.retain_duration = std::chrono::seconds(1);
  options.compaction_interval = std::chrono::milliseconds(50);
  this->reopen(options);
  Store& store = this->store();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store.create("/age/" + std::to_string(i), "{}").ok());
  EXPECT_EQ(store.compacted_revision(), 0);
  // Once older than the window, all history goes; the data stays.
  ASSERT_TRUE(eventually([&] { return store.compacted_revision() == 3; }));
  EXPECT_EQ(store.list({.prefix = "/age/"})->items.size(), 3u);
}

}  // namespace
}  // namespace dpa::storage
