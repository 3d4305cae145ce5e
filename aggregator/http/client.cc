// The call chain reads top to bottom:
//   start -> (pooled connection | resolve -> connect -> handshake) -> send_request -> on_sent
//   do_read -> on_read -> parse_head -> deliver head -> read_body_some ... -> release to pool
// Sockets are created on the caller's io_context and pooled per context; every operation is bound
// to the caller's executor, so a pooled connection can serve calls from any strand of that
// context, one at a time.
#include "aggregator/http/client.h"

#include "aggregator/http/tls.h"
#include "aggregator/http/wire.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <atomic>
#include <limits>
#include <mutex>
#include <unordered_map>

namespace dpa::http {
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr std::size_t kReadSize = 16 * 1024;
constexpr std::size_t kBodyChunk = 64 * 1024;
// An upstream response head larger than this is refused with 502, as nginx refuses one that
// overflows its proxy buffer ("upstream sent too big header"); the same bound as our own
// request heads (ServerOptions::max_header_bytes).
constexpr std::uint32_t kMaxResponseHeader = 64 * 1024;
// Interim (1xx) responses accepted before the final one; more is a misbehaving upstream.
constexpr int kMaxInterimResponses = 16;

// One upstream connection; owned by a call while in use, by the pool while idle.
struct Connection {
  std::unique_ptr<tcp::socket> plain;
  std::shared_ptr<ssl::context> tls_context;  // what `tls` was made with; outlives it
  std::unique_ptr<ssl::stream<tcp::socket>> tls;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idle_since;

  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }

  template <class Buffers, class Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    if (tls) {
      tls->async_read_some(buffers, std::forward<Handler>(handler));
    } else {
      plain->async_read_some(buffers, std::forward<Handler>(handler));
    }
  }
  template <class Buffers, class Handler>
  void async_write(const Buffers& buffers, Handler&& handler) {
    if (tls) {
      net::async_write(*tls, buffers, std::forward<Handler>(handler));
    } else {
      net::async_write(*plain, buffers, std::forward<Handler>(handler));
    }
  }
  void close() {
    error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }
  // A pooled connection is reused only when it is silent: the server closed it (EOF), or sent
  // bytes nobody asked for, which would be taken for the next request's response (Go's
  // transport closes such a connection the same way). Over TLS the record layer may hold
  // decrypted bytes already (SSL_pending); a TLS server's session tickets arrive right after the
  // handshake and are consumed with the first response, so later bytes are unsolicited there too.
  bool looks_alive() {
    if (tls && SSL_pending(tls->native_handle()) > 0) return false;
    char byte;
    ssize_t n = ::recv(socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
};

}  // namespace

// --- Endpoint ------------------------------------------------------------------------------------

std::string Endpoint::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  bool default_port = (tls() && port == 443) || (!tls() && port == 80);
  if (!default_port) h += ":" + std::to_string(port);
  return h;
}

std::string Endpoint::key() const { return scheme + "://" + host_header(); }

api::Expected<Endpoint> Endpoint::parse(std::string_view url) {
  Endpoint e;
  auto bad = [&](const char* why) {
    return api::ApiError::bad_request("invalid URL \"" + std::string(url) + "\": " + why);
  };
  std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return bad("missing scheme");
  e.scheme = std::string(url.substr(0, scheme_end));
  for (auto& c : e.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (e.scheme != "http" && e.scheme != "https") return bad("scheme must be http or https");
  std::string_view rest = url.substr(scheme_end + 3);
  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 literal");
    e.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("garbage after IPv6 literal");
      port_text = after.substr(1);
    }
  } else {
    std::size_t colon = authority.rfind(':');
    e.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (e.host.empty()) return bad("missing host");
  e.port = e.tls() ? 443 : 80;
  if (!port_text.empty()) {
    unsigned long p = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9') return bad("invalid port");
      p = p * 10 + static_cast<unsigned long>(c - '0');
      if (p > 65535) return bad("invalid port");
    }
    e.port = static_cast<std::uint16_t>(p);
  }
  if (auto q = path.find_first_of("?#"); q != std::string_view::npos) path = path.substr(0, q);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  e.base_path = std::string(path);
  return e;
}

