// Shared plugin streams (reference grafana-plugin-protocol.md §5.2): one RunStream per channel
// (datasource uid, path, subscription data), every packet fanned out to all of the channel's
// subscribers, the call cancelled when the last subscriber leaves, re-run with back-off when it
// fails while subscribers remain, and ended (subscribers finished) when the plugin ends it cleanly.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/plugin/plugin_client.h"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace dpa::dataplane {

// One subscriber's transport: a chunked NDJSON response or a WebSocket. Methods are called from
// any thread (gRPC completion threads included) and must not block.
class StreamSubscriber {
 public:
  enum class EndReason {
    kEof,       // the plugin ended the stream
    kSlow,      // dropped: more than Options::max_pending_bytes queued
    kShutdown,  // StreamHub::stop_all()
  };
  virtual ~StreamSubscriber() = default;
  virtual void send(const std::string& packet) = 0;  // one packet (compact JSON)
  virtual std::size_t pending_bytes() const = 0;
  // The hub forgot this subscriber; end the transport (finish the response, close the socket).
  virtual void end(EndReason reason) = 0;
};

struct ChannelKey {
  std::string datasource_uid;
  std::string path;
  std::string data;  // the subscription payload: different data, different RunStream
  auto operator<=>(const ChannelKey&) const = default;
};

class StreamHub : public std::enable_shared_from_this<StreamHub> {
 public:
  struct Options {
    // A subscriber with more than this queued is dropped (the channel keeps running).
    std::size_t max_pending_bytes = 8 * 1024 * 1024;
    // How long a channel without subscribers keeps its RunStream before cancelling it. Zero (the
    // default) cancels at once; Grafana waits ~15 s, which only helps reconnecting browsers.
    std::chrono::milliseconds idle_grace{0};
    // §5.2: after a failed run, no delay if it lasted >= healthy_run, else base x 2^n capped.
    std::chrono::milliseconds healthy_run{100};
    std::chrono::milliseconds backoff_base{100};
    std::chrono::milliseconds backoff_cap{5000};
  };

  struct Stats {
    std::size_t channels = 0;
    std::size_t subscribers = 0;
    std::uint64_t runs_started = 0;   // RunStream calls made (first runs and re-runs)
    std::uint64_t packets = 0;        // packets received from plugins and publishes fanned out
    std::uint64_t slow_dropped = 0;   // subscribers dropped for being slow
  };

  // Starts one run of a channel (a RunStream call): on_packet for each packet (compact JSON, in
  // order), then done exactly once. An error result means the run could not start (plugin
  // unavailable) and counts as a failed run. Called again for each re-run, so it can re-read the
  // plugin context as Grafana does.
  using Starter = std::function<api::Expected<std::unique_ptr<plugin::StreamCall>>(
      std::function<void(std::string)> on_packet, std::function<void(api::Outcome)> done)>;

  static std::shared_ptr<StreamHub> create(boost::asio::any_io_executor executor, Options options);
  static std::shared_ptr<StreamHub> create(boost::asio::any_io_executor executor) {
    return create(std::move(executor), Options{});
  }
  ~StreamHub();

  // Adds a subscriber to the channel, starting its RunStream through `starter` when the channel
  // is new (an existing channel keeps its own starter). Returns the subscription id for
  // unsubscribe(), or 0 once stop_all() ran (the caller answers 503).
  std::uint64_t subscribe(const ChannelKey& key, Starter starter,
                          std::shared_ptr<StreamSubscriber> subscriber);
  // Removes a subscriber (its client left). Unknown ids are ignored. end() is not called.
  void unsubscribe(std::uint64_t id);
  // Publishes `packet` to the subscribers of every channel of (uid, path), whatever their data.
  // Returns how many subscribers it was sent to.
  std::size_t publish(std::string_view datasource_uid, std::string_view path,
                      const std::string& packet);

  Stats stats() const;
  bool stopped() const;
  // Cancels every RunStream and ends every subscriber (kShutdown); later subscribes get 0.
  void stop_all();

 private:
  struct Channel;
  StreamHub(boost::asio::any_io_executor executor, Options options);

  void start_run(const std::shared_ptr<Channel>& channel, std::uint64_t run);
  void on_packet(const std::shared_ptr<Channel>& channel, std::uint64_t run, std::string packet);
  void on_run_done(const std::shared_ptr<Channel>& channel, std::uint64_t run,
                   api::Outcome outcome);
  void on_retry(const std::shared_ptr<Channel>& channel, std::uint64_t run);
  void on_idle(const std::shared_ptr<Channel>& channel, std::uint64_t idle);
  void fan_out(const std::shared_ptr<Channel>& channel, const std::string& packet);
  // With mutex_ held: forgets the channel; returns its call so the caller cancels it unlocked.
  std::unique_ptr<plugin::StreamCall> remove_locked(const std::shared_ptr<Channel>& channel);
  // With mutex_ held: the channel just lost its last subscriber.
  std::unique_ptr<plugin::StreamCall> idle_locked(const std::shared_ptr<Channel>& channel);

  boost::asio::any_io_executor executor_;
  Options options_;
  mutable std::mutex mutex_;
  bool stopped_ = false;
  std::uint64_t next_id_ = 0;
  std::map<ChannelKey, std::shared_ptr<Channel>> channels_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Channel>> subscriptions_;
  std::size_t subscriber_count_ = 0;
  Stats counters_;
};

}  // namespace dpa::dataplane
