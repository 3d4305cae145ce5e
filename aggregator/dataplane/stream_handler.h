// `GET .../datasources/{uid}/stream/{path...}` subscribes (Stream.SubscribeStream, then the shared
// RunStream of the StreamHub) and streams packets as chunked NDJSON, or over a WebSocket when the
// request is an Upgrade; `POST` the same path publishes (Stream.PublishStream), and data the
// plugin accepts is published into the channel's subscribers (reference plugin protocol §5.2).
#pragma once

#include "aggregator/dataplane/context.h"
#include "aggregator/dataplane/route_table.h"
#include "aggregator/dataplane/stream_hub.h"
#include "aggregator/dataplane/websocket.h"
#include "aggregator/http/exchange.h"

#include <memory>
#include <string>

namespace dpa::dataplane {

// Makes a packet fit on one NDJSON line: raw newlines in JSON can only be whitespace between
// tokens, so they become spaces.
std::string one_line(std::string json);

class StreamHandler {
 public:
  struct Options {
    WebSocketSession::Options websocket;  // message size limit, close timeout
  };

  StreamHandler(std::shared_ptr<const DataPlaneContext> context, std::shared_ptr<StreamHub> hub,
                Options options);
  StreamHandler(std::shared_ptr<const DataPlaneContext> context, std::shared_ptr<StreamHub> hub)
      : StreamHandler(std::move(context), std::move(hub), Options{}) {}

  // Endpoint::kStream. Subscribe: the subscription data comes from `?data=` or the request body;
  // NOT_FOUND -> 404, PERMISSION_DENIED -> 403, OK -> 200 application/x-ndjson (the subscribe
  // response data first when non-empty, then one line per packet; the response ends when the
  // plugin ends the stream or the server shuts down) or 101 + WebSocket text messages.
  // Publish: 200 `{}`, 404, 403. Plugin unavailable 503; the hub stopped 503.
  void handle(std::shared_ptr<http::Exchange> exchange, RouteMatch match) const;

 private:
  void subscribe(std::shared_ptr<http::Exchange> exchange, RouteMatch match, PluginTarget target,
                 std::string data) const;
  void publish(std::shared_ptr<http::Exchange> exchange, RouteMatch match, PluginTarget target,
               std::string data) const;

  std::shared_ptr<const DataPlaneContext> context_;
  std::shared_ptr<StreamHub> hub_;
  Options options_;
};

}  // namespace dpa::dataplane
