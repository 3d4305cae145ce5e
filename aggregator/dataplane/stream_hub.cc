// Channel bookkeeping is under one mutex; plugin calls (start, cancel) and subscriber transports
// (send, end) are always invoked with it released, because a call may complete synchronously and
// re-enter the hub. Each run of a channel has a number; callbacks of an older run (a cancelled or
// superseded RunStream) find a different number and are ignored.
#include "aggregator/dataplane/stream_hub.h"

#include "aggregator/observability/log.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace dpa::dataplane {

struct StreamHub::Channel {
  Channel(ChannelKey k, Starter s, const boost::asio::any_io_executor& executor)
      : key(std::move(k)), starter(std::move(s)), retry_timer(executor), idle_timer(executor) {}

  ChannelKey key;
  Starter starter;
  std::map<std::uint64_t, std::shared_ptr<StreamSubscriber>> subscribers;
  std::unique_ptr<plugin::StreamCall> call;
  std::uint64_t run = 0;   // number of the current run; callbacks of other runs are stale
  std::uint64_t idle = 0;  // number of the current idle period (grace timer)
  bool removed = false;
  int fast_failures = 0;
  std::chrono::steady_clock::time_point run_started;
  boost::asio::steady_timer retry_timer;
  boost::asio::steady_timer idle_timer;
};

std::shared_ptr<StreamHub> StreamHub::create(boost::asio::any_io_executor executor,
                                             Options options) {
  return std::shared_ptr<StreamHub>(new StreamHub(std::move(executor), options));
}

StreamHub::StreamHub(boost::asio::any_io_executor executor, Options options)
    : executor_(std::move(executor)), options_(options) {}

StreamHub::~StreamHub() = default;

std::uint64_t StreamHub::subscribe(const ChannelKey& key, Starter starter,
                                   std::shared_ptr<StreamSubscriber> subscriber) {
  std::shared_ptr<Channel> start;
  std::uint64_t run = 0;
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return 0;
    auto& channel = channels_[key];
    if (!channel) {
      channel = std::make_shared<Channel>(key, std::move(starter), executor_);
      channel->run = 1;
      channel->run_started = std::chrono::steady_clock::now();
      start = channel;
      run = channel->run;
    } else if (channel->subscribers.empty()) {
      // Back within the grace period: keep the running stream.
      ++channel->idle;
      channel->idle_timer.cancel();
    }
    id = ++next_id_;
    channel->subscribers.emplace(id, std::move(subscriber));
    subscriptions_.emplace(id, channel);
    ++subscriber_count_;
  }
  if (start) start_run(start, run);
  return id;
}

void StreamHub::unsubscribe(std::uint64_t id) {
  std::unique_ptr<plugin::StreamCall> cancel;
  {
    std::lock_guard lock(mutex_);
    auto it = subscriptions_.find(id);
    if (it == subscriptions_.end()) return;
    auto channel = it->second;
    subscriptions_.erase(it);
    if (channel->subscribers.erase(id) > 0) --subscriber_count_;
    if (channel->subscribers.empty()) cancel = idle_locked(channel);
  }
  if (cancel) cancel->cancel();
}

std::size_t StreamHub::publish(std::string_view datasource_uid, std::string_view path,
                               const std::string& packet) {
  std::vector<std::shared_ptr<Channel>> targets;
  {
    std::lock_guard lock(mutex_);
    ChannelKey first{std::string(datasource_uid), std::string(path), std::string()};
    for (auto it = channels_.lower_bound(first);
         it != channels_.end() && it->first.datasource_uid == datasource_uid &&
         it->first.path == path;
         ++it) {
      targets.push_back(it->second);
    }
  }
  std::size_t reached = 0;
  for (const auto& channel : targets) {
    {
      std::lock_guard lock(mutex_);
      if (channel->removed) continue;
      reached += channel->subscribers.size();
      ++counters_.packets;
    }
    fan_out(channel, packet);
  }
  return reached;
}

