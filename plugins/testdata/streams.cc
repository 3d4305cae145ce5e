#include "plugins/testdata/streams.h"

#include "plugins/sdk/data.h"
#include "plugins/sdk/log.h"

#include <algorithm>
#include <chrono>

namespace dpa::testdata {
namespace {

constexpr int64_t kDefaultCounterIntervalMs = 100;
constexpr int64_t kMinCounterIntervalMs = 5;
constexpr int64_t kMaxCounterIntervalMs = 60 * 60 * 1000;
constexpr std::size_t kMaxMailboxBacklog = 1000;  // a stuck RunStream drops old messages
constexpr auto kCancelPoll = std::chrono::milliseconds(50);

frames::Frame counter_frame(std::vector<int64_t> times, std::vector<double> values) {
  frames::Frame frame;
  frame.name = "counter";
  frame.fields.push_back(sdk::time_field("time", std::move(times)));
  frame.fields.push_back(sdk::float64_field("value", std::move(values)));
  return frame;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Tracks a running RunStream in the gauge for the lifetime of the call.
class RunningStream {
 public:
  explicit RunningStream(Stats& stats) : stats_(stats) { stats_.streams_running.fetch_add(1); }
  ~RunningStream() { stats_.streams_running.fetch_sub(1); }
  RunningStream(const RunningStream&) = delete;
  RunningStream& operator=(const RunningStream&) = delete;

 private:
  Stats& stats_;
};

}  // namespace

std::shared_ptr<Broadcaster::Mailbox> Broadcaster::subscribe(const std::string& path) {
  auto mailbox = std::make_shared<Mailbox>();
  std::lock_guard lock(mutex_);
  subscribers_[path].push_back(mailbox);
  return mailbox;
}

void Broadcaster::unsubscribe(const std::string& path, const std::shared_ptr<Mailbox>& mailbox) {
  std::lock_guard lock(mutex_);
  auto it = subscribers_.find(path);
  if (it == subscribers_.end()) return;
  it->second.remove(mailbox);
  if (it->second.empty()) subscribers_.erase(it);
}

std::size_t Broadcaster::publish(const std::string& path, const std::string& message) {
  std::list<std::shared_ptr<Mailbox>> targets;
  {
    std::lock_guard lock(mutex_);
    auto it = subscribers_.find(path);
    if (it != subscribers_.end()) targets = it->second;
  }
  for (const auto& mailbox : targets) {
    {
      std::lock_guard lock(mailbox->mutex);
      if (mailbox->messages.size() >= kMaxMailboxBacklog) mailbox->messages.pop_front();
      mailbox->messages.push_back(message);
    }
    mailbox->cv.notify_one();
  }
  return targets.size();
}

grpc::Status StreamHandler::subscribe_stream(const sdk::CallContext&,
                                             const pluginv2::SubscribeStreamRequest& request,
                                             pluginv2::SubscribeStreamResponse& response) {
  const std::string& path = request.path();
  if (path == "counter") {
    response.set_status(pluginv2::SubscribeStreamResponse::OK);
    // Initial data for the subscriber: the schema of the frames to come, no rows.
    response.set_data(sdk::frame_json(counter_frame({}, {})));
  } else if (path == "echo") {
    response.set_status(pluginv2::SubscribeStreamResponse::OK);
  } else if (path == "denied") {
    response.set_status(pluginv2::SubscribeStreamResponse::PERMISSION_DENIED);
  } else {
    response.set_status(pluginv2::SubscribeStreamResponse::NOT_FOUND);
  }
  return grpc::Status::OK;
}

grpc::Status StreamHandler::publish_stream(const sdk::CallContext&,
                                           const pluginv2::PublishStreamRequest& request,
                                           pluginv2::PublishStreamResponse& response) {
  const std::string& path = request.path();
  if (path == "echo") {
    if (!sdk::parse_json(request.data()).ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "published data must be JSON");
    }
    echo_.publish(path, request.data());
    response.set_status(pluginv2::PublishStreamResponse::OK);
    // Returning the data asks the host to publish it into the channel itself.
    response.set_data(request.data());
  } else if (path == "counter" || path == "denied") {
    response.set_status(pluginv2::PublishStreamResponse::PERMISSION_DENIED);
  } else {
    response.set_status(pluginv2::PublishStreamResponse::NOT_FOUND);
  }
  return grpc::Status::OK;
}

grpc::Status StreamHandler::run_stream(const sdk::CallContext& ctx,
                                       const pluginv2::RunStreamRequest& request,
                                       sdk::PacketSender& sender) {
  if (request.path() == "counter") return run_counter(ctx, request, sender);
  if (request.path() == "echo") return run_echo(ctx, request, sender);
  return grpc::Status(grpc::StatusCode::NOT_FOUND, "no stream at path " + request.path());
}

grpc::Status StreamHandler::run_counter(const sdk::CallContext& ctx,
                                        const pluginv2::RunStreamRequest& request,
                                        sdk::PacketSender& sender) {
  const RunningStream running(stats_);
  int64_t interval_ms = kDefaultCounterIntervalMs;
  const sdk::JsonResult data = sdk::parse_json(request.data());
  if (data.ok() && data.value.is_object()) {
    const auto it = data.value.find("intervalMs");
    if (it != data.value.end() && it->is_number()) interval_ms = it->get<int64_t>();
  }
  interval_ms = std::clamp(interval_ms, kMinCounterIntervalMs, kMaxCounterIntervalMs);
  sdk::log_info("counter stream started", {{"intervalMs", interval_ms}});

  for (int64_t i = 0; !ctx.cancelled(); ++i) {
    if (!sender.send(sdk::frame_json(counter_frame({now_ns()}, {static_cast<double>(i)})))) break;
    stats_.packets_sent.fetch_add(1);
    if (!ctx.sleep_for(std::chrono::milliseconds(interval_ms))) break;
  }
  sdk::log_info("counter stream stopped");
  return grpc::Status::OK;
}

grpc::Status StreamHandler::run_echo(const sdk::CallContext& ctx,
                                     const pluginv2::RunStreamRequest& request,
                                     sdk::PacketSender& sender) {
  const RunningStream running(stats_);
  const auto mailbox = echo_.subscribe(request.path());
  while (!ctx.cancelled()) {
    std::deque<std::string> batch;
    {
      std::unique_lock lock(mailbox->mutex);
      mailbox->cv.wait_for(lock, kCancelPoll, [&] { return !mailbox->messages.empty(); });
      batch.swap(mailbox->messages);
    }
    bool open = true;
    for (auto& message : batch) {
      if (!(open = sender.send(std::move(message)))) break;
      stats_.packets_sent.fetch_add(1);
    }
    if (!open) break;
  }
  echo_.unsubscribe(request.path(), mailbox);
  return grpc::Status::OK;
}

}  // namespace dpa::testdata
