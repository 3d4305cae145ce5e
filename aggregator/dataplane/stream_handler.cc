// SubscribeStream decides whether the client may subscribe; only then is the response started (or
// the WebSocket upgraded), so a refusal is a plain Status response. The subscription is tied to
// the transport: whichever ends first (client gone, plugin EOF, shutdown) ends the other.
#include "aggregator/dataplane/stream_handler.h"

#include "aggregator/dataplane/resource_handler.h"
#include "aggregator/http/wire.h"
#include "aggregator/observability/log.h"

#include <boost/beast/http/field.hpp>

#include <mutex>
#include <optional>
#include <utility>

namespace dpa::dataplane {
namespace {

class NdjsonSubscriber final : public StreamSubscriber {
 public:
  explicit NdjsonSubscriber(std::shared_ptr<http::Exchange> exchange)
      : exchange_(std::move(exchange)) {}
  void send(const std::string& packet) override {
    std::string line;
    line.reserve(packet.size() + 1);
    line += packet;
    line += '\n';
    exchange_->write(std::move(line));
  }
  std::size_t pending_bytes() const override { return exchange_->pending_bytes(); }
  void end(EndReason) override { exchange_->finish(); }

 private:
  std::shared_ptr<http::Exchange> exchange_;
};

class WebSocketSubscriber final : public StreamSubscriber {
 public:
  explicit WebSocketSubscriber(std::shared_ptr<WebSocketSession> session)
      : session_(std::move(session)) {}
  void send(const std::string& packet) override { session_->send_text(packet); }
  std::size_t pending_bytes() const override { return session_->pending_bytes(); }
  void end(EndReason reason) override {
    switch (reason) {
      case EndReason::kEof:
        session_->close(kCloseNormal, "stream ended");
        break;
      case EndReason::kSlow:
        session_->close(kClosePolicyViolation, "subscriber too slow");
        break;
      case EndReason::kShutdown:
        session_->close(kCloseGoingAway, "server shutting down");
        break;
    }
  }

 private:
  std::shared_ptr<WebSocketSession> session_;
};

// Unsubscribes once both the subscription id is known and the client is gone, in either order.
class SubscriptionGuard {
 public:
  explicit SubscriptionGuard(std::weak_ptr<StreamHub> hub) : hub_(std::move(hub)) {}

  void set_id(std::uint64_t id) {
    {
      std::lock_guard lock(mutex_);
      if (!gone_) {
        id_ = id;
        return;
      }
    }
    if (auto hub = hub_.lock()) hub->unsubscribe(id);
  }
  void client_gone() {
    std::uint64_t id = 0;
    {
      std::lock_guard lock(mutex_);
      gone_ = true;
      id = std::exchange(id_, 0);
    }
    if (id != 0) {
      if (auto hub = hub_.lock()) hub->unsubscribe(id);
    }
  }