StreamHub::Stats StreamHub::stats() const {
  std::lock_guard lock(mutex_);
  Stats stats = counters_;
  stats.channels = channels_.size();
  stats.subscribers = subscriber_count_;
  return stats;
}

bool StreamHub::stopped() const {
  std::lock_guard lock(mutex_);
  return stopped_;
}

void StreamHub::stop_all() {
  std::vector<std::unique_ptr<plugin::StreamCall>> calls;
  std::vector<std::shared_ptr<StreamSubscriber>> ended;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    while (!channels_.empty()) {
      auto channel = channels_.begin()->second;
      for (auto& [id, subscriber] : channel->subscribers) ended.push_back(subscriber);
      if (auto call = remove_locked(channel)) calls.push_back(std::move(call));
    }
  }
  for (auto& call : calls) call->cancel();
  for (auto& subscriber : ended) subscriber->end(StreamSubscriber::EndReason::kShutdown);
}

void StreamHub::start_run(const std::shared_ptr<Channel>& channel, std::uint64_t run) {
  std::weak_ptr<StreamHub> weak_hub = weak_from_this();
  auto on_packet = [weak_hub, channel, run](std::string packet) {
    if (auto hub = weak_hub.lock()) hub->on_packet(channel, run, std::move(packet));
  };
  auto done = [weak_hub, channel, run](api::Outcome outcome) {
    if (auto hub = weak_hub.lock()) hub->on_run_done(channel, run, std::move(outcome));
  };
  Starter starter;
  {
    std::lock_guard lock(mutex_);
    if (channel->removed || channel->run != run) return;
    ++counters_.runs_started;
    starter = channel->starter;
  }
  auto started = starter(std::move(on_packet), done);
  if (!started.ok()) {
    done(api::Outcome(std::move(started).error()));
    return;
  }
  std::unique_ptr<plugin::StreamCall> stale;
  {
    std::lock_guard lock(mutex_);
    if (!channel->removed && channel->run == run) {
      channel->call = std::move(*started);
    } else {
      // The channel was dropped (or the run already ended) while the call was starting.
      stale = std::move(*started);
    }
  }
  if (stale) stale->cancel();
}

void StreamHub::on_packet(const std::shared_ptr<Channel>& channel, std::uint64_t run,
                          std::string packet) {
  {
    std::lock_guard lock(mutex_);
    if (channel->removed || channel->run != run) return;
    ++counters_.packets;
  }
  fan_out(channel, packet);
}

void StreamHub::fan_out(const std::shared_ptr<Channel>& channel, const std::string& packet) {
  std::vector<std::pair<std::uint64_t, std::shared_ptr<StreamSubscriber>>> targets;
  {
    std::lock_guard lock(mutex_);
    if (channel->removed) return;
    targets.assign(channel->subscribers.begin(), channel->subscribers.end());
  }
  std::vector<std::shared_ptr<StreamSubscriber>> slow;
  std::unique_ptr<plugin::StreamCall> cancel;
  for (auto& [id, subscriber] : targets) {
    if (subscriber->pending_bytes() <= options_.max_pending_bytes) {
      subscriber->send(packet);
      continue;
    }
    std::lock_guard lock(mutex_);
    if (subscriptions_.erase(id) == 0) continue;  // it left meanwhile
    channel->subscribers.erase(id);
    --subscriber_count_;
    ++counters_.slow_dropped;
    slow.push_back(subscriber);
    if (channel->subscribers.empty()) cancel = idle_locked(channel);
  }
  for (auto& subscriber : slow) {
    obs::warn("stream subscriber dropped: too slow",
              {{"datasource", channel->key.datasource_uid},
               {"path", channel->key.path},
               {"limit_bytes", options_.max_pending_bytes}});
    subscriber->end(StreamSubscriber::EndReason::kSlow);
  }
  if (cancel) cancel->cancel();
}

