// The asynchronous pluginv2 client the data plane calls, and the PluginHost that hands clients out.
// Nothing here blocks the caller. QueryData runs on the caller's io_context over our own HTTP/2
// connection; everything else uses gRPC's callback API, whose results arrive on a gRPC thread and
// the caller posts them back to its own executor. gRPC failures become Kubernetes Status errors.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/observability/trace_context.h"
#include "aggregator/plugin/plugin_registry.h"

#include "plugins/proto/backend.pb.h"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace grpc {
class Channel;
class Status;
}  // namespace grpc

namespace dpa::plugin {

enum class PluginState { kNotFound, kStarting, kRunning, kUnavailable };
struct PluginStatus {
  PluginState state = PluginState::kNotFound;
  std::string message;
};
const char* to_string(PluginState state);

// A cancellable server-streaming call. cancel() is safe from any thread, any number of times, and
// after completion (the call then still ends with exactly one `done`, usually a 503 "cancelled").
// Destroying the handle does NOT cancel the call: keep it and call cancel() to stop a stream.
class StreamCall {
 public:
  virtual ~StreamCall() = default;
  virtual void cancel() = 0;
};

template <class T>
using Callback = std::function<void(api::Expected<T>)>;

// What a call carries besides its request, as Go's context.Context does for Grafana's own plugin
// client: the deadline, and the trace context of the request that caused the call, sent as the
// gRPC metadata `traceparent`/`tracestate` (where the plugin SDK's tracing reads it). A timeout
// alone converts to a context without a trace (background calls, tests).
struct CallContext {
  std::chrono::milliseconds timeout{0};  // <= 0: no deadline
  obs::TraceContext trace;               // empty traceparent: no trace metadata

  CallContext() = default;
  template <class Rep, class Period>
  CallContext(std::chrono::duration<Rep, Period> timeout, obs::TraceContext trace = {})  // NOLINT
      : timeout(std::chrono::duration_cast<std::chrono::milliseconds>(timeout)),
        trace(std::move(trace)) {}
};

// Calls into one running plugin process. All methods are asynchronous and never block the caller;
// callbacks run on a gRPC thread (the caller posts back to its own executor), except QueryData's.
// gRPC errors map to ApiError: UNAVAILABLE -> 503 ServiceUnavailable "plugin <id> unavailable: ...",
// DEADLINE_EXCEEDED -> 504 Timeout, UNIMPLEMENTED -> 501 (reason NotImplemented) "plugin <id> does
// not implement <rpc>", RESOURCE_EXHAUSTED -> 413 when a message was too large, else 502,
// CANCELLED -> 503, anything else -> 502 BadGateway "plugin <id> failed: <message>".
class PluginClient {
 public:
  virtual ~PluginClient() = default;
  virtual const std::string& plugin_id() const = 0;
  // QueryData, the hot path, runs on `io`'s io_context instead (see h2_unary_channel.h): the
  // request goes out and the reply comes back on that thread, and `done` runs there. Unlike the
  // other calls it does not keep the client alive: when the host drops the client (the plugin
  // exited or is stopping), calls still in flight end at once with 503.
  virtual void query_data(pluginv2::QueryDataRequest req, CallContext context,
                          boost::asio::any_io_executor io,
                          Callback<pluginv2::QueryDataResponse> done) = 0;
  virtual void check_health(pluginv2::CheckHealthRequest req, CallContext context,
                            Callback<pluginv2::CheckHealthResponse> done) = 0;
  virtual void collect_metrics(pluginv2::CollectMetricsRequest req,
                               CallContext context,
                               Callback<pluginv2::CollectMetricsResponse> done) = 0;
  virtual void subscribe_stream(pluginv2::SubscribeStreamRequest req,
                                CallContext context,
                                Callback<pluginv2::SubscribeStreamResponse> done) = 0;
  virtual void publish_stream(pluginv2::PublishStreamRequest req,
                              CallContext context,
                              Callback<pluginv2::PublishStreamResponse> done) = 0;
  virtual void validate_admission(pluginv2::AdmissionRequest req,
                                  CallContext context,
                                  Callback<pluginv2::ValidationResponse> done) = 0;
  virtual void mutate_admission(pluginv2::AdmissionRequest req, CallContext context,
                                Callback<pluginv2::MutationResponse> done) = 0;
  virtual void convert_objects(pluginv2::ConversionRequest req, CallContext context,
                               Callback<pluginv2::ConversionResponse> done) = 0;
  // Server streaming: on_message for each message (gRPC thread, in order), then done exactly once.
  virtual std::unique_ptr<StreamCall> call_resource(
      pluginv2::CallResourceRequest req, CallContext context,
      std::function<void(pluginv2::CallResourceResponse)> on_message,
      std::function<void(api::Outcome)> done) = 0;
  virtual std::unique_ptr<StreamCall> run_stream(
      pluginv2::RunStreamRequest req, CallContext context,
      std::function<void(pluginv2::StreamPacket)> on_packet,
      std::function<void(api::Outcome)> done) = 0;
};

// The set of plugins: registry + supervisors + attached addresses.
class PluginHost {
 public:
  virtual ~PluginHost() = default;
  virtual std::shared_ptr<PluginClient> client(const std::string& plugin_id) = 0;  // nullptr unless running
  virtual PluginStatus status(const std::string& plugin_id) const = 0;
  virtual std::optional<PluginInfo> info(const std::string& plugin_id) const = 0;  // from plugin.json
  // Called (any thread) whenever some plugin's status changes.
  virtual void on_status_change(
      std::function<void(const std::string& plugin_id, PluginStatus)> cb) = 0;
};

// The gRPC implementation over one channel (one plugin process or attached address); `target`
// is the channel's target string, which QueryData dials itself.
std::shared_ptr<PluginClient> make_grpc_plugin_client(std::string plugin_id,
                                                      std::shared_ptr<grpc::Channel> channel,
                                                      const std::string& target);

// The one place a gRPC status becomes a Kubernetes Status (see PluginClient).
api::ApiError map_grpc_error(const grpc::Status& status, const std::string& plugin_id,
                             const std::string& rpc);

}  // namespace dpa::plugin
