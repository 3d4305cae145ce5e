#include "aggregator/observability/coalescer.h"
#include "aggregator/observability/containment.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace dpa::obs {
namespace {

using namespace std::chrono_literals;

// What the runs saw: each run records the latest generation the requester had published.
struct Runs {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<int> seen;
  std::vector<std::chrono::steady_clock::time_point> started;
  bool overlapped = false;
  bool running = false;

  bool wait_for_generation(int generation) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 10s, [&] { return !seen.empty() && seen.back() == generation; });
  }
};

TEST(Coalescer, ABurstCostsFewRunsAndTheLastRequestIsAlwaysFollowedByARun) {
  WorkerPool pool(2, "coalescer test");
  Runs runs;
  std::atomic<int> generation{0};
  Coalescer coalescer(pool.get_executor(), 50ms, [&] {
    const int now = generation.load();
    std::lock_guard lock(runs.mutex);
    runs.seen.push_back(now);
    runs.changed.notify_all();
  });
  for (int i = 1; i <= 1000; ++i) {
    generation = i;
    coalescer.request();
  }
  ASSERT_TRUE(runs.wait_for_generation(1000));
  std::lock_guard lock(runs.mutex);
  EXPECT_LT(runs.seen.size(), 10u);  // 1,000 requests, a handful of runs
  pool.join();
}

TEST(Coalescer, RunsNeverOverlapAreSpacedAndARequestDuringARunGetsAnother) {
  WorkerPool pool(2, "coalescer test");
  Runs runs;
  std::atomic<int> generation{0};
  std::mutex gate;
  std::unique_lock hold(gate);  // the first run waits here until the test lets it go
  std::atomic<bool> first_started{false};
  Coalescer coalescer(pool.get_executor(), 20ms, [&] {
    {
      std::lock_guard lock(runs.mutex);
      runs.overlapped = runs.overlapped || runs.running;
      runs.running = true;
      runs.started.push_back(std::chrono::steady_clock::now());
    }
    const int now = generation.load();
    if (!first_started.exchange(true)) {
      std::lock_guard wait(gate);
    }
    std::lock_guard lock(runs.mutex);
    runs.running = false;
    runs.seen.push_back(now);
    runs.changed.notify_all();
  });
  generation = 1;
  coalescer.request();
  while (!first_started) std::this_thread::yield();
  // Requests while the first run is in progress: they ask for one more run after it.
  generation = 2;
  coalescer.request();
  coalescer.request();
  hold.unlock();
  ASSERT_TRUE(runs.wait_for_generation(2));
  pool.join();
  std::lock_guard lock(runs.mutex);
  EXPECT_FALSE(runs.overlapped);
  ASSERT_EQ(runs.seen.size(), 2u);
  EXPECT_EQ(runs.seen[0], 1);
  EXPECT_GE(runs.started[1] - runs.started[0], 20ms);
}

}  // namespace
}  // namespace dpa::obs
