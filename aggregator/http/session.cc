// One session per connection, templated over the plain and TLS streams (Beast's server-flex
// model). The asynchronous chain reads top to bottom:
//   do_read_request -> on_read -> parse_header -> on_request (handler runs)
//   respond / begin_stream / write / finish -> do_write -> on_write -> finish_request -> next
// Request headers are parsed with Beast's parser fed from our own buffer (no composed read ops),
// bodies are decoded on demand, responses are serialised by hand into one gather-write per flush.
// Everything touching the socket runs on the session's strand; Exchange methods dispatch to it.
#include "aggregator/http/session.h"

#include "aggregator/http/wire.h"
#include "aggregator/observability/containment.h"
#include "aggregator/observability/log.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <atomic>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>

namespace dpa::http {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr std::size_t kReadSize = 16 * 1024;       // bytes asked of the socket per read
constexpr std::size_t kBodyChunk = 64 * 1024;      // largest body chunk handed to a handler
constexpr std::size_t kMaxDrainBytes = 1 << 20;    // unread request body we discard to keep-alive
constexpr std::chrono::seconds kLingerTimeout{1};  // reading after our FIN so the peer gets the reply

using RequestParser = bhttp::request_parser<bhttp::buffer_body>;

// Two traceparent headers make the context invalid (a new trace starts); several tracestate
// headers are one list, as RFC 9110 combines repeated fields.
obs::TraceContext trace_context_of(const Header& req) {
  std::string_view traceparent;
  int traceparents = 0;
  std::string tracestate;
  for (const auto& field : req) {
    std::string_view name(field.name_string().data(), field.name_string().size());
    std::string_view value(field.value().data(), field.value().size());
    if (iequals(name, "traceparent")) {
      traceparent = value;
      ++traceparents;
    } else if (iequals(name, "tracestate") && tracestate.size() < 8192) {
      if (!tracestate.empty()) tracestate.push_back(',');
      tracestate.append(value);
    }
  }
  return obs::TraceContext::from_headers(traceparents == 1 ? traceparent : std::string_view(),
                                         tracestate);
}

std::string make_request_id() {
  // A per-process random prefix and a counter: unique enough to correlate log lines, and short
  // enough (15 chars) to stay in the small-string buffer.
  static const std::uint32_t prefix = std::random_device{}() & 0xffffff;
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  std::string id;
  id.reserve(15);
  append_hex(id, prefix | 0x1000000);
  id.erase(0, 1);
  id.push_back('-');
  std::string digits;
  append_hex(digits, n);
  id.append(8 - std::min<std::size_t>(8, digits.size()), '0');
  id.append(digits);
  return id;
}

bool status_has_body(int status) { return !(status < 200 || status == 204 || status == 304); }

// Finds `name` in a raw query string; returns whether present and its raw value.
bool find_query_param(std::string_view query, std::string_view name, std::string_view& value) {
  std::size_t pos = 0;
  while (pos <= query.size() && !query.empty()) {
    std::size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(pos, amp - pos);
    std::size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name || (key.find('%') != std::string_view::npos && percent_decode(key, true) == name)) {
      value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
    if (amp == query.size()) break;
    pos = amp + 1;
  }
  return false;
}

// A response head serialised by hand: one allocation, no Beast serializer state.
enum class Framing { kLength, kChunked, kRaw, kNone };

std::string serialize_head(int status, const std::vector<std::pair<std::string, std::string>>& headers,
                           Framing framing, std::uint64_t content_length, bool keep_alive,
                           bool keep_user_length) {
  std::string out;
  out.reserve(160 + headers.size() * 48);
  append_status_line(out, status);
  bool has_date = false, has_server = false;
  for (const auto& [name, value] : headers) {
    // The session owns framing and connection management.
    if (iequals(name, "content-length")) {
      if (!keep_user_length) continue;
    } else if (iequals(name, "transfer-encoding") || iequals(name, "connection")) {
      continue;
    } else if (iequals(name, "date")) {
      has_date = true;
    } else if (iequals(name, "server")) {
      has_server = true;
    }
    append_header(out, name, value);
  }
  if (!has_date) {
    out.append("Date: ");
    append_http_date(out);
    out.append("\r\n");
  }
  if (!has_server) out.append("Server: dataplane-aggregator\r\n");
  if (framing == Framing::kLength) {
    out.append("Content-Length: ");
    out.append(std::to_string(content_length));
    out.append("\r\n");
  } else if (framing == Framing::kChunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  }
  if (!keep_alive) out.append("Connection: close\r\n");
  out.append("\r\n");
  return out;
}

template <class Stream>
class Session;

// The per-request Exchange. It owns the parser (so header() stays valid for the exchange's
// lifetime) and the request/response state; the session owns the connection.
template <class Stream>
class ServerExchange final : public Exchange,
                             public std::enable_shared_from_this<ServerExchange<Stream>> {
 public:
  using SessionPtr = std::shared_ptr<Session<Stream>>;

  ServerExchange(SessionPtr session, std::size_t header_limit) : session_(std::move(session)) {
    parser_.header_limit(static_cast<std::uint32_t>(header_limit));
    parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_.eager(false);  // stop after the header; the body is decoded on demand
  }

  // --- request ---------------------------------------------------------------------------------
  const Header& header() const override { return parser_.get(); }
  std::string_view path() const override { return path_; }
  std::string_view query() const override { return query_; }
  std::string query_param(std::string_view name) const override {
    std::string_view raw;
    return find_query_param(query_, name, raw) ? percent_decode(raw, true) : std::string();
  }
  bool has_query_param(std::string_view name) const override {
    std::string_view raw;
    return find_query_param(query_, name, raw);
  }
  std::string remote_address() const override { return remote_; }
  bool is_tls() const override { return Session<Stream>::kTls; }
  const PeerCertificates* peer_certificates() const override {
    return session_ ? session_->peer_certificates() : nullptr;
  }
  const std::string& request_id() const override {
    if (request_id_.empty()) {
      auto it = parser_.get().find("X-Request-Id");
      if (it != parser_.get().end() && !it->value().empty() && it->value().size() <= 128) {
        request_id_.assign(it->value().data(), it->value().size());
      } else {
        request_id_ = make_request_id();
      }
    }
    return request_id_;
  }
  const obs::TraceContext& trace_context() const override { return trace_; }

  void read_body(std::size_t limit, std::function<void(api::Expected<std::string>)> done) override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, limit, done = std::move(done)]() mutable {
      self->start_read_body(limit, std::move(done));
    });
  }
  void read_body_some(std::function<void(bool, std::string, bool)> done) override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, done = std::move(done)]() mutable {
      self->session_->read_body_some(self, std::move(done));
    });
  }

  // --- response --------------------------------------------------------------------------------
  void respond(Response response) override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, response = std::move(response)]() mutable {
      self->session_->respond(self, std::move(response));
    });
  }
  void begin_stream(ResponseHead head) override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, head = std::move(head)]() mutable {
      self->session_->begin_stream(self, std::move(head));
    });
  }
  void write(std::string chunk, std::function<void(bool)> done) override {
    pending_bytes_.fetch_add(chunk.size(), std::memory_order_relaxed);
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, chunk = std::move(chunk), done = std::move(done)]() mutable {
      self->session_->write_chunk(self, std::move(chunk), std::move(done));
    });
  }
  void write_shared(std::shared_ptr<const std::string> chunk) override {
    pending_bytes_.fetch_add(chunk->size(), std::memory_order_relaxed);
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, chunk = std::move(chunk)]() mutable {
      self->session_->write_shared_chunk(self, std::move(chunk));
    });
  }
  std::size_t pending_bytes() const override {
    return pending_bytes_.load(std::memory_order_relaxed);
  }
  void finish() override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self]() { self->session_->finish_stream(self); });
  }
  void abort() override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self]() {
      if (self == self->session_->current_) self->session_->client_gone();
    });
  }
  void on_complete(std::function<void(int)> callback) override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, callback = std::move(callback)]() mutable {
      if (self->finished_) {
        return obs::contain("request completion", [&] { callback(self->status_); });
      }
      self->on_complete_.push_back(std::move(callback));
    });
  }
  void on_close(std::function<void()> callback) override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, callback = std::move(callback)]() mutable {
      if (self->finished_) return;  // the response is complete: nothing left to interrupt
      if (self->closed_) {
        net::post(self->executor_, std::move(callback));
      } else {
        self->on_close_ = std::move(callback);
      }
    });
  }
  bool closed() const override { return closed_flag_.load(std::memory_order_acquire); }
  void upgrade(ResponseHead head, std::function<void(std::unique_ptr<ByteStream>)> done) override {
    auto self = this->shared_from_this();
    net::dispatch(executor_, [self, head = std::move(head), done = std::move(done)]() mutable {
      self->session_->upgrade(self, std::move(head), std::move(done));
    });
  }
  net::any_io_executor executor() override { return executor_; }

  // --- state, touched only on the strand (by the session) --------------------------------------
  void start_read_body(std::size_t limit, std::function<void(api::Expected<std::string>)> done) {
    if (auto length = parser_.content_length(); length && *length > limit) {
      keep_alive_ = false;  // the unread body makes the connection unusable
      post_result(std::move(done), api::ApiError::too_large(too_large_message(limit)));
      return;
    }
    accumulate_body(limit, std::make_shared<std::string>(), std::move(done));
  }

  void accumulate_body(std::size_t limit, std::shared_ptr<std::string> body,
                       std::function<void(api::Expected<std::string>)> done) {
    auto self = this->shared_from_this();
    session_->read_body_some(
        self, [self, limit, body, done = std::move(done)](bool ok, std::string chunk,
                                                           bool last) mutable {
          if (!ok) {
            done(api::ApiError::bad_request("request body could not be read"));
            return;
          }
          if (body->size() + chunk.size() > limit) {
            self->keep_alive_ = false;
            done(api::ApiError::too_large(too_large_message(limit)));
            return;
          }
          if (body->empty()) {
            *body = std::move(chunk);
          } else {
            body->append(chunk);
          }
          if (last) {
            done(std::move(*body));
          } else {
            self->accumulate_body(limit, std::move(body), std::move(done));
          }
        });
  }

  static std::string too_large_message(std::size_t limit) {
    return "the request body is larger than the limit of " + std::to_string(limit) + " bytes";
  }

  template <class Done, class Value>
  void post_result(Done&& done, Value&& value) {
    net::post(executor_, [done = std::forward<Done>(done), value = std::forward<Value>(value)]() mutable {
      done(std::move(value));
    });
  }

  void mark_closed() {
    if (closed_) return;
    closed_ = true;
    closed_flag_.store(true, std::memory_order_release);
    if (on_close_ && !finished_) {
      auto callback = std::move(on_close_);
      on_close_ = nullptr;
      callback();
    }
  }

  SessionPtr session_;
  net::any_io_executor executor_;
  RequestParser parser_;
  std::string_view path_, query_;
  std::string remote_;
  mutable std::string request_id_;
  obs::TraceContext trace_;
  std::chrono::steady_clock::time_point start_;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool expect_continue_ = false;
  bool continue_sent_ = false;
  bool response_started_ = false;   // respond/begin_stream/upgrade called
  bool response_complete_ = false;  // everything queued; finish when the queue drains
  bool streaming_ = false;
  bool chunked_ = false;
  bool body_allowed_ = true;
  bool closed_ = false;
  bool finished_ = false;  // finish_request ran
  int status_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::atomic<bool> closed_flag_{false};
  std::atomic<std::size_t> pending_bytes_{0};
  std::function<void()> on_close_;
  std::vector<std::function<void(int)>> on_complete_;
};

