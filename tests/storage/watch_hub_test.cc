// WatchHub on its own: prefix filtering, cursor de-duplication, backlog chunking.
#include "aggregator/storage/watch_hub.h"
#include "tests/storage/store_test_util.h"

#include <gtest/gtest.h>

namespace dpa::storage {
namespace {

using testing::EventLog;
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