// --- pool and shared client state ----------------------------------------------------------------

struct HttpClient::Impl {
  explicit Impl(ClientOptions opts) : options(std::move(opts)) {}

  // Loading a CA store takes a while (the system bundle: ~100 ms), so plain-HTTP-only clients
  // never do it and TLS clients do it once, on first use.
  std::shared_ptr<ssl::context> tls_context() {
    std::call_once(tls_once, [this] {
      auto ctx = make_client_tls_context(options.ca_file, options.client_cert_file,
                                         options.client_key_file);
      if (ctx) {
        tls.store(std::move(ctx.value()));
      } else {
        tls_status = std::move(ctx).error();
      }
    });
    return tls.load();
  }

  api::Outcome reload_tls() {
    if (!tls_context()) return tls_status;
    auto ctx = make_client_tls_context(options.ca_file, options.client_cert_file,
                                       options.client_key_file);
    if (!ctx) return ctx.error();
    tls.store(std::move(ctx.value()));
    return api::Ok{};
  }

  std::unique_ptr<Connection> acquire(const std::string& key) {
    auto now = std::chrono::steady_clock::now();
    while (true) {
      std::unique_ptr<Connection> conn;
      {
        std::lock_guard<std::mutex> lock(mu);
        auto it = idle.find(key);
        if (it == idle.end() || it->second.empty()) return nullptr;
        conn = std::move(it->second.back());
        it->second.pop_back();
        --idle_count;
      }
      // Checked on every reuse (one non-blocking peek): a connection that received an
      // unsolicited response while idle must never carry another request.
      if (now - conn->idle_since < options.idle_timeout && conn->looks_alive()) return conn;
      conn->close();
    }
  }

  void release(const std::string& key, std::unique_ptr<Connection> conn) {
    conn->idle_since = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(mu);
    auto& list = idle[key];
    if (owner_gone || list.size() >= options.max_idle_per_endpoint) {
      conn->close();
      return;
    }
    list.push_back(std::move(conn));
    ++idle_count;
  }

  // The HttpClient is being destroyed. Calls still in flight keep this state alive, possibly
  // until some io_context is destroyed, so idle connections are closed now, while every context
  // they belong to is alive, and connections handed back later are closed by the call's own thread
  // instead of pooled (a socket must not outlive its io_context).
  void owner_destroyed() {
    std::unordered_map<std::string, std::vector<std::unique_ptr<Connection>>> drop;
    {
      std::lock_guard<std::mutex> lock(mu);
      owner_gone = true;
      drop.swap(idle);
      idle_count = 0;
    }
  }

  ClientOptions options;
  std::once_flag tls_once;
  std::atomic<std::shared_ptr<ssl::context>> tls;  // replaced whole by reload_tls()
  api::Outcome tls_status = api::Ok{};
  mutable std::mutex mu;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Connection>>> idle;
  std::size_t idle_count = 0;
  bool owner_gone = false;
};

namespace {

// The raw connection after a 101 Switching Protocols.
class ClientByteStream final : public ByteStream {
 public:
  ClientByteStream(std::unique_ptr<Connection> conn, net::any_io_executor executor)
      : state_(std::make_shared<State>()) {
    state_->conn = std::move(conn);
    state_->executor = std::move(executor);
  }
  ~ClientByteStream() override { close(); }

