// One Forward per proxied request. It runs on the client session's strand (the HTTP client call
// is bound to the same executor), so the hot path never changes threads:
//   forward -> build upstream head -> start call (+ pump request body)
//   on_head -> (whole buffered body: respond once) | (begin_stream -> pump response body)
//           | (101: upgrade both sides -> tunnel)
#include "aggregator/delegate/delegate_proxy.h"

#include "aggregator/http/wire.h"

#include <boost/asio/strand.hpp>

namespace dpa::delegate {
namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using http::iequals;

namespace {

constexpr std::size_t kFetchBodyLimit = 16 << 20;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// Copies bytes both ways between the client and the delegate until either side closes.
class Tunnel : public std::enable_shared_from_this<Tunnel> {
 public:
  Tunnel(std::shared_ptr<http::ByteStream> client, std::shared_ptr<http::ByteStream> upstream)
      : client_(std::move(client)), upstream_(std::move(upstream)) {}

  void start() {
    pump(client_, upstream_);
    pump(upstream_, client_);
  }

 private:
  void pump(std::shared_ptr<http::ByteStream> from, std::shared_ptr<http::ByteStream> to) {
    auto self = shared_from_this();
    from->read_some([self, from, to](bool ok, std::string bytes) {
      if (!ok) return self->close();
      to->write(std::move(bytes), [self, from, to](bool ok) {
        if (!ok) return self->close();
        self->pump(from, to);
      });
    });
  }

  void close() {
    client_->close();
    upstream_->close();
  }

  std::shared_ptr<http::ByteStream> client_, upstream_;
};

class Forward : public std::enable_shared_from_this<Forward> {
 public:
  Forward(std::shared_ptr<http::Exchange> exchange, http::HttpClient& client,
          const http::Endpoint& endpoint, std::chrono::milliseconds timeout, bool front_proxy,
          std::shared_ptr<const auth::UserInfo> user)
      : ex_(std::move(exchange)),
        client_(client),
        endpoint_(endpoint),
        timeout_(timeout),
        front_proxy_(front_proxy),
        user_(std::move(user)) {}

  void start() {
    const http::Header& req = ex_->header();
    http::ClientRequest request;
    request.method = std::string(sv(req.method_string()));
    request.timeout = timeout_;
    build_head(req, request);
    upgrade_ = request_wants_upgrade(req);
    call_ = client_.start(endpoint_, std::move(request), ex_->executor());

    // Client gone -> upstream call cancelled. Weak: the exchange must not keep us alive.
    std::weak_ptr<Forward> weak = shared_from_this();
    ex_->on_close([weak] {
      if (auto self = weak.lock()) self->call_->cancel();
    });
    if (body_streamed_) pump_request();
    auto self = shared_from_this();
    call_->read_head([self](api::Outcome result) { self->on_head(std::move(result)); });
  }

 private:
  static bool request_wants_upgrade(const http::Header& req) {
    auto upgrade = req.find(bhttp::field::upgrade);
    auto connection = req.find(bhttp::field::connection);
    return upgrade != req.end() && connection != req.end() &&
           http::header_list_contains(sv(connection->value()), "upgrade");
  }

