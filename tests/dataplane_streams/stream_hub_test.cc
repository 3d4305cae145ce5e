// StreamHub: one RunStream per channel shared by its subscribers, cancellation after the last one
// leaves, re-runs with back-off, EOF, slow subscribers, publish fan-out and shutdown.
#include "aggregator/dataplane/stream_hub.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace dpa::dataplane {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class RecordingSubscriber : public StreamSubscriber {
 public:
  void send(const std::string& packet) override {
    std::lock_guard lock(mutex);
    packets.push_back(packet);
    cv.notify_all();
  }
  std::size_t pending_bytes() const override { return pending.load(); }
  void end(EndReason reason) override {
    std::lock_guard lock(mutex);
    ended = reason;
    cv.notify_all();
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mutex);
    return packets;
  }
  bool wait_packets(std::size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 3s, [&] { return packets.size() >= n; });
  }
  bool wait_end() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 3s, [&] { return ended.has_value(); });
  }

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> packets;
  std::optional<EndReason> ended;
  std::atomic<std::size_t> pending{0};
};

// Stands in for the plugin's RunStream: records each run; the test pushes packets or ends runs.
class FakeStreamSource {
 public:
  struct Run {
    std::function<void(std::string)> on_packet;
    std::function<void(api::Outcome)> done;
    std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
    Clock::time_point started;
  };

  class Call : public plugin::StreamCall {
   public:
    explicit Call(std::shared_ptr<std::atomic<bool>> cancelled) : cancelled_(std::move(cancelled)) {}
    void cancel() override { cancelled_->store(true); }

   private:
    std::shared_ptr<std::atomic<bool>> cancelled_;
  };

  StreamHub::Starter starter() {
    return [this](std::function<void(std::string)> on_packet,
                  std::function<void(api::Outcome)> done)
               -> api::Expected<std::unique_ptr<plugin::StreamCall>> {
      std::lock_guard lock(mutex_);
      if (fail_to_start) return api::ApiError::unavailable("plugin unavailable");
      Run run;
      run.on_packet = std::move(on_packet);
      run.done = std::move(done);
      run.started = Clock::now();
      runs_.push_back(run);
      cv_.notify_all();
      return std::unique_ptr<plugin::StreamCall>(std::make_unique<Call>(run.cancelled));
    };
  }

  std::size_t runs() {
    std::lock_guard lock(mutex_);
    return runs_.size();
  }
  Run run(std::size_t i) {
    std::lock_guard lock(mutex_);
    return runs_.at(i);
  }
  bool wait_runs(std::size_t n, std::chrono::milliseconds timeout = 3s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return runs_.size() >= n; });
  }

  bool fail_to_start = false;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Run> runs_;
};