template <class Stream>
class Session final : public SessionControl, public std::enable_shared_from_this<Session<Stream>> {
 public:
  using ExchangePtr = std::shared_ptr<ServerExchange<Stream>>;

  template <class... Args>
  Session(std::shared_ptr<ServerState> state, bool counted, Args&&... args)
      : state_(std::move(state)),
        stream_(std::forward<Args>(args)...),
        counted_(counted),
        timer_(stream_.get_executor()) {}

  ~Session() override {
    if (registered_) state_->remove_session(registration_, counted_);
  }

  // Something the stream refers to and must outlive it (the TLS context it was made with).
  void keep_alive(std::shared_ptr<void> dependency) { dependency_ = std::move(dependency); }

  void run() {
    registration_ = state_->add_session(this->weak_from_this());
    registered_ = true;
    error_code ec;
    auto endpoint = lowest().socket().remote_endpoint(ec);
    if (!ec) {
      // "[v6]:port" as in a URL authority, so the port can be told from the address.
      const std::string address = endpoint.address().to_string();
      remote_ = endpoint.address().is_v6() ? "[" + address + "]" : address;
      remote_ += ":" + std::to_string(endpoint.port());
    }
    lowest().socket().set_option(tcp::no_delay(true), ec);
    if (state_->shutting_down.load()) {
      do_close();
      return;
    }
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->on_run(); });
  }

  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  bool is_tls() const { return kTls; }
  const PeerCertificates* peer_certificates() const { return peer_ ? &*peer_ : nullptr; }

  // The client certificate and the intermediates it sent, kept for the connection's lifetime.
  void capture_peer_certificates() {
    if constexpr (kTls) {
      SSL* ssl = stream_.native_handle();
      X509* leaf = SSL_get1_peer_certificate(ssl);
      if (!leaf) return;
      auto free_x509 = [](X509* x) { X509_free(x); };
      PeerCertificates peer;
      peer.leaf = std::shared_ptr<X509>(leaf, free_x509);
      if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl)) {
        for (int i = 0; i < sk_X509_num(chain); ++i) {
          X509* cert = sk_X509_value(chain, i);
          if (X509_cmp(cert, leaf) == 0) continue;  // some stacks repeat the leaf
          X509_up_ref(cert);
          peer.intermediates.push_back(std::shared_ptr<X509>(cert, free_x509));
        }
      }
      peer_ = std::move(peer);
    }
  }

  // --- SessionControl --------------------------------------------------------------------------
  void begin_shutdown() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      self->shutting_down_ = true;
      if (self->closed_ || self->upgraded_) return;
      ExchangePtr ex = self->current_;
      if (!ex) {
        // Waiting for (or partway through) a request header: nothing in flight to finish.
        self->do_close();
        return;
      }
      ex->keep_alive_ = false;
      if (ex->streaming_ && !ex->response_complete_) {
        ex->mark_closed();
        self->end_stream(ex);
      }
    });
  }
  void force_close() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      self->client_gone();
    });
  }

  // --- reading requests ------------------------------------------------------------------------
  void on_run() {
    if constexpr (kTls) {
      set_deadline(state_->header_timeout);
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](error_code ec) {
                                if (ec) return self->do_close();
                                self->capture_peer_certificates();
                                self->start_first_request();
                              });
    } else {
      start_first_request();
    }
  }

  void start_first_request() {
    if (!counted_) {
      // Over max_connections: answer with a Status right away and hang up.
      auto error = api::ApiError::unavailable("too many open connections", 1);
      Response r = Response::error(error);
      std::string head = serialize_head(r.status, r.headers, Framing::kLength, r.body.size(),
                                        false, false);
      queue_.push_back({std::move(head), {}});
      queue_.push_back({std::move(r.body), {}});
      close_after_write_ = true;
      do_write();
      return;
    }
    do_read_request();
  }

  void do_read_request() {
    current_.reset();
    if (closed_) return;
    if (shutting_down_) return do_close();
    // The exchange gets its session pointer only when a handler receives it: a connection
    // waiting for a request holds no reference cycle (nothing leaks if the io_context dies).
    pending_ = std::make_shared<ServerExchange<Stream>>(nullptr, state_->options.max_header_bytes);
    pending_->executor_ = stream_.get_executor();
    header_deadline_set_ = false;
    if (buffer_.size() > 0) {
      arm_header_deadline();
      parse_header();
      return;
    }
    // Between requests the idle timeout applies; the first request gets the header timeout.
    set_deadline(served_ ? state_->idle_timeout : state_->header_timeout);
    header_deadline_set_ = !served_;
    do_read();
  }

  void arm_header_deadline() {
    if (header_deadline_set_) return;
    header_deadline_set_ = true;
    set_deadline(state_->header_timeout);
  }

  // The only place a read is started: at most one is in flight; on_read routes by phase.
  void do_read() {
    if (read_in_flight_ || closed_) return;
    read_in_flight_ = true;
    stream_.async_read_some(buffer_.prepare(kReadSize),
                            [self = this->shared_from_this()](error_code ec, std::size_t n) {
                              self->on_read(ec, n);
                            });
  }

  void on_read(error_code ec, std::size_t n) {
    read_in_flight_ = false;
    if (ec) {
      if (lingering_) return finish_close();
      if (current_) return client_gone();
      return do_close();  // idle timeout, slowloris cut, or the client closed between requests
    }
    buffer_.commit(n);
    if (lingering_) {
      buffer_.consume(buffer_.size());
      return do_read();
    }
    switch (phase_) {
      case Phase::kHeader:
        arm_header_deadline();
        return parse_header();
      case Phase::kBody:
        return continue_body();
      case Phase::kDrain:
        return continue_drain();
      case Phase::kHandling:
        return;  // bytes of a pipelined request: parsed when this one is done
    }
  }

  void parse_header() {
    phase_ = Phase::kHeader;
    error_code ec;
    std::size_t used = pending_->parser_.put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == bhttp::error::need_more) return do_read();
    if (ec == bhttp::error::header_limit) {
      return reject_request(api::ApiError::header_too_large(
          "request header exceeds " + std::to_string(state_->options.max_header_bytes) +
          " bytes"));
    }
    if (ec) return reject_request(api::ApiError::bad_request("malformed HTTP request: " + ec.message()));
    if (!pending_->parser_.is_header_done()) return do_read();
    on_request();
  }

  // What RFC 9112 makes a server refuse before it reads a body, because two parsers could
  // disagree about where the request ends (request smuggling) or which host it names. Beast
  // accepts each of these; a proxy must not pass them on.
  static std::optional<api::ApiError> framing_error(const Header& req) {
    if (auto invalid = target_error(req)) return invalid;
    int hosts = 0, lengths = 0;
    std::string codings;
    for (const auto& field : req) {
      switch (field.name()) {
        case bhttp::field::host:
          ++hosts;
          break;
        case bhttp::field::content_length:
          ++lengths;
          if (field.value().find(',') != boost::beast::string_view::npos) ++lengths;
          break;
        case bhttp::field::transfer_encoding:
          if (!codings.empty()) codings.push_back(',');
          codings.append(field.value().data(), field.value().size());
          break;
        default:
          break;
      }
    }
    // §3.2: exactly one Host in HTTP/1.1 (HTTP/1.0 clients may omit it).
    if (hosts > 1 || (hosts == 0 && req.version() >= 11)) {
      return api::ApiError::bad_request(hosts == 0 ? "missing Host header"
                                                   : "more than one Host header");
    }
    // §6.3: several Content-Length values ("3, 3" included) are an invalid length.
    if (lengths > 1) return api::ApiError::bad_request("invalid Content-Length: more than one value");
    if (codings.empty()) return std::nullopt;
    // §6.3: chunked must be the final coding, or the body's length is unknown: 400 and close.
    // §6.1: a coding we do not implement (gzip, identity, ...) is 501.
    std::vector<std::string_view> list;
    std::string_view rest = codings;
    while (!rest.empty()) {
      std::size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (!item.empty()) list.push_back(item);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    if (list.empty() || !iequals(list.back(), "chunked")) {
      return api::ApiError::bad_request("Transfer-Encoding must end with chunked");
    }
    if (list.size() > 1) {
      api::ApiError error;
      error.code = 501;
      error.reason = "NotImplemented";
      error.message = "transfer coding \"" + std::string(list.front()) + "\" is not supported";
      return error;
    }
    return std::nullopt;
  }

  // Authentication, authorization and routing must all see the same path, so a target they
  // could read differently is refused here, once (400, as kube-apiserver refuses paths it will
  // not serve): anything but origin form ("/path?query"; "*" for OPTIONS), and "." or ".."
  // segments, plain or percent-encoded, which a later hop would resolve to another path.
  static std::optional<api::ApiError> target_error(const Header& req) {
    std::string_view target = req.target();
    if (target == "*" && req.method() == bhttp::verb::options) return std::nullopt;
    if (target.empty() || target.front() != '/') {
      return api::ApiError::bad_request("the request target must be an absolute path");
    }
    std::string_view path = target.substr(0, target.find('?'));
    std::size_t start = 1;
    while (start <= path.size()) {
      std::size_t slash = path.find('/', start);
      if (slash == std::string_view::npos) slash = path.size();
      std::string_view segment = path.substr(start, slash - start);
      if (is_dot_segment(segment)) {
        return api::ApiError::bad_request("the request path must not contain \".\" or \"..\" segments");
      }
      start = slash + 1;
    }
    return std::nullopt;
  }

  static bool is_dot_segment(std::string_view segment) {
    int dots = 0;
    for (std::size_t i = 0; i < segment.size(); ++i) {
      if (segment[i] == '.') {
        ++dots;
      } else if (segment[i] == '%' && i + 2 < segment.size() && segment[i + 1] == '2' &&
                 (segment[i + 2] == 'e' || segment[i + 2] == 'E')) {
        ++dots;
        i += 2;
      } else {
        return false;
      }
    }
    return dots == 1 || dots == 2;
  }

  // A request we answer ourselves before any handler sees it; the connection then closes.
  void reject_request(const api::ApiError& error) {
    pending_->start_ = std::chrono::steady_clock::now();
    current_ = std::move(pending_);
    current_->keep_alive_ = false;
    current_->trace_ = trace_context_of(current_->parser_.get());  // for its log line
    set_deadline(state_->header_timeout);
    respond(current_, Response::error(error));
  }

  void on_request() {
    if (auto invalid = framing_error(pending_->parser_.get())) return reject_request(*invalid);
    clear_deadline();
    phase_ = Phase::kHandling;
    current_ = std::move(pending_);
    ExchangePtr ex = current_;
    ex->session_ = this->shared_from_this();
    ex->start_ = std::chrono::steady_clock::now();
    ex->remote_ = remote_;
    auto& req = ex->parser_.get();
    std::string_view target = req.target();
    std::size_t q = target.find('?');
    ex->path_ = target.substr(0, q);
    ex->query_ = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    ex->trace_ = trace_context_of(req);
    ex->keep_alive_ = ex->parser_.keep_alive() && !shutting_down_;
    ex->head_request_ = req.method() == bhttp::verb::head;
    auto expect = req.find(bhttp::field::expect);
    ex->expect_continue_ = expect != req.end() && iequals(expect->value(), "100-continue");
    ex->parser_.eager(true);
    served_ = true;
    // An upgrade hands the socket over, so nothing may be reading it in the background.
    bool upgrade = req.find(bhttp::field::upgrade) != req.end();
    if (ex->parser_.is_done() && !upgrade) watch_for_disconnect();
    state_->handler(handler_reference(ex));
  }

  // What the handler receives: a reference of its own to the exchange. When the handler's last
  // copy is dropped (a callback destroyed by an exception escaping it, or a handler that forgot
  // the request), an exchange left without a response is answered with a 500 Status and a started
  // stream is cut, so no client waits for an answer nobody will give (DESIGN §8).
  // The check is posted, never dispatched: a respond() posted from another thread just before
  // the last reference went away must run first, even when that reference dies on the strand.
  static std::shared_ptr<Exchange> handler_reference(const ExchangePtr& ex) {
    return std::shared_ptr<Exchange>(ex.get(), [ex](Exchange*) {
      net::post(ex->executor_, [ex] {
        if (ex->session_) ex->session_->handler_released(ex);
      });
    });
  }

  void handler_released(const ExchangePtr& ex) {
    if (ex != current_ || ex->closed_ || closed_ || upgrade_pending_) return;
    if (!ex->response_started_) {
      obs::report_escaped_exception(
          "request handler", std::make_exception_ptr(std::logic_error(
                                 "the handler of " + std::string(ex->path_) +
                                 " ended without a response")));
      ex->keep_alive_ = false;
      return respond(ex, Response::error(api::ApiError::internal(
                             "the request could not be completed")));
    }
    if (ex->streaming_ && !ex->response_complete_) {
      obs::report_escaped_exception(
          "request handler", std::make_exception_ptr(std::logic_error(
                                 "the stream of " + std::string(ex->path_) +
                                 " was abandoned before it finished")));
      client_gone();
    }
  }

  // With the request fully read, a pending read notices a client that hangs up mid-response
  // (so long-running handlers are cancelled), and otherwise buffers a pipelined request.
  void watch_for_disconnect() {
    if (buffer_.size() == 0) do_read();
  }

  // --- request bodies --------------------------------------------------------------------------
  void read_body_some(const ExchangePtr& ex, std::function<void(bool, std::string, bool)> done) {
    if (ex != current_ || closed_ || ex->closed_ || body_done_) {
      bool ok = ex == current_ && !ex->closed_ && ex->parser_.is_done();
      net::post(ex->executor_, [done = std::move(done), ok]() mutable { done(ok, {}, true); });
      return;
    }
    if (ex->parser_.is_done()) {
      net::post(ex->executor_, [done = std::move(done)]() mutable { done(true, {}, true); });
      return;
    }
    if (ex->expect_continue_ && !ex->continue_sent_ && !ex->response_started_) {
      ex->continue_sent_ = true;
      queue_.push_back({"HTTP/1.1 100 Continue\r\n\r\n", {}});
      do_write();
    }
    body_done_ = std::move(done);
    phase_ = Phase::kBody;
    // The body must arrive within the request timeout (kube-apiserver's 60 s), counted from the
    // request's start: a body dripped a byte at a time must not hold the connection for ever.
    set_deadline_at(ex->start_ + state_->body_timeout);
    continue_body();
  }

  void continue_body() {
    ExchangePtr ex = current_;
    if (!ex || !body_done_) return;
    if (buffer_.size() == 0) return do_read();
    std::string chunk(std::min(buffer_.size(), kBodyChunk), '\0');
    auto& body = ex->parser_.get().body();
    body.data = chunk.data();
    body.size = chunk.size();
    error_code ec;
    std::size_t used = ex->parser_.put(buffer_.data(), ec);
    buffer_.consume(used);
    chunk.resize(chunk.size() - body.size);
    body.data = nullptr;
    body.size = 0;
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec == bhttp::error::need_more) {
      ec = {};
      if (chunk.empty()) return do_read();
    }
    auto done = std::move(body_done_);
    body_done_ = nullptr;
    phase_ = Phase::kHandling;
    if (ec) {
      ex->keep_alive_ = false;
      net::post(ex->executor_, [done = std::move(done)]() mutable { done(false, {}, true); });
      return;
    }
    bool last = ex->parser_.is_done();
    if (last) {
      clear_deadline();
      watch_for_disconnect();
    }
    net::post(ex->executor_, [done = std::move(done), chunk = std::move(chunk), last]() mutable {
      done(true, std::move(chunk), last);
    });
  }

  // --- responses -------------------------------------------------------------------------------
  void respond(const ExchangePtr& ex, Response response) {
    if (ex != current_ || ex->response_started_) return;
    ex->response_started_ = true;
    if (ex->closed_ || closed_) return;
    if (ex->expect_continue_ && !ex->continue_sent_) ex->keep_alive_ = false;
    ex->status_ = response.status;
    bool body = status_has_body(response.status) && !ex->head_request_;
    const std::size_t body_size = response.body_size();
    bool keep_user_length = ex->head_request_ && body_size == 0;
    Framing framing = status_has_body(response.status) && !keep_user_length ? Framing::kLength
                                                                              : Framing::kNone;
    queue_.push_back({serialize_head(response.status, response.headers, framing, body_size,
                                     ex->keep_alive_, keep_user_length),
                      {}});
    if (body && body_size > 0) {
      ex->body_bytes_ = body_size;
      if (!response.body.empty()) queue_.push_back({std::move(response.body), {}});
      if (!response.body_parts.empty()) {
        queue_.push_back({{}, {}, 0, nullptr, std::move(response.body_parts)});
      }
    }
    ex->response_complete_ = true;
    do_write();
  }

  void begin_stream(const ExchangePtr& ex, ResponseHead head) {
    if (ex != current_ || ex->response_started_) return;
    ex->response_started_ = true;
    ex->streaming_ = true;
    if (ex->closed_ || closed_) return;
    ex->status_ = head.status;
    ex->body_allowed_ = status_has_body(head.status) && !ex->head_request_;
    bool has_length = false;
    for (const auto& h : head.headers) {
      if (iequals(h.first, "content-length")) has_length = true;
    }
    Framing framing = Framing::kNone;
    if (has_length) {
      framing = Framing::kRaw;
    } else if (ex->body_allowed_) {
      framing = Framing::kChunked;
      ex->chunked_ = true;
    } else if (status_has_body(head.status) && !ex->head_request_) {
      ex->keep_alive_ = false;
    }
    if (ex->expect_continue_ && !ex->continue_sent_) ex->keep_alive_ = false;
    queue_.push_back(
        {serialize_head(head.status, head.headers, framing, 0, ex->keep_alive_, has_length), {}});
    do_write();
  }

  // A piece of output queued for the socket.
  struct Pending {
    std::string data;
    std::function<void(bool)> done;
    std::size_t counted = 0;  // bytes subtracted from pending_bytes when written
    std::shared_ptr<const std::string> shared;  // written instead of `data` when set
    // Written instead of `data`, in order, when not empty (a response's body_parts: one entry
    // for thousands of pieces).
    std::vector<std::shared_ptr<const std::string>> parts;

    std::string_view bytes() const { return shared ? std::string_view(*shared) : data; }
  };

  void write_chunk(const ExchangePtr& ex, std::string chunk, std::function<void(bool)> done) {
    queue_chunk(ex, Pending{std::move(chunk), std::move(done), 0, nullptr});
  }

  void write_shared_chunk(const ExchangePtr& ex, std::shared_ptr<const std::string> chunk) {
    queue_chunk(ex, Pending{{}, {}, 0, std::move(chunk)});
  }

  void queue_chunk(const ExchangePtr& ex, Pending chunk) {
    const std::size_t size = chunk.bytes().size();
    if (ex != current_ || ex->closed_ || closed_ || !ex->streaming_ || ex->response_complete_) {
      ex->pending_bytes_.fetch_sub(size, std::memory_order_relaxed);
      if (chunk.done) net::post(ex->executor_, [done = std::move(chunk.done)] { done(false); });
      return;
    }
    if (!ex->body_allowed_ || size == 0) {
      ex->pending_bytes_.fetch_sub(size, std::memory_order_relaxed);
      if (chunk.done) net::post(ex->executor_, [done = std::move(chunk.done)] { done(true); });
      return;
    }
    ex->body_bytes_ += size;
    chunk.counted = size;
    if (ex->chunked_) {
      std::string prefix;
      append_hex(prefix, size);
      prefix.append("\r\n");
      if (size <= 512) {
        // Small events: one buffer, fewer iovecs.
        prefix.append(chunk.bytes());
        prefix.append("\r\n");
        queue_.push_back({std::move(prefix), std::move(chunk.done), size});
      } else {
        auto done = std::move(chunk.done);
        chunk.done = nullptr;
        queue_.push_back({std::move(prefix), {}, 0});
        queue_.push_back(std::move(chunk));
        queue_.push_back({"\r\n", std::move(done), 0});
      }
    } else {
      queue_.push_back(std::move(chunk));
    }
    do_write();
  }

  void finish_stream(const ExchangePtr& ex) {
    if (ex != current_ || !ex->streaming_ || ex->response_complete_) return;
    if (ex->closed_ || closed_) return;
    end_stream(ex);
  }

  void end_stream(const ExchangePtr& ex) {
    ex->response_complete_ = true;
    if (ex->chunked_) queue_.push_back({"0\r\n\r\n", {}, 0});
    do_write();
  }

  void upgrade(const ExchangePtr& ex, ResponseHead head,
               std::function<void(std::unique_ptr<ByteStream>)> done);

  // --- writing ---------------------------------------------------------------------------------
  void do_write() {
    if (write_in_flight_ || queue_.empty() || closed_) return;
    write_in_flight_ = true;
    writing_.swap(queue_);
    gather_.clear();
    for (const auto& p : writing_) {
      if (p.parts.empty()) {
        gather_.emplace_back(p.bytes().data(), p.bytes().size());
        continue;
      }
      for (const auto& part : p.parts) gather_.emplace_back(part->data(), part->size());
    }
    net::async_write(stream_, gather_,
                     [self = this->shared_from_this()](error_code ec, std::size_t) {
                       self->on_write(ec);
                     });
  }

  void on_write(error_code ec) {
    write_in_flight_ = false;
    ExchangePtr ex = current_;
    std::vector<Pending> written;
    written.swap(writing_);
    for (auto& p : written) {
      if (ex && p.counted) ex->pending_bytes_.fetch_sub(p.counted, std::memory_order_relaxed);
      if (p.done) p.done(!ec);
    }
    written.clear();
    if (writing_.capacity() < written.capacity()) writing_.swap(written);
    // A large list left thousands of buffers here: not kept for the connection's life.
    if (gather_.capacity() > kKeptGatherBuffers) std::vector<net::const_buffer>().swap(gather_);
    if (ec) return client_gone();
    if (close_after_write_ && queue_.empty()) return graceful_close();
    if (!queue_.empty()) return do_write();
    if (upgrade_pending_) return complete_upgrade();
    if (ex && ex->response_complete_ && !ex->finished_) finish_request(ex);
  }

  void finish_request(const ExchangePtr& ex) {
    ex->finished_ = true;
    // The response is complete: on_close can no longer fire, and the callback often holds the
    // exchange itself (a reference cycle that would keep the exchange and this session alive).
    ex->on_close_ = nullptr;
    record(ex);
    if (!ex->keep_alive_ || shutting_down_) return graceful_close();
    if (!ex->parser_.is_done()) {
      // The handler answered without reading the whole body: discard it to keep the connection.
      drained_ = 0;
      phase_ = Phase::kDrain;
      return continue_drain();
    }
    phase_ = Phase::kHeader;
    if (read_in_flight_) {
      // The disconnect watch is still pending; it now waits for the next request.
      current_.reset();
      pending_ = std::make_shared<ServerExchange<Stream>>(nullptr, state_->options.max_header_bytes);
      pending_->executor_ = stream_.get_executor();
      header_deadline_set_ = false;
      set_deadline(state_->idle_timeout);
      return;
    }
    do_read_request();
  }

  void continue_drain() {
    ExchangePtr ex = current_;
    while (ex && !ex->parser_.is_done() && buffer_.size() > 0) {
      char scratch[8192];
      auto& body = ex->parser_.get().body();
      body.data = scratch;
      body.size = sizeof scratch;
      error_code ec;
      std::size_t used = ex->parser_.put(buffer_.data(), ec);
      buffer_.consume(used);
      drained_ += sizeof scratch - body.size;
      body.data = nullptr;
      body.size = 0;
      if (ec == bhttp::error::need_buffer || ec == bhttp::error::need_more) ec = {};
      if (ec || drained_ > kMaxDrainBytes) return graceful_close();
      if (used == 0 && ex->parser_.get().body().size == 0) break;
    }
    if (!ex || ex->parser_.is_done()) {
      phase_ = Phase::kHeader;
      return do_read_request();
    }
    set_deadline(state_->idle_timeout);
    do_read();
  }

  void record(const ExchangePtr& ex) {
    auto complete = std::move(ex->on_complete_);
    ex->on_complete_.clear();
    for (auto& callback : complete) {
      obs::contain("request completion", [&] { callback(ex->status_); });
    }
    const auto& opts = state_->options;
    bool log = opts.access_log && obs::log_level() <= obs::Level::kInfo;
    if (!log && !state_->observer) return;
    auto& req = ex->parser_.get();
    auto method = req.method_string();
    RequestRecord rec;
    rec.method = std::string_view(method.data(), method.size());
    rec.path = ex->path_;
    rec.query = ex->query_;
    rec.status = ex->status_;
    rec.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - ex->start_);
    rec.bytes = ex->body_bytes_;
    rec.streamed = ex->streaming_;
    if (state_->observer) state_->observer(rec);
    if (log) {
      obs::info("request", {{"method", rec.method},
                            {"path", rec.path},
                            {"status", rec.status},
                            {"bytes", rec.bytes},
                            {"duration_us", rec.duration.count()},
                            {"remote", remote_},
                            {"request_id", ex->request_id()},
                            {"trace_id", ex->trace_.trace_id()}});
    }
  }

  // --- closing ---------------------------------------------------------------------------------
  // The client went away (or a write failed, or the grace period ended): close at once.
  void client_gone() {
    fail_pending_body();
    do_close();  // fires on_close of an unfinished exchange, and records it
  }

  void fail_pending_body() {
    if (body_done_ && current_) {
      auto done = std::move(body_done_);
      body_done_ = nullptr;
      net::post(current_->executor_, [done = std::move(done)]() mutable { done(false, {}, true); });
    }
  }

  // Half-close and read until the peer closes (bounded), so a response sent while the client is
  // still sending (413, 431) is not destroyed by a TCP reset.
  void graceful_close() {
    if (closed_ || lingering_) return;
    lingering_ = true;
    error_code ec;
    if constexpr (!kTls) lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    set_deadline(kLingerTimeout);
    if (ec) return finish_close();
    buffer_.consume(buffer_.size());
    if (!read_in_flight_) do_read();
  }

  void finish_close() {
    do_close();
    if (current_) current_->mark_closed();
  }

  void do_close() {
    if (closed_) return;
    closed_ = true;
    error_code ec;
    timer_.cancel();
    timer_armed_ = false;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
    clear_deadline();
    // Pending callbacks are told, the exchange is released so the session can be freed.
    ExchangePtr ex = std::move(current_);
    current_.reset();
    pending_.reset();
    if (ex) {
      ex->mark_closed();
      if (body_done_) {
        auto done = std::move(body_done_);
        body_done_ = nullptr;
        net::post(ex->executor_, [done = std::move(done)]() mutable { done(false, {}, true); });
      }
      // However the connection ended (client gone, a deadline, shutdown), an unfinished
      // exchange is over now: logged, observed, its completion callbacks run.
      if (!ex->finished_) {
        ex->finished_ = true;
        record(ex);
      }
    }
    for (auto& p : queue_) {
      if (p.done) net::post(stream_.get_executor(), [done = std::move(p.done)] { done(false); });
    }
    queue_.clear();
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  // --- deadlines -------------------------------------------------------------------------------
  // One lazily re-armed timer: moving a deadline later only updates deadline_, so a busy
  // keep-alive connection does not cancel and re-arm a timer per request. On expiry the socket is
  // closed, which also aborts a pending read (header, idle and linger timeouts).
  template <class Duration>
  void set_deadline(Duration after) {
    set_deadline_at(std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(after));
  }
  void set_deadline_at(std::chrono::steady_clock::time_point at) {
    deadline_ = at;
    if (!timer_armed_ || deadline_ < armed_at_) arm_timer();
  }
  void clear_deadline() { deadline_ = std::chrono::steady_clock::time_point::max(); }

  void arm_timer() {
    timer_armed_ = true;
    armed_at_ = deadline_;
    timer_.expires_at(deadline_);
    timer_.async_wait([self = this->shared_from_this(), at = armed_at_](error_code ec) {
      if (ec || at != self->armed_at_) return;  // re-armed or cancelled
      self->on_timer();
    });
  }

  void on_timer() {
    timer_armed_ = false;
    if (closed_ || deadline_ == std::chrono::steady_clock::time_point::max()) return;
    if (std::chrono::steady_clock::now() < deadline_) return arm_timer();
    if (lingering_) return finish_close();
    do_close();
  }

  // --- upgraded connections (used by the ByteStream below) -------------------------------------
  void complete_upgrade();

  enum class Phase { kHeader, kBody, kHandling, kDrain };

  std::shared_ptr<ServerState> state_;
  std::shared_ptr<void> dependency_;  // declared before stream_: destroyed after it
  Stream stream_;
  bool counted_;
  ServerState::Registry::iterator registration_;
  bool registered_ = false;
  std::string remote_;
  std::optional<PeerCertificates> peer_;
  beast::flat_buffer buffer_;
  ExchangePtr current_;  // the request being handled
  ExchangePtr pending_;  // the request whose header is being read
  Phase phase_ = Phase::kHeader;
  std::function<void(bool, std::string, bool)> body_done_;
  std::size_t drained_ = 0;
  bool served_ = false;
  bool header_deadline_set_ = false;
  bool read_in_flight_ = false;
  bool write_in_flight_ = false;
  bool close_after_write_ = false;
  bool closed_ = false;
  bool lingering_ = false;
  bool shutting_down_ = false;
  bool upgraded_ = false;
  bool upgrade_pending_ = false;
  net::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point armed_at_;
  bool timer_armed_ = false;
  std::function<void(std::unique_ptr<ByteStream>)> upgrade_done_;
  std::vector<Pending> queue_, writing_;
  std::vector<net::const_buffer> gather_;
  static constexpr std::size_t kKeptGatherBuffers = 1024;

 public:
  // Raw access for the upgraded byte stream.
  Stream& stream() { return stream_; }
  beast::flat_buffer& buffer() { return buffer_; }
  bool& closed_flag() { return closed_; }
  void close_now() { do_close(); }
};