  void build_head(const http::Header& req, http::ClientRequest& request) {
    std::string& head = request.prebuilt_head;
    head.reserve(512);
    head.append(request.method);
    head.push_back(' ');
    head.append(endpoint_.base_path);
    head.append(sv(req.target()));
    head.append(" HTTP/1.1\r\n");

    std::string_view connection;
    if (auto it = req.find(bhttp::field::connection); it != req.end()) connection = sv(it->value());
    std::string_view original_host, forwarded_for, upgrade;
    bool has_request_id = false;
    for (const auto& field : req) {
      std::string_view name = sv(field.name_string());
      std::string_view value = sv(field.value());
      switch (field.name()) {
        case bhttp::field::host:
          original_host = value;
          continue;
        case bhttp::field::upgrade:
          upgrade = value;
          continue;
        case bhttp::field::expect:
          continue;  // 100-continue is answered by our own session
        case bhttp::field::sec_websocket_protocol:
          // In front-proxy mode the bearer token offered as a subprotocol goes the way of
          // Authorization; the other subprotocols are written below.
          if (front_proxy_) continue;
          break;
        case bhttp::field::transfer_encoding:
          if (http::header_list_contains(value, "chunked")) chunked_ = true;
          continue;
        case bhttp::field::content_length:
          if (value != "0") body_streamed_ = true;
          break;
        default:
          if (iequals(name, "x-forwarded-for")) {
            forwarded_for = value;
            continue;
          }
          if (iequals(name, "x-forwarded-proto") || iequals(name, "x-forwarded-host")) continue;
          if (iequals(name, "x-request-id")) has_request_id = true;
          // The request's trace context, valid or new, is written below.
          if (iequals(name, "traceparent") || iequals(name, "tracestate")) continue;
          break;
      }
      if (http::is_hop_by_hop(name)) continue;
      if (!connection.empty() && http::header_list_contains(connection, name)) continue;
      // Identity is established here, never taken from the client (DESIGN §6).
      if (auth::is_remote_identity_header(name)) continue;
      if (front_proxy_ && auth::is_client_credential_header(name)) continue;
      http::append_header(head, name, value);
    }
    if (front_proxy_) {
      if (user_) auth::append_identity_headers(head, *user_);
      std::string protocols;
      for (const auto& protocol : auth::websocket_protocols_without_token(req)) {
        if (!protocols.empty()) protocols += ", ";
        protocols += protocol;
      }
      if (!protocols.empty()) http::append_header(head, "Sec-WebSocket-Protocol", protocols);
    }
    http::append_header(head, "Host", endpoint_.host_header());
    std::string remote = ex_->remote_address();
    head.append("X-Forwarded-For: ");
    if (!forwarded_for.empty()) {
      head.append(forwarded_for);
      head.append(", ");
    }
    head.append(http::address_of(remote));
    head.append("\r\n");
    http::append_header(head, "X-Forwarded-Proto", ex_->is_tls() ? "https" : "http");
    if (!original_host.empty()) http::append_header(head, "X-Forwarded-Host", original_host);
    if (!has_request_id) http::append_header(head, "X-Request-Id", ex_->request_id());
    const auto& trace = ex_->trace_context();
    http::append_header(head, "traceparent", trace.traceparent);
    if (!trace.tracestate.empty()) http::append_header(head, "tracestate", trace.tracestate);
    if (chunked_) {
      head.append("Transfer-Encoding: chunked\r\n");
      body_streamed_ = true;
      request.body_chunked = true;
    }
    if (!upgrade.empty() && http::header_list_contains(connection, "upgrade")) {
      head.append("Connection: Upgrade\r\n");
      http::append_header(head, "Upgrade", upgrade);
    }
    head.append("\r\n");
    request.body_streamed = body_streamed_;
  }

  // Request body: client -> delegate, one chunk in flight at a time.
  void pump_request() {
    auto self = shared_from_this();
    ex_->read_body_some([self](bool ok, std::string chunk, bool last) {
      if (!ok) {
        // The client's body is malformed (a bad chunk size) or it went away: the fault is the
        // client's, so the answer (if it is still there) is 400, not the upstream's 503.
        self->request_body_failed_ = true;
        return self->call_->cancel();
      }
      self->call_->write_body(std::move(chunk), last, [self, last](bool ok) {
        if (ok && !last) self->pump_request();
      });
    });
  }

  void on_head(api::Outcome result) {
    if (!result) {
      if (request_body_failed_) {
        return ex_->respond_error(api::ApiError::bad_request("the request body could not be read"));
      }
      api::ApiError error = std::move(result).error();
      if (error.code == 503) {
        error = api::ApiError::unavailable("delegate unavailable: " + error.message, 1);
      }
      return ex_->respond_error(error);
    }
    const auto& head = call_->head();
    int status = static_cast<int>(head.result_int());
    if (status == 101) {
      if (upgrade_) return start_tunnel();
      // A protocol switch the client did not ask for cannot be relayed: its bytes would follow.
      call_->cancel();
      return ex_->respond_error(
          api::ApiError::bad_gateway("the delegate switched protocols without being asked to"));
    }

    http::ResponseHead out;
    out.status = status;
    out.headers.reserve(16);
    std::string_view connection;
    if (auto it = head.find(bhttp::field::connection); it != head.end()) connection = sv(it->value());
    for (const auto& field : head) {
      std::string_view name = sv(field.name_string());
      if (http::is_hop_by_hop(name)) continue;
      if (!connection.empty() && http::header_list_contains(connection, name)) continue;
      out.headers.emplace_back(std::string(name), std::string(sv(field.value())));
    }
    // Small responses already read whole go out in one write; everything else streams.
    if (auto body = call_->take_buffered_body()) {
      http::Response response;
      response.status = status;
      response.headers = std::move(out.headers);
      response.body = std::move(*body);
      ex_->respond(std::move(response));
      return;
    }
    ex_->begin_stream(std::move(out));
    pump_response();
  }