class StreamHubTest : public ::testing::Test {
 protected:
  void SetUp() override { thread_ = std::thread([this] { io_.run(); }); }
  void TearDown() override {
    if (hub_) hub_->stop_all();
    hub_.reset();
    work_.reset();
    thread_.join();
  }
  void make_hub(StreamHub::Options options = {}) {
    hub_ = StreamHub::create(io_.get_executor(), options);
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::shared_ptr<StreamHub> hub_;
  FakeStreamSource source_;
  const ChannelKey key_{"ds1", "counter", "{\"intervalMs\":10}"};
};

TEST_F(StreamHubTest, TwoSubscribersShareOneRunAndBothGetEveryPacket) {
  make_hub();
  auto a = std::make_shared<RecordingSubscriber>();
  auto b = std::make_shared<RecordingSubscriber>();
  const auto id_a = hub_->subscribe(key_, source_.starter(), a);
  const auto id_b = hub_->subscribe(key_, source_.starter(), b);
  ASSERT_NE(id_a, 0u);
  ASSERT_NE(id_b, 0u);
  ASSERT_EQ(source_.runs(), 1u);  // one RunStream per channel
  EXPECT_EQ(hub_->stats().channels, 1u);
  EXPECT_EQ(hub_->stats().subscribers, 2u);

  auto run = source_.run(0);
  for (int i = 0; i < 3; ++i) run.on_packet("{\"n\":" + std::to_string(i) + "}");
  EXPECT_EQ(a->snapshot(), (std::vector<std::string>{"{\"n\":0}", "{\"n\":1}", "{\"n\":2}"}));
  EXPECT_EQ(b->snapshot(), a->snapshot());

  hub_->unsubscribe(id_a);
  EXPECT_FALSE(run.cancelled->load());  // b still listens
  run.on_packet("{\"n\":3}");
  EXPECT_EQ(a->snapshot().size(), 3u);
  EXPECT_EQ(b->snapshot().size(), 4u);

  hub_->unsubscribe(id_b);
  EXPECT_TRUE(run.cancelled->load());  // cancelled once the last subscriber left
  EXPECT_EQ(hub_->stats().channels, 0u);
  EXPECT_EQ(hub_->stats().subscribers, 0u);
  // The cancelled call's completion is stale and ignored.
  run.done(api::ApiError::unavailable("cancelled"));
  EXPECT_EQ(source_.runs(), 1u);
  EXPECT_FALSE(b->ended.has_value());  // unsubscribed subscribers are not ended
}

TEST_F(StreamHubTest, DifferentDataIsADifferentChannel) {
  make_hub();
  auto a = std::make_shared<RecordingSubscriber>();
  auto b = std::make_shared<RecordingSubscriber>();
  hub_->subscribe(key_, source_.starter(), a);
  hub_->subscribe(ChannelKey{"ds1", "counter", "{}"}, source_.starter(), b);
  EXPECT_EQ(source_.runs(), 2u);
  EXPECT_EQ(hub_->stats().channels, 2u);
  // A publish into (ds1, counter) reaches both, whatever their data.
  EXPECT_EQ(hub_->publish("ds1", "counter", "{\"published\":true}"), 2u);
  EXPECT_EQ(a->snapshot().back(), "{\"published\":true}");
  EXPECT_EQ(b->snapshot().back(), "{\"published\":true}");
  EXPECT_EQ(hub_->publish("ds1", "other", "{}"), 0u);
  EXPECT_EQ(hub_->publish("ds2", "counter", "{}"), 0u);
}

TEST_F(StreamHubTest, FailedRunIsReRunWithBackOff) {
  StreamHub::Options options;
  options.backoff_base = 40ms;
  options.backoff_cap = 100ms;
  options.healthy_run = 30ms;
  make_hub(options);
  auto a = std::make_shared<RecordingSubscriber>();
  hub_->subscribe(key_, source_.starter(), a);
  ASSERT_EQ(source_.runs(), 1u);

  // Fails at once: re-run after 40 ms, then 80 ms, then capped at 100 ms.
  source_.run(0).done(api::ApiError::bad_gateway("boom"));
  ASSERT_TRUE(source_.wait_runs(2));
  source_.run(1).done(api::ApiError::bad_gateway("boom"));
  ASSERT_TRUE(source_.wait_runs(3));
  source_.run(2).done(api::ApiError::bad_gateway("boom"));
  ASSERT_TRUE(source_.wait_runs(4));
  const auto gap1 = source_.run(1).started - source_.run(0).started;
  const auto gap2 = source_.run(2).started - source_.run(1).started;
  const auto gap3 = source_.run(3).started - source_.run(2).started;
  EXPECT_GE(gap1, 40ms);
  EXPECT_GE(gap2, 80ms);
  EXPECT_GE(gap3, 100ms);
  EXPECT_LT(gap3, 160ms + 500ms);  // capped (generous slack for a loaded CI machine)

  // A run that lasted longer than healthy_run is re-run without delay, and the back-off resets.
  std::this_thread::sleep_for(50ms);
  const auto failed_at = Clock::now();
  source_.run(3).done(api::ApiError::bad_gateway("boom"));
  ASSERT_TRUE(source_.wait_runs(5));
  EXPECT_LT(source_.run(4).started - failed_at, 35ms);

  // Packets of the new run still reach the subscriber; the old run's are stale.
  source_.run(0).on_packet("{\"stale\":true}");
  source_.run(4).on_packet("{\"fresh\":true}");
  EXPECT_EQ(a->snapshot(), std::vector<std::string>{"{\"fresh\":true}"});
  EXPECT_EQ(hub_->stats().runs_started, 5u);
  EXPECT_FALSE(a->ended.has_value());
}

TEST_F(StreamHubTest, RunThatCannotStartIsRetried) {
  StreamHub::Options options;
  options.backoff_base = 10ms;
  make_hub(options);
  source_.fail_to_start = true;
  auto a = std::make_shared<RecordingSubscriber>();
  hub_->subscribe(key_, source_.starter(), a);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(source_.runs(), 0u);
  EXPECT_GE(hub_->stats().runs_started, 2u);  // tried again meanwhile
  source_.fail_to_start = false;
  ASSERT_TRUE(source_.wait_runs(1));
  EXPECT_EQ(hub_->stats().channels, 1u);
}

TEST_F(StreamHubTest, NoReRunOnceSubscribersAreGone) {
  StreamHub::Options options;
  options.backoff_base = 20ms;
  make_hub(options);
  auto a = std::make_shared<RecordingSubscriber>();
  const auto id = hub_->subscribe(key_, source_.starter(), a);
  source_.run(0).done(api::ApiError::bad_gateway("boom"));
  hub_->unsubscribe(id);  // during the back-off
  std::this_thread::sleep_for(80ms);
  EXPECT_EQ(source_.runs(), 1u);
  EXPECT_EQ(hub_->stats().channels, 0u);
}

TEST_F(StreamHubTest, EofEndsTheChannel) {
  make_hub();
  auto a = std::make_shared<RecordingSubscriber>();
  auto b = std::make_shared<RecordingSubscriber>();
  hub_->subscribe(key_, source_.starter(), a);
  hub_->subscribe(key_, source_.starter(), b);
  source_.run(0).on_packet("{\"last\":true}");
  source_.run(0).done(api::Outcome(api::Ok{}));
  ASSERT_TRUE(a->wait_end());
  ASSERT_TRUE(b->wait_end());
  EXPECT_EQ(*a->ended, StreamSubscriber::EndReason::kEof);
  EXPECT_EQ(*b->ended, StreamSubscriber::EndReason::kEof);
  EXPECT_EQ(hub_->stats().channels, 0u);
  EXPECT_EQ(hub_->stats().subscribers, 0u);
  // A new subscriber starts a fresh run.
  auto c = std::make_shared<RecordingSubscriber>();
  hub_->subscribe(key_, source_.starter(), c);
  EXPECT_EQ(source_.runs(), 2u);
}

TEST_F(StreamHubTest, SlowSubscriberIsDroppedNotTheChannel) {
  StreamHub::Options options;
  options.max_pending_bytes = 1000;
  make_hub(options);
  auto fast = std::make_shared<RecordingSubscriber>();
  auto slow = std::make_shared<RecordingSubscriber>();
  hub_->subscribe(key_, source_.starter(), fast);
  hub_->subscribe(key_, source_.starter(), slow);
  auto run = source_.run(0);
  run.on_packet("{\"n\":0}");
  slow->pending = 5000;  // its client stopped reading
  run.on_packet("{\"n\":1}");
  ASSERT_TRUE(slow->wait_end());
  EXPECT_EQ(*slow->ended, StreamSubscriber::EndReason::kSlow);
  EXPECT_EQ(slow->snapshot().size(), 1u);
  run.on_packet("{\"n\":2}");
  EXPECT_EQ(fast->snapshot().size(), 3u);
  EXPECT_FALSE(run.cancelled->load());
  EXPECT_EQ(hub_->stats().subscribers, 1u);
  EXPECT_EQ(hub_->stats().slow_dropped, 1u);

  // When the only subscriber is slow, dropping it also cancels the run.
  fast->pending = 5000;
  run.on_packet("{\"n\":3}");
  EXPECT_TRUE(run.cancelled->load());
  EXPECT_EQ(hub_->stats().channels, 0u);
}

TEST_F(StreamHubTest, GracePeriodKeepsTheRunForAReturningSubscriber) {
  StreamHub::Options options;
  options.idle_grace = 100ms;
  make_hub(options);
  auto a = std::make_shared<RecordingSubscriber>();
  const auto id = hub_->subscribe(key_, source_.starter(), a);
  hub_->unsubscribe(id);
  EXPECT_FALSE(source_.run(0).cancelled->load());
  auto b = std::make_shared<RecordingSubscriber>();
  const auto id_b = hub_->subscribe(key_, source_.starter(), b);
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(source_.runs(), 1u);
  EXPECT_FALSE(source_.run(0).cancelled->load());
  hub_->unsubscribe(id_b);
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(source_.run(0).cancelled->load());
  EXPECT_EQ(hub_->stats().channels, 0u);
}

TEST_F(StreamHubTest, StopAllEndsSubscribersAndRefusesNewOnes) {
  make_hub();
  auto a = std::make_shared<RecordingSubscriber>();
  hub_->subscribe(key_, source_.starter(), a);
  hub_->stop_all();
  ASSERT_TRUE(a->wait_end());
  EXPECT_EQ(*a->ended, StreamSubscriber::EndReason::kShutdown);
  EXPECT_TRUE(source_.run(0).cancelled->load());
  EXPECT_EQ(hub_->subscribe(key_, source_.starter(), a), 0u);
  EXPECT_EQ(hub_->stats().channels, 0u);
}

TEST_F(StreamHubTest, ConcurrentSubscribersAndPackets) {
  make_hub();
  auto keeper = std::make_shared<RecordingSubscriber>();
  hub_->subscribe(key_, source_.starter(), keeper);
  auto run = source_.run(0);
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    int n = 0;
    while (!stop || n < 100) run.on_packet("{\"n\":" + std::to_string(n++) + "}");
  });
  std::vector<std::thread> churn;
  for (int t = 0; t < 4; ++t) {
    churn.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto s = std::make_shared<RecordingSubscriber>();
        const auto id = hub_->subscribe(key_, source_.starter(), s);
        hub_->unsubscribe(id);
      }
    });
  }
  for (auto& t : churn) t.join();
  stop = true;
  producer.join();
  EXPECT_EQ(source_.runs(), 1u);
  EXPECT_EQ(hub_->stats().subscribers, 1u);
  EXPECT_GE(keeper->snapshot().size(), 100u);  // the keeper saw every packet
}

}  // namespace
}  // namespace dpa::dataplane