  void read_some(std::function<void(bool, std::string)> done) override {
    auto state = state_;
    auto& buffer = state->conn->buffer;
    if (buffer.size() > 0) {
      std::string bytes(static_cast<const char*>(buffer.data().data()), buffer.size());
      buffer.consume(buffer.size());
      net::post(state->executor, [done = std::move(done), bytes = std::move(bytes)]() mutable {
        done(true, std::move(bytes));
      });
      return;
    }
    if (state->closed) {
      net::post(state->executor, [done = std::move(done)] { done(false, {}); });
      return;
    }
    auto bytes = std::make_shared<std::string>(kReadSize, '\0');
    state->conn->async_read_some(
        net::buffer(bytes->data(), bytes->size()),
        net::bind_executor(state->executor, [state, bytes, done = std::move(done)](
                                                error_code ec, std::size_t n) mutable {
          if (ec) return done(false, {});
          bytes->resize(n);
          done(true, std::move(*bytes));
        }));
  }

  void write(std::string bytes, std::function<void(bool)> done) override {
    auto state = state_;
    if (state->closed) {
      net::post(state->executor, [done = std::move(done)] {
        if (done) done(false);
      });
      return;
    }
    auto data = std::make_shared<std::string>(std::move(bytes));
    state->conn->async_write(net::buffer(*data),
                             net::bind_executor(state->executor, [state, data, done = std::move(done)](
                                                                     error_code ec, std::size_t) {
                               if (done) done(!ec);
                             }));
  }

  void close() override {
    if (!state_ || state_->closed) return;
    state_->closed = true;
    auto state = state_;
    net::dispatch(state->executor, [state] { state->conn->close(); });
  }

  net::any_io_executor executor() override { return state_->executor; }

 private:
  struct State {
    std::unique_ptr<Connection> conn;
    net::any_io_executor executor;
    bool closed = false;
  };
  std::shared_ptr<State> state_;
};

class Call final : public ClientCall, public std::enable_shared_from_this<Call> {
 public:
  Call(std::shared_ptr<HttpClient::Impl> client, Endpoint endpoint, ClientRequest request,
       net::any_io_executor executor)
      : client_(std::move(client)),
        endpoint_(std::move(endpoint)),
        request_(std::move(request)),
        executor_(std::move(executor)),
        timer_(executor_) {
    // Connections live on the caller's io_context and are pooled per context: with one context
    // per I/O thread, a proxied request and its upstream connection then share one thread.
    auto& context = net::query(executor_, net::execution::context);
    key_ = endpoint_.key() + "@" + std::to_string(reinterpret_cast<std::uintptr_t>(&context));
  }

  void start() {
    if (endpoint_.tls() && !client_->tls_context()) {
      return fail(client_->tls_status.error());
    }
    if (request_.timeout.count() > 0) arm_timer(request_.timeout, false);
    conn_ = client_->acquire(key_);
    if (conn_) {
      reused_ = true;
      return send_request();
    }
    connect();
  }

  // --- connecting ------------------------------------------------------------------------------
  void connect() {
    reused_ = false;
    conn_ = std::make_unique<Connection>();
    if (endpoint_.tls()) {
      conn_->tls_context = client_->tls.load();
      conn_->tls = std::make_unique<ssl::stream<tcp::socket>>(executor_, *conn_->tls_context);
    } else {
      conn_->plain = std::make_unique<tcp::socket>(executor_);
    }
    connect_deadline_ = true;
    arm_timer(client_->options.connect_timeout, true);
    error_code ec;
    auto address = net::ip::make_address(endpoint_.host, ec);
    auto self = shared_from_this();
    if (!ec) {
      endpoints_ = {tcp::endpoint(address, endpoint_.port)};
      return do_connect();
    }
    resolver_.emplace(executor_);
    resolver_->async_resolve(
        endpoint_.host, std::to_string(endpoint_.port),
        [self](error_code ec, tcp::resolver::results_type results) {
          if (ec) return self->connect_failed("resolving " + self->endpoint_.host + ": " + ec.message());
          self->endpoints_.assign(results.begin(), results.end());
          self->do_connect();
        });
  }