// The raw connection after a 101: leftover buffered bytes first, then the socket.
template <class Stream>
class UpgradedByteStream final : public ByteStream {
 public:
  explicit UpgradedByteStream(std::shared_ptr<Session<Stream>> session)
      : session_(std::move(session)) {}
  ~UpgradedByteStream() override { close(); }

  void read_some(std::function<void(bool, std::string)> done) override {
    auto session = session_;
    net::dispatch(session->stream().get_executor(), [session, done = std::move(done)]() mutable {
      auto& buffer = session->buffer();
      if (buffer.size() > 0) {
        std::string bytes(static_cast<const char*>(buffer.data().data()), buffer.size());
        buffer.consume(buffer.size());
        net::post(session->stream().get_executor(),
                  [done = std::move(done), bytes = std::move(bytes)]() mutable {
                    done(true, std::move(bytes));
                  });
        return;
      }
      if (session->closed_flag()) {
        net::post(session->stream().get_executor(), [done = std::move(done)] { done(false, {}); });
        return;
      }
      auto bytes = std::make_shared<std::string>(kReadSize, '\0');
      session->stream().async_read_some(
          net::buffer(bytes->data(), bytes->size()),
          [session, bytes, done = std::move(done)](error_code ec, std::size_t n) mutable {
            if (ec) return done(false, {});
            bytes->resize(n);
            done(true, std::move(*bytes));
          });
    });
  }