  // Response body: delegate -> client, flushed chunk by chunk (a watch event arrives as sent).
  void pump_response() {
    auto self = shared_from_this();
    call_->read_body_some([self](bool ok, std::string chunk, bool last) {
      if (!ok) return self->ex_->abort();
      if (chunk.empty()) {
        if (last) return self->ex_->finish();
        return self->pump_response();
      }
      self->ex_->write(std::move(chunk), [self, last](bool ok) {
        if (!ok) return self->call_->cancel();
        if (last) return self->ex_->finish();
        self->pump_response();
      });
    });
  }

  void start_tunnel() {
    http::ResponseHead head = call_->copy_head();
    std::shared_ptr<http::ByteStream> upstream = call_->take_upgraded();
    if (!upstream) {
      return ex_->respond_error(api::ApiError::bad_gateway("delegate upgrade failed"));
    }
    ex_->upgrade(std::move(head), [upstream](std::unique_ptr<http::ByteStream> client) {
      if (!client) return upstream->close();
      std::make_shared<Tunnel>(std::shared_ptr<http::ByteStream>(std::move(client)), upstream)
          ->start();
    });
  }

  std::shared_ptr<http::Exchange> ex_;
  http::HttpClient& client_;
  const http::Endpoint& endpoint_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<http::ClientCall> call_;
  bool body_streamed_ = false;
  bool chunked_ = false;
  bool upgrade_ = false;
  bool request_body_failed_ = false;
  bool front_proxy_;
  std::shared_ptr<const auth::UserInfo> user_;
};

}  // namespace

DelegateProxy::DelegateProxy(net::io_context& io, DelegateOptions options)
    : io_(io), options_(std::move(options)) {
  if (options_.url.empty()) return;
  auto endpoint = http::Endpoint::parse(options_.url);
  if (!endpoint) {
    status_ = std::move(endpoint).error();
    return;
  }
  endpoint_ = std::move(endpoint.value());
  http::ClientOptions client_options;
  client_options.ca_file = options_.ca_file;
  client_options.client_cert_file = options_.client_cert_file;
  client_options.client_key_file = options_.client_key_file;
  client_options.connect_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.connect_timeout);
  client_ = std::make_unique<http::HttpClient>(std::move(client_options));
  if (endpoint_.tls() && !client_->tls_status()) status_ = client_->tls_status();
}

DelegateProxy::~DelegateProxy() = default;

bool DelegateProxy::configured() const { return !options_.url.empty(); }

api::Outcome DelegateProxy::reload_tls() {
  if (!client_ || !endpoint_.tls()) return api::Ok{};
  return client_->reload_tls();
}

std::size_t DelegateProxy::idle_connections() const {
  return client_ ? client_->idle_connections() : 0;
}

void DelegateProxy::forward(std::shared_ptr<http::Exchange> exchange,
                            std::shared_ptr<const auth::UserInfo> user) {
  if (!configured()) {
    // Kubernetes' answer for a path nobody serves.
    return exchange->respond_error(
        api::ApiError::not_found("the server could not find the requested resource"));
  }
  if (!status_) {
    return exchange->respond_error(
        api::ApiError::unavailable("delegate unavailable: " + status_.error().message, 1));
  }
  auto forward = std::make_shared<Forward>(
      std::move(exchange), *client_, endpoint_,
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.response_timeout),
      options_.front_proxy, std::move(user));
  forward->start();
}

void DelegateProxy::fetch(std::string path, std::vector<std::pair<std::string, std::string>> headers,
                          std::chrono::milliseconds timeout,
                          std::function<void(api::Expected<http::Response>)> done) {
  if (!configured()) {
    return done(api::ApiError::not_found("no delegate configured"));
  }
  if (!status_) {
    return done(api::ApiError::unavailable("delegate unavailable: " + status_.error().message));
  }
  http::ClientRequest request;
  request.method = "GET";
  request.target = std::move(path);
  request.headers = std::move(headers);
  request.timeout = timeout;
  client_->fetch(endpoint_, std::move(request), kFetchBodyLimit, net::make_strand(io_),
                 [done = std::move(done)](api::Expected<http::Response> result) {
                   if (!result && result.error().code == 503) {
                     return done(api::ApiError::unavailable("delegate unavailable: " +
                                                            result.error().message));
                   }
                   done(std::move(result));
                 });
}

}  // namespace dpa::delegate
