// The handler interfaces a plugin implements, one per pluginv2 capability. serve() registers the
// gRPC service of every handler it is given; absent ones answer UNIMPLEMENTED, which hosts read as
// "not supported" (reference grafana-plugin-protocol.md §1.8). Handlers run on gRPC's own threads
// and may block (the plugin process has nothing else to do), but must watch CallContext for
// cancellation in long calls.
#pragma once

#include "plugins/proto/backend.pb.h"

#include <grpcpp/support/status.h>

#include <chrono>
#include <map>
#include <string>

namespace grpc {
class ServerContext;
}

namespace dpa::sdk {

// What a handler may ask about the call in flight.
class CallContext {
 public:
  explicit CallContext(grpc::ServerContext& context) : context_(context) {}

  // True once the host cancelled the call, its deadline passed, or the server is shutting down.
  bool cancelled() const;
  // Sleeps up to `duration`, waking early on cancellation; returns !cancelled().
  bool sleep_for(std::chrono::milliseconds duration) const;
  // gRPC metadata sent by the host (lower-case keys).
  std::multimap<std::string, std::string> metadata() const;

 private:
  grpc::ServerContext& context_;
};

// Writes CallResourceResponse messages of one CallResource call. The first message carries the
// status code and headers; the host ignores code/headers of later ones (§1.3).
class ResourceSender {
 public:
  virtual ~ResourceSender() = default;
  // False when the host has gone away; stop producing then.
  virtual bool send(const pluginv2::CallResourceResponse& message) = 0;
  // Convenience: one message with code, headers (one value each) and a body chunk.
  bool send(int code, const std::map<std::string, std::string>& headers, std::string body);
  // Convenience: a later body chunk (no code, no headers).
  bool send_body(std::string chunk);
};

// Writes StreamPacket messages of one RunStream call.
class PacketSender {
 public:
  virtual ~PacketSender() = default;
  // `json` must be one JSON value (normally a frame in Grafana's frame JSON). False when the host
  // has gone away.
  virtual bool send(std::string json) = 0;
};

class QueryDataHandler {
 public:
  virtual ~QueryDataHandler() = default;
  // One DataResponse per query refId; per-query failures go into that DataResponse (error +
  // status), a non-OK Status fails the whole request.
  virtual grpc::Status query_data(const CallContext& ctx, const pluginv2::QueryDataRequest& request,
                                  pluginv2::QueryDataResponse& response) = 0;
};

class CheckHealthHandler {
 public:
  virtual ~CheckHealthHandler() = default;
  virtual grpc::Status check_health(const CallContext& ctx,
                                    const pluginv2::CheckHealthRequest& request,
                                    pluginv2::CheckHealthResponse& response) = 0;
};

class CollectMetricsHandler {
 public:
  virtual ~CollectMetricsHandler() = default;
  // Fill response.metrics().prometheus with Prometheus text exposition.
  virtual grpc::Status collect_metrics(const CallContext& ctx,
                                       const pluginv2::CollectMetricsRequest& request,
                                       pluginv2::CollectMetricsResponse& response) = 0;
};

class CallResourceHandler {
 public:
  virtual ~CallResourceHandler() = default;
  // Must send at least one message (hosts treat zero messages as an error).
  virtual grpc::Status call_resource(const CallContext& ctx,
                                     const pluginv2::CallResourceRequest& request,
                                     ResourceSender& sender) = 0;
};

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  virtual grpc::Status subscribe_stream(const CallContext& ctx,
                                        const pluginv2::SubscribeStreamRequest& request,
                                        pluginv2::SubscribeStreamResponse& response) = 0;
  virtual grpc::Status publish_stream(const CallContext& ctx,
                                      const pluginv2::PublishStreamRequest& request,
                                      pluginv2::PublishStreamResponse& response) = 0;
  // Long-lived: send packets until ctx.cancelled() (the host cancels when the last subscriber
  // leaves). Returning OK ends the stream for good; an error makes Grafana re-run it (§5.2).
  virtual grpc::Status run_stream(const CallContext& ctx, const pluginv2::RunStreamRequest& request,
                                  PacketSender& sender) = 0;
};

class AdmissionHandler {
 public:
  virtual ~AdmissionHandler() = default;
  virtual grpc::Status validate_admission(const CallContext& ctx,
                                          const pluginv2::AdmissionRequest& request,
                                          pluginv2::ValidationResponse& response) = 0;
  virtual grpc::Status mutate_admission(const CallContext& ctx,
                                        const pluginv2::AdmissionRequest& request,
                                        pluginv2::MutationResponse& response) = 0;
};

class ConversionHandler {
 public:
  virtual ~ConversionHandler() = default;
  virtual grpc::Status convert_objects(const CallContext& ctx,
                                       const pluginv2::ConversionRequest& request,
                                       pluginv2::ConversionResponse& response) = 0;
};

}  // namespace dpa::sdk