  void write(std::string bytes, std::function<void(bool)> done) override {
    auto session = session_;
    net::dispatch(session->stream().get_executor(),
                  [session, bytes = std::make_shared<std::string>(std::move(bytes)),
                   done = std::move(done)]() mutable {
                    if (session->closed_flag()) {
                      if (done) done(false);
                      return;
                    }
                    net::async_write(session->stream(), net::buffer(*bytes),
                                     [session, bytes, done = std::move(done)](error_code ec,
                                                                              std::size_t) {
                                       if (done) done(!ec);
                                     });
                  });
  }

  void close() override {
    if (!session_) return;
    auto session = std::move(session_);
    session_.reset();
    net::dispatch(session->stream().get_executor(), [session] { session->close_now(); });
  }

  net::any_io_executor executor() override { return session_->stream().get_executor(); }

 private:
  std::shared_ptr<Session<Stream>> session_;
};

template <class Stream>
void Session<Stream>::upgrade(const ExchangePtr& ex, ResponseHead head,
                              std::function<void(std::unique_ptr<ByteStream>)> done) {
  if (ex != current_ || ex->response_started_ || ex->closed_ || closed_) {
    net::post(ex->executor_, [done = std::move(done)] { done(nullptr); });
    return;
  }
  ex->response_started_ = true;
  ex->status_ = head.status;
  std::string out;
  append_status_line(out, head.status);
  for (const auto& [name, value] : head.headers) append_header(out, name, value);
  out.append("\r\n");
  queue_.push_back({std::move(out), {}, 0});
  upgrade_pending_ = true;
  upgrade_done_ = std::move(done);
  do_write();
}