  void do_connect() {
    auto self = shared_from_this();
    net::async_connect(conn_->socket(), endpoints_,
                       net::bind_executor(executor_, [self](error_code ec, const tcp::endpoint&) {
                         self->on_connect(ec);
                       }));
  }

  void on_connect(error_code ec) {
    if (ec) {
      return connect_failed("dial tcp " + endpoint_.host_header() + ": " + ec.message());
    }
    conn_->socket().set_option(tcp::no_delay(true), ec);
    if (!conn_->tls) return connected();
    const std::string& name =
        client_->options.server_name.empty() ? endpoint_.host : client_->options.server_name;
    SSL* ssl = conn_->tls->native_handle();
    error_code ip_ec;
    net::ip::make_address(name, ip_ec);
    if (ip_ec) SSL_set_tlsext_host_name(ssl, name.c_str());
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (!ip_ec) {
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    }
    auto self = shared_from_this();
    conn_->tls->async_handshake(ssl::stream_base::client,
                                net::bind_executor(executor_, [self](error_code ec) {
                                  if (ec) {
                                    return self->connect_failed("TLS handshake with " +
                                                                self->endpoint_.host_header() +
                                                                ": " + describe_tls(ec));
                                  }
                                  self->connected();
                                }));
  }

  static std::string describe_tls(const error_code& ec) {
    std::string what = ec.message();
    if (ec.category() == net::error::get_ssl_category()) {
      char buf[256];
      ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
      what = buf;
    }
    return what;
  }

  void connected() {
    connect_deadline_ = false;
    if (request_.timeout.count() > 0) {
      arm_timer(request_.timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - started_),
                false);
    } else {
      timer_.cancel();
    }
    send_request();
  }

  void connect_failed(std::string why) {
    if (cancelled_) return fail(api::ApiError::unavailable("request cancelled"));
    if (timed_out_) {
      return fail(api::ApiError::unavailable("dial tcp " + endpoint_.host_header() +
                                             ": connect timeout"));
    }
    fail(api::ApiError::unavailable(std::move(why)));
  }

  // --- sending ---------------------------------------------------------------------------------
  void send_request() {
    std::string head;
    if (!request_.prebuilt_head.empty()) {
      // A reused connection may need a retry on a fresh one: keep the head until then.
      head = reused_ ? request_.prebuilt_head : std::move(request_.prebuilt_head);
    } else {
      head = build_head();
    }
    head_request_ = iequals(request_.method, "HEAD");
    new_parser();
    queue_.push_back({std::move(head), {}});
    if (!request_.body_streamed && !request_.body.empty()) {
      queue_.push_back({request_.body, {}});
    }
    if (request_.body_streamed) {
      for (auto& p : body_backlog_) queue_.push_back(std::move(p));
      body_backlog_.clear();
    } else {
      request_body_done_ = true;
    }
    sending_ = true;
    do_write();
    do_read();
  }

  std::string build_head() {
    std::string out;
    out.reserve(256);
    out.append(request_.method);
    out.push_back(' ');
    out.append(endpoint_.base_path);
    out.append(request_.target.empty() ? "/" : request_.target);
    out.append(" HTTP/1.1\r\n");
    bool has_host = false, has_length = false;
    for (const auto& [name, value] : request_.headers) {
      if (iequals(name, "host")) has_host = true;
      if (iequals(name, "content-length")) has_length = true;
      append_header(out, name, value);
    }
    if (!has_host) append_header(out, "Host", endpoint_.host_header());
    if (request_.body_streamed) {
      if (request_.body_chunked) append_header(out, "Transfer-Encoding", "chunked");
    } else if (!has_length && (!request_.body.empty() || method_allows_body())) {
      append_header(out, "Content-Length", std::to_string(request_.body.size()));
    }
    out.append("\r\n");
    return out;
  }

