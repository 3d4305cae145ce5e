#include "aggregator/plugin/plugin_client.h"

#include "aggregator/observability/containment.h"
#include "aggregator/plugin/h2_unary_channel.h"
#include "plugins/proto/backend.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <climits>
#include <mutex>

namespace dpa::plugin {
namespace {

// The call context's metadata, as the plugin SDK expects it (lower-case keys, W3C values).
std::vector<std::pair<std::string, std::string>> metadata(const CallContext& context) {
  std::vector<std::pair<std::string, std::string>> out;
  if (context.trace.traceparent.empty()) return out;
  out.emplace_back("traceparent", context.trace.traceparent);
  if (!context.trace.tracestate.empty()) out.emplace_back("tracestate", context.trace.tracestate);
  return out;
}

void apply(grpc::ClientContext& ctx, const CallContext& context) {
  if (context.timeout.count() > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() + context.timeout);
  }
  for (auto& [key, value] : metadata(context)) ctx.AddMetadata(key, value);
}

// One unary call: owns everything gRPC writes into until the completion callback has run.
template <class Req, class Resp>
struct UnaryCall {
  grpc::ClientContext ctx;
  Req req;
  Resp resp;
};

// One server-streaming call. It keeps itself alive (self_) from start() until OnDone, which gRPC
// guarantees is the last reaction, so no callback can outlive it; the StreamCall handle shares
// ownership only so that cancel() always has a live ClientContext to talk to.
template <class Req, class Resp>
class ReadReactor final : public grpc::ClientReadReactor<Resp>,
                          public std::enable_shared_from_this<ReadReactor<Req, Resp>> {
 public:
  using Begin = std::function<void(grpc::ClientContext*, const Req*, grpc::ClientReadReactor<Resp>*)>;

  ReadReactor(std::string plugin_id, const char* rpc, Req req, const CallContext& context,
              std::function<void(Resp)> on_message, std::function<void(api::Outcome)> done)
      : plugin_id_(std::move(plugin_id)),
        rpc_(rpc),
        req_(std::move(req)),
        on_message_(std::move(on_message)),
        done_(std::move(done)) {
    apply(ctx_, context);
  }

  void start(const Begin& begin) {
    self_ = this->shared_from_this();
    begin(&ctx_, &req_, this);
    this->StartRead(&resp_);
    this->StartCall();
  }

  // ClientContext::TryCancel is thread-safe and a no-op once the call has finished.
  void cancel() { ctx_.TryCancel(); }

  // The reactions run on gRPC's threads: what the callbacks throw is contained here.
  void OnReadDone(bool ok) override {
    if (!ok) return;  // end of stream or failure: OnDone follows with the status
    if (on_message_) {
      obs::contain(rpc_, [&] { on_message_(std::move(resp_)); });
    }
    resp_ = Resp();
    this->StartRead(&resp_);
  }

  void OnDone(const grpc::Status& status) override {
    auto keep_alive = std::move(self_);
    auto done = std::move(done_);
    on_message_ = nullptr;
    if (!done) return;
    obs::contain(rpc_, [&] {
      if (status.ok()) {
        done(api::Outcome(api::Ok{}));
      } else {
        done(api::Outcome(map_grpc_error(status, plugin_id_, rpc_)));
      }
    });
  }

 private:
  std::string plugin_id_;
  const char* rpc_;
  grpc::ClientContext ctx_;
  Req req_;
  Resp resp_;
  std::function<void(Resp)> on_message_;
  std::function<void(api::Outcome)> done_;
  std::shared_ptr<ReadReactor> self_;
};

template <class Reactor>
class ReactorHandle final : public StreamCall {
 public:
  explicit ReactorHandle(std::shared_ptr<Reactor> reactor) : reactor_(std::move(reactor)) {}
  void cancel() override { reactor_->cancel(); }