template <class Stream>
void Session<Stream>::complete_upgrade() {
  upgrade_pending_ = false;
  upgraded_ = true;
  ExchangePtr ex = std::move(current_);
  current_.reset();
  if (ex) {
    ex->finished_ = true;
    record(ex);
  }
  phase_ = Phase::kHandling;
  auto done = std::move(upgrade_done_);
  upgrade_done_ = nullptr;
  done(std::make_unique<UpgradedByteStream<Stream>>(this->shared_from_this()));
}

}  // namespace

// --- ServerState ---------------------------------------------------------------------------------

ServerState::ServerState(net::io_context& io_context, ServerOptions opts, Handler h)
    : io(io_context), options(std::move(opts)), handler(std::move(h)) {
  header_timeout = options.header_timeout_ms.count() > 0
                       ? options.header_timeout_ms
                       : std::chrono::duration_cast<std::chrono::milliseconds>(options.header_timeout);
  idle_timeout = options.idle_timeout_ms.count() > 0
                     ? options.idle_timeout_ms
                     : std::chrono::duration_cast<std::chrono::milliseconds>(options.idle_timeout);
  body_timeout = options.body_timeout_ms.count() > 0
                     ? options.body_timeout_ms
                     : std::chrono::duration_cast<std::chrono::milliseconds>(options.body_timeout);
}