void StreamHub::on_run_done(const std::shared_ptr<Channel>& channel, std::uint64_t run,
                            api::Outcome outcome) {
  std::unique_ptr<plugin::StreamCall> finished_call;
  std::vector<std::shared_ptr<StreamSubscriber>> ended;
  {
    std::lock_guard lock(mutex_);
    if (channel->removed || channel->run != run) return;
    finished_call = std::move(channel->call);
    if (outcome.ok() || channel->subscribers.empty()) {
      // EOF: the plugin ended the stream, so the channel ends (§5.2 step 4).
      for (auto& [id, subscriber] : channel->subscribers) ended.push_back(subscriber);
      remove_locked(channel);
    } else {
      const auto now = std::chrono::steady_clock::now();
      std::chrono::milliseconds delay{0};
      if (now - channel->run_started >= options_.healthy_run) {
        channel->fast_failures = 0;
      } else {
        const int shift = std::min(channel->fast_failures, 16);
        const std::chrono::milliseconds grown = options_.backoff_base * (std::int64_t{1} << shift);
        delay = std::min(options_.backoff_cap, grown);
        ++channel->fast_failures;
      }
      const std::uint64_t next = ++channel->run;
      obs::warn("plugin stream failed; re-running",
                {{"datasource", channel->key.datasource_uid},
                 {"path", channel->key.path},
                 {"error", outcome.error().message},
                 {"delay_ms", delay.count()}});
      std::weak_ptr<StreamHub> weak_hub = weak_from_this();
      channel->retry_timer.expires_after(delay);
      channel->retry_timer.async_wait(
          [weak_hub, channel, next](const boost::system::error_code& ec) {
            if (ec) return;
            if (auto hub = weak_hub.lock()) hub->on_retry(channel, next);
          });
    }
  }
  // This runs inside the call's own completion: release the call later, not under its feet.
  if (finished_call) {
    boost::asio::post(executor_, [call = std::move(finished_call)] {});
  }
  for (auto& subscriber : ended) subscriber->end(StreamSubscriber::EndReason::kEof);
}

void StreamHub::on_retry(const std::shared_ptr<Channel>& channel, std::uint64_t run) {
  {
    std::lock_guard lock(mutex_);
    if (channel->removed || channel->run != run) return;
    channel->run_started = std::chrono::steady_clock::now();
  }
  start_run(channel, run);
}

void StreamHub::on_idle(const std::shared_ptr<Channel>& channel, std::uint64_t idle) {
  std::unique_ptr<plugin::StreamCall> cancel;
  {
    std::lock_guard lock(mutex_);
    if (channel->removed || channel->idle != idle || !channel->subscribers.empty()) return;
    cancel = remove_locked(channel);
  }
  if (cancel) cancel->cancel();
}

std::unique_ptr<plugin::StreamCall> StreamHub::idle_locked(const std::shared_ptr<Channel>& channel) {
  if (options_.idle_grace.count() <= 0) return remove_locked(channel);
  const std::uint64_t idle = ++channel->idle;
  std::weak_ptr<StreamHub> weak_hub = weak_from_this();
  channel->idle_timer.expires_after(options_.idle_grace);
  channel->idle_timer.async_wait([weak_hub, channel, idle](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto hub = weak_hub.lock()) hub->on_idle(channel, idle);
  });
  return nullptr;
}

std::unique_ptr<plugin::StreamCall> StreamHub::remove_locked(
    const std::shared_ptr<Channel>& channel) {
  if (channel->removed) return nullptr;
  channel->removed = true;
  ++channel->run;  // every outstanding callback is now stale
  channel->retry_timer.cancel();
  channel->idle_timer.cancel();
  for (auto& [id, subscriber] : channel->subscribers) {
    if (subscriptions_.erase(id) > 0) --subscriber_count_;
  }
  channel->subscribers.clear();
  auto it = channels_.find(channel->key);
  if (it != channels_.end() && it->second == channel) channels_.erase(it);
  return std::move(channel->call);
}

}  // namespace dpa::dataplane
