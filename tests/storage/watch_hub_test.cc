// WatchHub on its own: prefix filtering, cursor de-duplication, backlog chunking.
#include "aggregator/storage/watch_hub.h"
#include "tests/storage/store_test_util.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>

namespace dpa::storage {
namespace {

using testing::EventLog;
using testing::eventually;
using testing::revisions_of;

Event make_event(int64_t revision, const std::string& key) {
  return Event{EventType::kAdded, Record{key, "{}", revision, revision}, revision};
}

std::shared_ptr<const std::vector<Event>> batch(std::initializer_list<Event> events) {
  return std::make_shared<const std::vector<Event>>(events);
}

TEST(WatchHubTest, FiltersByPrefixAndSkipsRevisionsAtOrBelowTheCursor) {
  WatchHub hub;
  EventLog log;
  auto watch = hub.add("/a/", 2, {}, log.callback());
  hub.publish(batch({make_event(1, "/a/x"), make_event(2, "/a/y")}));  // already covered
  hub.publish(batch({make_event(3, "/a/z"), make_event(4, "/b/z"), make_event(5, "/a/w")}));
  ASSERT_TRUE(log.wait_for(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(revisions_of(log.events()), (std::vector<int64_t>{3, 5}));
}

TEST(WatchHubTest, DeliversALargeBacklogInOrderBeforeLiveEvents) {
  WatchHub hub;
  std::vector<Event> backlog;
  const int64_t n = static_cast<int64_t>(WatchHub::kMaxEventsPerCallback) * 2 + 7;
  for (int64_t r = 1; r <= n; ++r) backlog.push_back(make_event(r, "/k"));
  std::atomic<std::size_t> largest_call{0};
  EventLog log;
  auto inner = log.callback();
  auto watch = hub.add("", n, std::move(backlog), [&](const std::vector<Event>& events) {
    largest_call = std::max(largest_call.load(), events.size());
    inner(events);
  });
  hub.publish(batch({make_event(n + 1, "/k")}));
  ASSERT_TRUE(log.wait_for(static_cast<std::size_t>(n + 1)));
  auto seen = revisions_of(log.events());
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], static_cast<int64_t>(i) + 1);
  EXPECT_LE(largest_call.load(), WatchHub::kMaxEventsPerCallback);
}

TEST(WatchHubTest, ProgressMovesWatchersInOrderWithTheEvents) {
  WatchHub hub;
  EventLog log;
  std::mutex mutex;
  std::vector<std::string> order;  // events and progress, as the watcher saw them
  auto inner = log.callback();
  auto watch = hub.add(
      "/p/", 0, {},
      [&](const std::vector<Event>& events) {
        inner(events);
        std::lock_guard<std::mutex> lock(mutex);
        for (const auto& e : events) order.push_back("event " + std::to_string(e.revision));
      },
      [&](int64_t revision) {
        std::lock_guard<std::mutex> lock(mutex);
        order.push_back("progress " + std::to_string(revision));
      });
  hub.publish(batch({make_event(1, "/p/a")}));
  hub.advance(4);
  hub.advance(3);  // behind the cursor: nothing
  hub.publish(batch({make_event(5, "/p/b")}));
  ASSERT_TRUE(log.wait_for(2));
  ASSERT_TRUE(eventually([&] { return watch->progress_revision() == 5; }));
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(order, (std::vector<std::string>{"event 1", "progress 4", "event 5"}));
}

TEST(WatchHubTest, StoppedHubDropsWatchesSafely) {
  auto hub = std::make_unique<WatchHub>();
  EventLog log;
  auto watch = hub->add("", 0, {}, log.callback());
  EXPECT_EQ(hub->active_watchers(), 1u);
  hub.reset();
  watch->cancel();  // the hub is gone: cancelling must still be safe
  watch.reset();
  EXPECT_EQ(log.size(), 0u);
}

}  // namespace
}  // namespace dpa::storage