net::io_context& ServerState::context_for_next_session() {
  if (session_contexts.empty()) return io;
  return *session_contexts[next_context.fetch_add(1, std::memory_order_relaxed) %
                           session_contexts.size()];
}

ServerState::Registry::iterator ServerState::add_session(std::weak_ptr<SessionControl> session) {
  std::lock_guard<std::mutex> lock(mu);
  sessions.push_front(std::move(session));
  return sessions.begin();
}

void ServerState::remove_session(Registry::iterator it, bool counted) {
  bool drained = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(it);
  }
  if (counted) {
    drained = connections.fetch_sub(1) == 1 && shutting_down.load();
  }
  if (drained) complete_shutdown();
}

void ServerState::complete_shutdown() {
  std::function<void()> done;
  {
    std::lock_guard<std::mutex> lock(mu);
    done = std::move(shutdown_done);
    shutdown_done = nullptr;
  }
  if (!done) return;
  if (grace_timer) {
    // The posted cancel owns the timer: the server (and this state) may be gone when it runs.
    net::post(io, [timer = grace_timer] { timer->cancel(); });
  }
  net::post(io, std::move(done));
}

void start_plain_session(std::shared_ptr<ServerState> state, tcp::socket socket, bool counted) {
  auto session = std::make_shared<Session<beast::tcp_stream>>(std::move(state), counted,
                                                              std::move(socket));
  session->run();
}

void start_tls_session(std::shared_ptr<ServerState> state, tcp::socket socket, bool counted) {
  std::shared_ptr<net::ssl::context> ctx;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    ctx = state->tls;
  }
  auto session = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
      std::move(state), counted, std::move(socket), *ctx);
  session->keep_alive(std::move(ctx));
  session->run();
}

}  // namespace dpa::http
