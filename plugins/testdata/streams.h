// Stream service of the testdata plugin: path `counter` emits a frame (time, value=i) every
// intervalMs; path `echo` re-emits whatever is published to it; `denied` is refused, anything
// else is NOT_FOUND.
#pragma once

#include "plugins/sdk/handlers.h"
#include "plugins/testdata/stats.h"

#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace dpa::testdata {

// Fan-out of published messages to the RunStream calls of one path.
class Broadcaster {
 public:
  struct Mailbox {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::string> messages;
  };
  std::shared_ptr<Mailbox> subscribe(const std::string& path);
  void unsubscribe(const std::string& path, const std::shared_ptr<Mailbox>& mailbox);
  // Returns how many subscribers received it.
  std::size_t publish(const std::string& path, const std::string& message);

 private:
  std::mutex mutex_;
  std::map<std::string, std::list<std::shared_ptr<Mailbox>>> subscribers_;
};

class StreamHandler final : public sdk::StreamHandler {
 public:
  explicit StreamHandler(Stats& stats) : stats_(stats) {}
  grpc::Status subscribe_stream(const sdk::CallContext& ctx,
                                const pluginv2::SubscribeStreamRequest& request,
                                pluginv2::SubscribeStreamResponse& response) override;
  grpc::Status publish_stream(const sdk::CallContext& ctx,
                              const pluginv2::PublishStreamRequest& request,
                              pluginv2::PublishStreamResponse& response) override;
  grpc::Status run_stream(const sdk::CallContext& ctx, const pluginv2::RunStreamRequest& request,
                          sdk::PacketSender& sender) override;

 private:
  grpc::Status run_counter(const sdk::CallContext& ctx, const pluginv2::RunStreamRequest& request,
                           sdk::PacketSender& sender);
  grpc::Status run_echo(const sdk::CallContext& ctx, const pluginv2::RunStreamRequest& request,
                        sdk::PacketSender& sender);

  Stats& stats_;
  Broadcaster echo_;
};

}  // namespace dpa::testdata