  bool idempotent() const {
    for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
      if (request_.method == m) return true;
    }
    return false;
  }

  bool method_allows_body() const {
    return iequals(request_.method, "POST") || iequals(request_.method, "PUT") ||
           iequals(request_.method, "PATCH");
  }

  struct Pending {
    std::string data;
    std::function<void(bool)> done;
  };

  void write_body(std::string chunk, bool last, std::function<void(bool)> done) override {
    if (failed_ || cancelled_ || request_body_done_) {
      if (done) net::post(executor_, [done = std::move(done)] { done(false); });
      return;
    }
    std::vector<Pending>& target = sending_ ? queue_ : body_backlog_;
    if (request_.body_chunked) {
      if (!chunk.empty()) {
        std::string prefix;
        append_hex(prefix, chunk.size());
        prefix.append("\r\n");
        target.push_back({std::move(prefix), {}});
        target.push_back({std::move(chunk), {}});
        target.push_back({"\r\n", last ? std::function<void(bool)>() : std::move(done)});
      }
      if (last) target.push_back({"0\r\n\r\n", std::move(done)});
    } else {
      target.push_back({std::move(chunk), std::move(done)});
    }
    if (last) request_body_done_ = true;
    if (sending_) do_write();
  }

  void do_write() {
    if (write_in_flight_ || queue_.empty() || !conn_) return;
    write_in_flight_ = true;
    writing_.swap(queue_);
    gather_.clear();
    for (auto& p : writing_) gather_.emplace_back(p.data.data(), p.data.size());
    auto self = shared_from_this();
    conn_->async_write(gather_, net::bind_executor(executor_, [self](error_code ec, std::size_t) {
                         self->on_write(ec);
                       }));
  }

  void on_write(error_code ec) {
    write_in_flight_ = false;
    std::vector<Pending> written;
    written.swap(writing_);
    for (auto& p : written) {
      if (p.done) p.done(!ec && !failed_);
    }
    if (ec) return on_io_error(ec, /*writing=*/true);
    if (!queue_.empty()) do_write();
    maybe_release();
  }

  // --- reading the response --------------------------------------------------------------------
  // Reads more bytes from the upstream; what is already buffered has been parsed.
  void do_read() {
    if (read_in_flight_ || !conn_) return;
    read_in_flight_ = true;
    auto self = shared_from_this();
    conn_->async_read_some(conn_->buffer.prepare(kReadSize),
                           net::bind_executor(executor_, [self](error_code ec, std::size_t n) {
                             self->on_read(ec, n);
                           }));
  }

  void on_read(error_code ec, std::size_t n) {
    read_in_flight_ = false;
    if (ec) return on_io_error(ec, /*writing=*/false);
    conn_->buffer.commit(n);
    got_bytes_ = true;
    if (!parser_->is_header_done()) return parse_head();
    continue_body();
  }

  // Parses what is buffered; a loop, not a recursion, over interim responses, and a partial
  // head waits for the next read (the parser keeps unconsumed bytes in the buffer).
  void parse_head() {
    for (;;) {
      error_code ec;
      std::size_t used = parser_->put(conn_->buffer.data(), ec);
      conn_->buffer.consume(used);
      if (ec == bhttp::error::need_more) {
        if (conn_->buffer.size() >= kMaxResponseHeader) return fail(too_big_header());
        return do_read();
      }
      if (ec == bhttp::error::header_limit) return fail(too_big_header());
      if (ec) return fail(invalid_response(ec.message()));
      if (!parser_->is_header_done()) return do_read();
      int status = static_cast<int>(parser_->get().result_int());
      if (status < 100 || status > 599) {
        return fail(invalid_response("status code " + std::to_string(status)));
      }
      if (status >= 200 || status == 101) break;
      // Interim responses (100 Continue, 103 Early Hints) are not the answer.
      if (++interim_responses_ > kMaxInterimResponses) {
        return fail(invalid_response("more than " + std::to_string(kMaxInterimResponses) +
                                     " interim responses"));
      }
      new_parser();
    }
    parser_->eager(true);
    head_done_ = true;
    if (!request_.timeout_includes_body) {
      timer_.cancel();
    }
    if (parser_->get().result_int() == 101) upgraded_ = true;
    deliver_head(api::Ok{});
  }

  void new_parser() {
    parser_.emplace();
    parser_->header_limit(kMaxResponseHeader);
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_->eager(false);
    if (head_request_) parser_->skip(true);
  }

  api::ApiError too_big_header() const {
    return api::ApiError::bad_gateway(endpoint_.host_header() + " sent too big a response header (over " +
                                      std::to_string(kMaxResponseHeader) + " bytes)");
  }
  api::ApiError invalid_response(const std::string& why) const {
    return api::ApiError::bad_gateway("invalid response from " + endpoint_.host_header() + ": " + why);
  }

  void deliver_head(api::Outcome result) {
    if (head_delivered_) return;
    if (!head_cb_) {
      head_result_ = std::move(result);
      return;
    }
    head_delivered_ = true;
    auto cb = std::move(head_cb_);
    head_cb_ = nullptr;
    cb(std::move(result));
  }

  void read_head(std::function<void(api::Outcome)> done) override {
    if (head_result_) {
      head_delivered_ = true;
      auto result = std::move(*head_result_);
      head_result_.reset();
      net::post(executor_, [done = std::move(done), result = std::move(result)]() mutable {
        done(std::move(result));
      });
      return;
    }
    head_cb_ = std::move(done);
  }

  const bhttp::response_header<bhttp::fields>& head() const override { return parser_->get(); }

  ResponseHead copy_head() const override {
    ResponseHead h;
    h.status = static_cast<int>(parser_->get().result_int());
    for (const auto& f : parser_->get()) {
      h.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    return h;
  }

  std::optional<std::string> take_buffered_body() override {
    if (!head_done_ || upgraded_ || body_cb_) return std::nullopt;
    if (parser_->is_done()) {
      maybe_release();
      return std::string();
    }
    if (parser_->chunked()) return std::nullopt;
    auto length = parser_->content_length_remaining();
    if (!length || *length > conn_->buffer.size() || *length > kBodyChunk) return std::nullopt;
    std::string body(static_cast<std::size_t>(*length), '\0');
    auto& b = parser_->get().body();
    b.data = body.data();
    b.size = body.size();
    error_code ec;
    std::size_t used = parser_->put(conn_->buffer.data(), ec);
    conn_->buffer.consume(used);
    b.data = nullptr;
    b.size = 0;
    if ((ec && ec != bhttp::error::need_buffer) || !parser_->is_done()) {
      failed_ = true;
      return std::nullopt;
    }
    maybe_release();
    return body;
  }

  void read_body_some(std::function<void(bool, std::string, bool)> done) override {
    if (failed_ || cancelled_ || !head_done_ || upgraded_) {
      net::post(executor_, [done = std::move(done)] { done(false, {}, true); });
      return;
    }
    if (parser_->is_done()) {
      maybe_release();
      net::post(executor_, [done = std::move(done)] { done(true, {}, true); });
      return;
    }
    body_cb_ = std::move(done);
    continue_body();
  }

  void continue_body() {
    if (!body_cb_) return;
    if (conn_->buffer.size() == 0) return do_read();
    std::string chunk(std::min(conn_->buffer.size(), kBodyChunk), '\0');
    auto& b = parser_->get().body();
    b.data = chunk.data();
    b.size = chunk.size();
    error_code ec;
    std::size_t used = parser_->put(conn_->buffer.data(), ec);
    conn_->buffer.consume(used);
    chunk.resize(chunk.size() - b.size);
    b.data = nullptr;
    b.size = 0;
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec == bhttp::error::need_more) {
      ec = {};
      if (chunk.empty()) return do_read();
    }
    auto cb = std::move(body_cb_);
    body_cb_ = nullptr;
    if (ec) {
      failed_ = true;
      close_connection();
      return cb(false, {}, true);
    }
    bool last = parser_->is_done();
    if (last) maybe_release();
    cb(true, std::move(chunk), last);
  }

  // --- ends --------------------------------------------------------------------------------------
  void on_io_error(error_code ec, bool writing) {
    if (failed_) return;
    if (cancelled_) return fail(api::ApiError::unavailable("request cancelled"));
    if (timed_out_) {
      return fail(api::ApiError::timeout("Timeout: no response from " + endpoint_.host_header() +
                                         " within " + std::to_string(request_.timeout.count()) +
                                         "ms"));
    }
    // A pooled connection the server closed while idle: retry once on a fresh one when nothing
    // of the response was seen and the request can be sent again. The request may have reached
    // the server before it closed, so only idempotent methods are re-sent (RFC 9110 §9.2.2); a
    // POST or PATCH fails instead of risking a second side effect.
    if (reused_ && !got_bytes_ && !request_.body_streamed && !head_done_ && idempotent()) {
      reused_ = false;
      conn_->close();
      conn_.reset();
      write_in_flight_ = read_in_flight_ = false;
      queue_.clear();
      writing_.clear();
      sending_ = false;
      return connect();
    }
    // The server may legitimately close after a complete close-delimited body.
    if (!writing && head_done_ && ec == net::error::eof && body_cb_ && !parser_->chunked() &&
        !parser_->content_length()) {
      parser_->put_eof(ec);
      auto cb = std::move(body_cb_);
      body_cb_ = nullptr;
      close_connection();
      return cb(!ec, {}, true);
    }
    std::string what = writing ? "writing request to " : "reading response from ";
    fail(api::ApiError::bad_gateway(what + endpoint_.host_header() + ": " + ec.message()));
  }

  void fail(api::ApiError error) {
    if (failed_) return;
    failed_ = true;
    timer_.cancel();
    close_connection();
    if (!head_done_) deliver_head(std::move(error));
    if (body_cb_) {
      auto cb = std::move(body_cb_);
      body_cb_ = nullptr;
      cb(false, {}, true);
    }
    for (auto* list : {&queue_, &body_backlog_}) {
      for (auto& p : *list) {
        if (p.done) net::post(executor_, [done = std::move(p.done)] { done(false); });
      }
      list->clear();
    }
  }

  void close_connection() {
    if (conn_ && !write_in_flight_ && !read_in_flight_) {
      conn_->close();
      conn_.reset();
    } else if (conn_) {
      conn_->close();  // pending operations complete with errors; conn_ freed with the call
    }
  }

  // Back to the pool once both directions are complete and the connection is reusable.
  void maybe_release() {
    if (released_ || failed_ || cancelled_ || !conn_ || !head_done_ || upgraded_) return;
    if (!parser_->is_done() || !request_body_done_ || write_in_flight_ || !queue_.empty()) return;
    released_ = true;
    timer_.cancel();
    if (read_in_flight_ || !parser_->keep_alive() || conn_->buffer.size() > 0) {
      conn_->close();
      return;
    }
    client_->release(key_, std::move(conn_));
  }

  std::unique_ptr<ByteStream> take_upgraded() override {
    if (!upgraded_ || !conn_ || failed_ || read_in_flight_) return nullptr;
    timer_.cancel();
    released_ = true;
    return std::make_unique<ClientByteStream>(std::move(conn_), executor_);
  }

  void cancel() override {
    if (cancelled_ || released_) return;
    cancelled_ = true;
    timer_.cancel();
    if (resolver_) resolver_->cancel();
    fail(api::ApiError::unavailable("request cancelled"));
  }

  void arm_timer(std::chrono::milliseconds after, bool connect_phase) {
    timer_.expires_after(after);
    auto self = shared_from_this();
    timer_.async_wait([self, connect_phase](error_code ec) {
      if (ec || self->failed_ || self->released_) return;
      if (connect_phase && !self->connect_deadline_) return;
      self->timed_out_ = true;
      if (self->resolver_) self->resolver_->cancel();
      if (self->conn_) self->conn_->close();
      if (!connect_phase && !self->conn_) {
        self->fail(api::ApiError::timeout("Timeout: no response from " +
                                          self->endpoint_.host_header()));
      }
    });
  }

  std::shared_ptr<HttpClient::Impl> client_;
  Endpoint endpoint_;
  ClientRequest request_;
  net::any_io_executor executor_;
  net::steady_timer timer_;
  std::optional<tcp::resolver> resolver_;  // only for host names, not IP literals
  std::string key_;
  std::vector<tcp::endpoint> endpoints_;
  std::unique_ptr<Connection> conn_;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
  std::vector<Pending> queue_, writing_, body_backlog_;
  std::vector<net::const_buffer> gather_;
  std::function<void(api::Outcome)> head_cb_;
  std::optional<api::Outcome> head_result_;
  std::function<void(bool, std::string, bool)> body_cb_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  int interim_responses_ = 0;
  bool reused_ = false;
  bool sending_ = false;
  bool head_request_ = false;
  bool connect_deadline_ = false;
  bool write_in_flight_ = false;
  bool read_in_flight_ = false;
  bool got_bytes_ = false;
  bool head_done_ = false;
  bool head_delivered_ = false;
  bool request_body_done_ = false;
  bool upgraded_ = false;
  bool released_ = false;
  bool failed_ = false;
  bool cancelled_ = false;
  bool timed_out_ = false;
};

}  // namespace