 private:
  std::weak_ptr<StreamHub> hub_;
  std::mutex mutex_;
  std::uint64_t id_ = 0;
  bool gone_ = false;
};

api::ApiError map_stream_error(api::ApiError error, const std::string& plugin_id) {
  // Unimplemented: the plugin has no Stream service, so there is no such stream.
  if (error.code == 501) {
    return api::ApiError::not_found("plugin " + plugin_id + " does not serve streams");
  }
  return error;
}

std::map<std::string, std::string> stream_headers(const http::Exchange& exchange,
                                                  const plugin::Datasource* datasource) {
  // The SDK reads forwarded HTTP headers of stream requests under "http_<Name>" (§1.8).
  std::map<std::string, std::string> headers;
  for (auto& [name, value] : forwardable_headers(exchange, datasource)) {
    auto& slot = headers["http_" + name];
    slot = slot.empty() ? std::move(value) : slot + ", " + value;
  }
  return headers;
}

bool has_request_body(const http::Header& header) {
  const auto length = header.find(boost::beast::http::field::content_length);
  if (length != header.end()) return length->value() != "0";
  return header.find(boost::beast::http::field::transfer_encoding) != header.end();
}

// What a channel needs to (re-)start its RunStream: it re-reads the datasource and the plugin
// client each time (§5.2 step 4), so a re-run after a plugin restart reaches the new process.
struct RunSpec {
  std::shared_ptr<const DataPlaneContext> context;
  std::string plugin_id;
  std::string datasource_uid;
  std::string namespace_name;
  std::optional<plugin::RequestUser> user;
  std::string path;
  std::string data;
  std::map<std::string, std::string> headers;
  obs::TraceContext trace;  // the subscription that started the stream
};

StreamHub::Starter make_starter(std::shared_ptr<const RunSpec> spec) {
  return [spec](std::function<void(std::string)> on_packet, std::function<void(api::Outcome)> done)
             -> api::Expected<std::unique_ptr<plugin::StreamCall>> {
    const auto& context = *spec->context;
    auto snapshot = context.datasources ? context.datasources() : nullptr;
    const plugin::Datasource* ds =
        snapshot ? snapshot->find(spec->datasource_uid,
                                  plugin::org_id_from_namespace(spec->namespace_name))
                 : nullptr;
    if (ds == nullptr) {
      return api::ApiError::not_found("datasource \"" + spec->datasource_uid + "\" not found");
    }
    if (ds->type != spec->plugin_id) return api::ApiError::bad_request("invalid datasource type");
    auto target = resolve_plugin(context, spec->plugin_id, ds, snapshot,
                                 spec->user ? &*spec->user : nullptr, spec->namespace_name);
    if (!target.ok()) return std::move(target).error();
    pluginv2::RunStreamRequest request;
    *request.mutable_plugincontext() = std::move(target->plugin_context);
    request.set_path(spec->path);
    request.set_data(spec->data);
    request.mutable_headers()->insert(spec->headers.begin(), spec->headers.end());
    return target->client->run_stream(
        std::move(request), {std::chrono::milliseconds(0), spec->trace},
        [on_packet = std::move(on_packet)](pluginv2::StreamPacket packet) {
          on_packet(one_line(std::move(*packet.mutable_data())));
        },
        std::move(done));
  };
}

}  // namespace

std::string one_line(std::string json) {
  for (char& c : json) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return json;
}

StreamHandler::StreamHandler(std::shared_ptr<const DataPlaneContext> context,
                             std::shared_ptr<StreamHub> hub, Options options)
    : context_(std::move(context)), hub_(std::move(hub)), options_(options) {}

void StreamHandler::handle(std::shared_ptr<http::Exchange> exchange, RouteMatch match) const {
  namespace bh = boost::beast::http;
  const auto method = exchange->header().method();
  if (method != bh::verb::get && method != bh::verb::post) {
    http::Response response = http::Response::error(
        api::ApiError::method_not_allowed("the server does not allow this method on the requested resource"));
    response.headers.emplace_back("Allow", "GET, POST");
    exchange->respond(std::move(response));
    return;
  }
  if (hub_->stopped()) {
    exchange->respond_error(api::ApiError::unavailable("the server is shutting down", 1));
    return;
  }
  if (method == bh::verb::get && http::is_websocket_upgrade(exchange->header())) {
    auto head = websocket_handshake_response(exchange->header());
    if (!head.ok()) {
      exchange->respond_error(head.error());
      return;
    }
  }
  auto target = resolve_target(*context_, match);
  if (!target.ok()) {
    exchange->respond_error(target.error());
    return;
  }

  if (method == bh::verb::get && (exchange->has_query_param("data") ||
                                  !has_request_body(exchange->header()))) {
    std::string data = exchange->query_param("data");
    subscribe(std::move(exchange), std::move(match), std::move(*target), std::move(data));
    return;
  }
  // Publish data, or subscription data sent as a GET body.
  auto self = *this;  // cheap: three shared_ptr-sized members
  exchange->read_body(context_->options.max_body_bytes,
                      [self, exchange, match = std::move(match), target = std::move(*target),
                       method](api::Expected<std::string> body) mutable {
                        if (!body.ok()) {
                          exchange->respond_error(body.error());
                          return;
                        }
                        if (method == boost::beast::http::verb::get) {
                          self.subscribe(exchange, std::move(match), std::move(target),
                                         std::move(*body));
                        } else {
                          self.publish(exchange, std::move(match), std::move(target),
                                       std::move(*body));
                        }
                      });
}

void StreamHandler::subscribe(std::shared_ptr<http::Exchange> exchange, RouteMatch match,
                              PluginTarget target, std::string data) const {
  auto spec = std::make_shared<RunSpec>();
  spec->context = context_;
  spec->plugin_id = match.service->spec.plugin_id;
  spec->datasource_uid = match.datasource_uid;
  spec->namespace_name = match.namespace_name;
  spec->user = match.user;
  spec->path = http::percent_decode(match.sub_path);
  spec->data = data;
  spec->headers = stream_headers(*exchange, target.datasource);
  spec->trace = exchange->trace_context();

  pluginv2::SubscribeStreamRequest request;
  *request.mutable_plugincontext() = target.plugin_context;
  request.set_path(spec->path);
  request.set_data(std::move(data));
  request.mutable_headers()->insert(spec->headers.begin(), spec->headers.end());

  // Channels are per org: the same uid in two orgs is two datasources.
  const std::string org = std::to_string(plugin::org_id_from_namespace(spec->namespace_name));
  ChannelKey key{org + "/" + spec->datasource_uid, spec->path, spec->data};
  const bool websocket = http::is_websocket_upgrade(exchange->header());
  auto hub = hub_;
  auto ws_options = options_.websocket;
  const std::string plugin_id = target.client->plugin_id();

  target.client->subscribe_stream(
      std::move(request), {context_->options.call_timeout, exchange->trace_context()},
      [exchange, hub, spec, key = std::move(key), websocket, ws_options,
       plugin_id](api::Expected<pluginv2::SubscribeStreamResponse> response) {
        if (!response.ok()) {
          exchange->respond_error(map_stream_error(response.error(), plugin_id));
          return;
        }
        switch (response->status()) {
          case pluginv2::SubscribeStreamResponse::NOT_FOUND:
            exchange->respond_error(
                api::ApiError::not_found("stream \"" + spec->path + "\" not found"));
            return;
          case pluginv2::SubscribeStreamResponse::PERMISSION_DENIED:
            exchange->respond_error(api::ApiError::forbidden(
                "subscribing to stream \"" + spec->path + "\" is not allowed"));
            return;
          default:
            break;
        }
        std::string initial = one_line(std::move(*response->mutable_data()));
        auto starter = make_starter(spec);

        if (websocket) {
          auto head = websocket_handshake_response(exchange->header());
          exchange->upgrade(
              std::move(*head), [hub, key, starter, initial = std::move(initial),
                                 ws_options](std::unique_ptr<http::ByteStream> stream) {
                if (!stream) return;  // the client left before the upgrade completed
                auto session = WebSocketSession::create(std::move(stream), ws_options);
                auto guard = std::make_shared<SubscriptionGuard>(hub);
                // Clients only listen here; they publish with POST on the same path.
                session->start([](WsOpcode, std::string) {},
                               [guard](std::uint16_t) { guard->client_gone(); });
                if (!initial.empty()) session->send_text(initial);
                const auto id =
                    hub->subscribe(key, starter, std::make_shared<WebSocketSubscriber>(session));
                if (id == 0) {
                  session->close(kCloseGoingAway, "server shutting down");
                  return;
                }
                guard->set_id(id);
              });
          return;
        }

        http::ResponseHead head;
        head.status = 200;
        head.headers = {{"Content-Type", "application/x-ndjson"},
                        {"Cache-Control", "no-cache"},
                        {"X-Content-Type-Options", "nosniff"}};
        exchange->begin_stream(std::move(head));
        if (!initial.empty()) exchange->write(initial + "\n");
        auto guard = std::make_shared<SubscriptionGuard>(hub);
        exchange->on_close([guard] { guard->client_gone(); });
        const auto id = hub->subscribe(key, starter, std::make_shared<NdjsonSubscriber>(exchange));
        if (id == 0) {
          exchange->finish();
          return;
        }
        guard->set_id(id);
        if (exchange->closed()) guard->client_gone();
      });
}

void StreamHandler::publish(std::shared_ptr<http::Exchange> exchange, RouteMatch match,
                            PluginTarget target, std::string data) const {
  const std::string path = http::percent_decode(match.sub_path);
  pluginv2::PublishStreamRequest request;
  *request.mutable_plugincontext() = target.plugin_context;
  request.set_path(path);
  request.set_data(std::move(data));
  for (auto& [name, value] : stream_headers(*exchange, target.datasource)) {
    (*request.mutable_headers())[name] = std::move(value);
  }
  const std::string org = std::to_string(plugin::org_id_from_namespace(match.namespace_name));
  const std::string channel_uid = org + "/" + match.datasource_uid;
  auto hub = hub_;
  const std::string plugin_id = target.client->plugin_id();
  target.client->publish_stream(
      std::move(request), {context_->options.call_timeout, exchange->trace_context()},
      [exchange, hub, channel_uid, path,
       plugin_id](api::Expected<pluginv2::PublishStreamResponse> response) {
        if (!response.ok()) {
          exchange->respond_error(map_stream_error(response.error(), plugin_id));
          return;
        }
        switch (response->status()) {
          case pluginv2::PublishStreamResponse::NOT_FOUND:
            exchange->respond_error(api::ApiError::not_found("stream \"" + path + "\" not found"));
            return;
          case pluginv2::PublishStreamResponse::PERMISSION_DENIED:
            exchange->respond_error(
                api::ApiError::forbidden("publishing to stream \"" + path + "\" is not allowed"));
            return;
          default:
            break;
        }
        // §5.2 step 5: data the plugin returns is published into the channel; empty means the
        // plugin handled it itself.
        if (!response->data().empty()) {
          hub->publish(channel_uid, path, one_line(std::move(*response->mutable_data())));
        }
        exchange->respond(http::Response::json(200, "{}"));
      });
}

}  // namespace dpa::dataplane