 private:
  std::shared_ptr<Reactor> reactor_;
};

class GrpcPluginClient final : public PluginClient,
                               public std::enable_shared_from_this<GrpcPluginClient> {
 public:
  GrpcPluginClient(std::string plugin_id, std::shared_ptr<grpc::Channel> channel,
                   const std::string& target)
      : plugin_id_(std::move(plugin_id)),
        channel_(std::move(channel)),
        query_channel_(parse_h2_target(target), kMaxReplyBytes),
        resource_(pluginv2::Resource::NewStub(channel_)),
        diagnostics_(pluginv2::Diagnostics::NewStub(channel_)),
        stream_(pluginv2::Stream::NewStub(channel_)),
        admission_(pluginv2::AdmissionControl::NewStub(channel_)),
        conversion_(pluginv2::ResourceConversion::NewStub(channel_)) {}

  const std::string& plugin_id() const override { return plugin_id_; }

  void query_data(pluginv2::QueryDataRequest req, CallContext context,
                  boost::asio::any_io_executor io,
                  Callback<pluginv2::QueryDataResponse> done) override {
    std::string bytes;
    req.SerializeToString(&bytes);
    query_channel_.call(
        io, "/pluginv2.Data/QueryData", std::move(bytes), metadata(context), context.timeout,
        [id = plugin_id_, done = std::move(done)](grpc::Status status, std::string reply) {
          if (!status.ok()) return done(map_grpc_error(status, id, "QueryData"));
          pluginv2::QueryDataResponse response;
          if (!response.ParseFromString(reply)) {
            return done(map_grpc_error(
                grpc::Status(grpc::StatusCode::INTERNAL, "cannot parse the QueryDataResponse"), id,
                "QueryData"));
          }
          done(std::move(response));
        });
  }

  void check_health(pluginv2::CheckHealthRequest req, CallContext context,
                    Callback<pluginv2::CheckHealthResponse> done) override {
    unary("CheckHealth", std::move(req), context, std::move(done),
          [this](auto* ctx, auto* rq, auto* rs, auto cb) {
            diagnostics_->async()->CheckHealth(ctx, rq, rs, std::move(cb));
          });
  }

  void collect_metrics(pluginv2::CollectMetricsRequest req, CallContext context,
                       Callback<pluginv2::CollectMetricsResponse> done) override {
    unary("CollectMetrics", std::move(req), context, std::move(done),
          [this](auto* ctx, auto* rq, auto* rs, auto cb) {
            diagnostics_->async()->CollectMetrics(ctx, rq, rs, std::move(cb));
          });
  }

  void subscribe_stream(pluginv2::SubscribeStreamRequest req, CallContext context,
                        Callback<pluginv2::SubscribeStreamResponse> done) override {
    unary("SubscribeStream", std::move(req), context, std::move(done),
          [this](auto* ctx, auto* rq, auto* rs, auto cb) {
            stream_->async()->SubscribeStream(ctx, rq, rs, std::move(cb));
          });
  }

  void publish_stream(pluginv2::PublishStreamRequest req, CallContext context,
                      Callback<pluginv2::PublishStreamResponse> done) override {
    unary("PublishStream", std::move(req), context, std::move(done),
          [this](auto* ctx, auto* rq, auto* rs, auto cb) {
            stream_->async()->PublishStream(ctx, rq, rs, std::move(cb));
          });
  }

  void validate_admission(pluginv2::AdmissionRequest req, CallContext context,
                          Callback<pluginv2::ValidationResponse> done) override {
    unary("ValidateAdmission", std::move(req), context, std::move(done),
          [this](auto* ctx, auto* rq, auto* rs, auto cb) {
            admission_->async()->ValidateAdmission(ctx, rq, rs, std::move(cb));
          });
  }

  void mutate_admission(pluginv2::AdmissionRequest req, CallContext context,
                        Callback<pluginv2::MutationResponse> done) override {
    unary("MutateAdmission", std::move(req), context, std::move(done),
          [this](auto* ctx, auto* rq, auto* rs, auto cb) {
            admission_->async()->MutateAdmission(ctx, rq, rs, std::move(cb));
          });
  }

  void convert_objects(pluginv2::ConversionRequest req, CallContext context,
                       Callback<pluginv2::ConversionResponse> done) override {
    unary("ConvertObjects", std::move(req), context, std::move(done),
          [this](auto* ctx, auto* rq, auto* rs, auto cb) {
            conversion_->async()->ConvertObjects(ctx, rq, rs, std::move(cb));
          });
  }

  std::unique_ptr<StreamCall> call_resource(
      pluginv2::CallResourceRequest req, CallContext context,
      std::function<void(pluginv2::CallResourceResponse)> on_message,
      std::function<void(api::Outcome)> done) override {
    using Reactor = ReadReactor<pluginv2::CallResourceRequest, pluginv2::CallResourceResponse>;
    auto reactor = std::make_shared<Reactor>(plugin_id_, "CallResource", std::move(req), context,
                                             std::move(on_message), std::move(done));
    auto self = shared_from_this();
    reactor->start([self](auto* ctx, auto* rq, auto* r) {
      self->resource_->async()->CallResource(ctx, rq, r);
    });
    return std::make_unique<ReactorHandle<Reactor>>(std::move(reactor));
  }

  std::unique_ptr<StreamCall> run_stream(pluginv2::RunStreamRequest req, CallContext context,
                                         std::function<void(pluginv2::StreamPacket)> on_packet,
                                         std::function<void(api::Outcome)> done) override {
    using Reactor = ReadReactor<pluginv2::RunStreamRequest, pluginv2::StreamPacket>;
    auto reactor = std::make_shared<Reactor>(plugin_id_, "RunStream", std::move(req), context,
                                             std::move(on_packet),
                                             std::move(done));
    auto self = shared_from_this();
    reactor->start([self](auto* ctx, auto* rq, auto* r) {
      self->stream_->async()->RunStream(ctx, rq, r);
    });
    return std::make_unique<ReactorHandle<Reactor>>(std::move(reactor));
  }

 private:
  // The completion lambda owns the call state and a reference to this client (so its stubs and
  // channel outlive the call); gRPC destroys the lambda after running it.
  template <class Req, class Resp, class Begin>
  void unary(const char* rpc, Req req, CallContext context, Callback<Resp> done,
             Begin begin) {
    auto call = std::make_shared<UnaryCall<Req, Resp>>();
    call->req = std::move(req);
    apply(call->ctx, context);
    auto* ctx = &call->ctx;
    auto* rq = &call->req;
    auto* rs = &call->resp;
    begin(ctx, rq, rs,
          [self = shared_from_this(), call, rpc, done = std::move(done)](grpc::Status status) {
            // Runs on a gRPC thread: what the callback throws is contained here.
            obs::contain(rpc, [&] {
              if (status.ok()) {
                done(api::Expected<Resp>(std::move(call->resp)));
              } else {
                done(api::Expected<Resp>(map_grpc_error(status, self->plugin_id_, rpc)));
              }
            });
          });
  }

  // Reference §2.5 step 5: Grafana accepts messages up to MaxInt32, as dial_plugin's channel does.
  static constexpr std::size_t kMaxReplyBytes = INT_MAX;

  std::string plugin_id_;
  std::shared_ptr<grpc::Channel> channel_;
  H2UnaryChannel query_channel_;
  std::unique_ptr<pluginv2::Resource::Stub> resource_;
  std::unique_ptr<pluginv2::Diagnostics::Stub> diagnostics_;
  std::unique_ptr<pluginv2::Stream::Stub> stream_;
  std::unique_ptr<pluginv2::AdmissionControl::Stub> admission_;
  std::unique_ptr<pluginv2::ResourceConversion::Stub> conversion_;
};

}  // namespace