// --- HttpClient ----------------------------------------------------------------------------------

HttpClient::HttpClient(ClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(options))) {}

HttpClient::~HttpClient() { impl_->owner_destroyed(); }

api::Outcome HttpClient::reload_tls() { return impl_->reload_tls(); }

const api::Outcome& HttpClient::tls_status() const {
  impl_->tls_context();
  return impl_->tls_status;
}

std::size_t HttpClient::idle_connections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->idle_count;
}

std::shared_ptr<ClientCall> HttpClient::start(const Endpoint& endpoint, ClientRequest request,
                                              net::any_io_executor executor) {
  auto call = std::make_shared<Call>(impl_, endpoint, std::move(request), executor);
  net::dispatch(executor, [call] { call->start(); });
  return call;
}

void HttpClient::fetch(const Endpoint& endpoint, ClientRequest request, std::size_t body_limit,
                       net::any_io_executor executor,
                       std::function<void(api::Expected<Response>)> done) {
  request.timeout_includes_body = true;
  auto call = start(endpoint, std::move(request), executor);
  struct Fetch : std::enable_shared_from_this<Fetch> {
    std::shared_ptr<ClientCall> call;
    std::size_t limit;
    std::function<void(api::Expected<Response>)> done;
    Response response;
    void read_more() {
      auto self = shared_from_this();
      call->read_body_some([self](bool ok, std::string chunk, bool last) {
        if (!ok) {
          return self->done(api::ApiError::bad_gateway("reading response body failed"));
        }
        if (self->response.body.size() + chunk.size() > self->limit) {
          self->call->cancel();
          return self->done(api::ApiError::bad_gateway("response body exceeds " +
                                                        std::to_string(self->limit) + " bytes"));
        }
        self->response.body.append(chunk);
        if (last) return self->done(std::move(self->response));
        self->read_more();
      });
    }
  };
  auto f = std::make_shared<Fetch>();
  f->call = call;
  f->limit = body_limit;
  f->done = std::move(done);
  net::dispatch(executor, [f] {
    f->call->read_head([f](api::Outcome head) {
      if (!head) return f->done(std::move(head).error());
      ResponseHead h = f->call->copy_head();
      f->response.status = h.status;
      f->response.headers = std::move(h.headers);
      f->read_more();
    });
  });
}

}  // namespace dpa::http