const char* to_string(PluginState state) {
  switch (state) {
    case PluginState::kNotFound: return "NotFound";
    case PluginState::kStarting: return "Starting";
    case PluginState::kRunning: return "Running";
    case PluginState::kUnavailable: return "Unavailable";
  }
  return "Unknown";
}

api::ApiError map_grpc_error(const grpc::Status& status, const std::string& plugin_id,
                             const std::string& rpc) {
  const std::string& msg = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return api::ApiError::unavailable("plugin " + plugin_id + " unavailable: " + msg);
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return api::ApiError::timeout("plugin " + plugin_id + " did not answer " + rpc +
                                    " in time: " + msg);
    case grpc::StatusCode::UNIMPLEMENTED: {
      api::ApiError e;
      e.code = 501;
      e.reason = "NotImplemented";
      e.message = "plugin " + plugin_id + " does not implement " + rpc;
      return e;
    }
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // gRPC's size checks say "... larger than max ..."; anything else is the plugin's own limit.
      if (msg.find("larger than") != std::string::npos) {
        return api::ApiError::too_large("plugin " + plugin_id + " rejected " + rpc + ": " + msg);
      }
      return api::ApiError::bad_gateway("plugin " + plugin_id + " failed: " + msg);
    case grpc::StatusCode::CANCELLED:
      return api::ApiError::unavailable("plugin " + plugin_id + " call " + rpc +
                                        " cancelled: " + msg);
    default:
      return api::ApiError::bad_gateway("plugin " + plugin_id + " failed: " + msg);
  }
}

namespace {

// gRPC 1.51 (without a background poller) runs callback-API completions on a small thread pool
// that it creates on the first callback call of any channel and destroys when the last channel
// that used it goes away. When that last channel is destroyed on one of those very threads (a
// completion callback holding the final reference to a restarted plugin's client), the pool
// tears itself down from inside and frees its completion queue twice (grpc/grpc#32584; seen here
// as an ASan double-free after a plugin was SIGKILLed). One channel that holds the pool for the
// life of the process means that last release never happens.
void hold_callback_threads() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Intentionally never destroyed: it must outlive every plugin channel, including at exit.
    static auto* anchor = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel("unix:/nonexistent/dataplane-aggregator-callback-anchor",
                            grpc::InsecureChannelCredentials()));
    struct Probe {
      std::unique_ptr<pluginv2::Diagnostics::Stub> stub;
      grpc::ClientContext ctx;
      pluginv2::CheckHealthRequest req;
      pluginv2::CheckHealthResponse resp;
    };
    auto* probe = new Probe;
    probe->stub = pluginv2::Diagnostics::NewStub(*anchor);
    probe->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1));
    // The call fails at once (nothing listens there); making it is what attaches the pool.
    probe->stub->async()->CheckHealth(&probe->ctx, &probe->req, &probe->resp,
                                      [probe](grpc::Status) { delete probe; });
  });
}

}  // namespace

std::shared_ptr<PluginClient> make_grpc_plugin_client(std::string plugin_id,
                                                      std::shared_ptr<grpc::Channel> channel,
                                                      const std::string& target) {
  hold_callback_threads();
  return std::make_shared<GrpcPluginClient>(std::move(plugin_id), std::move(channel), target);
}

}  // namespace dpa::plugin
