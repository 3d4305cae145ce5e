// One HTTP/2 client connection per io_context (see the header). Everything a Connection does runs
// on its strand; nghttp2 is driven through mem_recv/mem_send only, and `done` callbacks are queued
// and run after nghttp2 returns, so no callback re-enters the session.
#include "aggregator/plugin/h2_unary_channel.h"

#include "aggregator/http/wire.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <nghttp2/nghttp2.h>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <map>

namespace dpa::plugin {
namespace {

namespace net = boost::asio;
using Socket = net::generic::stream_protocol::socket;

constexpr int32_t kStreamWindow = 16 << 20;      // per call: a 16 MiB reply needs no WINDOW_UPDATE
constexpr int32_t kConnectionWindow = 64 << 20;  // shared by the calls on one connection
constexpr std::size_t kReadBuffer = 64 << 10;
constexpr std::size_t kMaxReserve = 64 << 20;  // a length prefix is not trusted beyond this

// gRPC over HTTP/2: a timeout of at most 8 digits and a unit.
std::string grpc_timeout(std::chrono::milliseconds t) {
  const auto ms = t.count();
  if (ms <= 99'999'999) return std::to_string(ms) + "m";
  return std::to_string(std::min<int64_t>(ms / 1000, 99'999'999)) + "S";
}
// gRPC's mapping of an HTTP status without grpc-status (doc/http-grpc-status-mapping.md).
grpc::StatusCode code_for_http_status(int status) {
  switch (status) {
    case 400:
      return grpc::StatusCode::INTERNAL;
    case 401:
      return grpc::StatusCode::UNAUTHENTICATED;
    case 403:
      return grpc::StatusCode::PERMISSION_DENIED;
    case 404:
      return grpc::StatusCode::UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return grpc::StatusCode::UNAVAILABLE;
    default:
      return grpc::StatusCode::UNKNOWN;
  }
}

// gRPC's mapping of RST_STREAM error codes.
grpc::StatusCode code_for_reset(uint32_t error) {
  switch (error) {
    case NGHTTP2_REFUSED_STREAM:
      return grpc::StatusCode::UNAVAILABLE;
    case NGHTTP2_CANCEL:
      return grpc::StatusCode::CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
      return grpc::StatusCode::PERMISSION_DENIED;
    default:
      return grpc::StatusCode::INTERNAL;
  }
}

// nghttp2 copies the bytes at submit time, so a header may point into a short-lived string.
nghttp2_nv header(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

// The io_context itself rather than the caller's strand, so every session on the thread shares the
// connection without serialising behind one session's strand.
net::any_io_executor context_executor(const net::any_io_executor& io) {
  using Plain = net::io_context::executor_type;
  if (const auto* strand = io.target<net::strand<Plain>>()) return strand->get_inner_executor();
  if (const auto* strand = io.target<net::strand<net::any_io_executor>>())
    return strand->get_inner_executor();
  return io;
}

}  // namespace

H2Target parse_h2_target(const std::string& target) {
  H2Target out;
  std::string_view t = target;
  if (t.starts_with("unix:")) {
    t.remove_prefix(5);
    if (t.starts_with("//")) t.remove_prefix(2);
    if (!t.starts_with("/")) return out;
    out.unix_path = std::string(t);
    out.authority = "localhost";
    return out;
  }
  if (t.starts_with("ipv4:") || t.starts_with("ipv6:")) {
    t.remove_prefix(5);
    if (auto comma = t.find(','); comma != std::string_view::npos) t = t.substr(0, comma);
  } else if (t.starts_with("dns:")) {
    t.remove_prefix(4);
    if (t.starts_with("//")) {  // dns://[authority]/host:port
      t.remove_prefix(2);
      auto slash = t.find('/');
      if (slash == std::string_view::npos) return out;
      t.remove_prefix(slash + 1);
    }
  }
  const auto colon = t.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == t.size()) return out;
  std::string_view host = t.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  out.host = std::string(host);
  out.port = std::string(t.substr(colon + 1));
  out.authority = std::string(t);
  return out;
}

struct H2UnaryChannel::Connection : std::enable_shared_from_this<Connection> {
  struct Call {
    std::string method;
    std::string timeout_header;
    std::vector<std::pair<std::string, std::string>> metadata;
    std::string request;  // length-prefixed message
    std::size_t sent = 0;
    std::string reply;  // DATA payload
    int http_status = 0;
    int grpc_status = -1;
    std::string grpc_message;
    uint64_t serial = 0;
    bool finished = false;  // done has been queued
    Done done;
    std::unique_ptr<net::steady_timer> timer;
  };

  Connection(net::any_io_executor io, const H2Target& target, std::size_t max_reply)
      : strand(net::make_strand(std::move(io))),
        socket(strand),
        target(target),
        max_reply(max_reply) {}

  ~Connection() {
    if (session != nullptr) nghttp2_session_del(session);
  }

  // --- from any thread ---------------------------------------------------------------------------
  void shutdown_socket() {
    std::lock_guard lock(fd_mutex);
    abandoned = true;
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }

  // --- on the strand -----------------------------------------------------------------------------
  void start() {
    if (!target.valid()) return fail("not a unix or tcp address");
    auto self = shared_from_this();
    if (!target.unix_path.empty()) {
      connect(net::generic::stream_protocol::endpoint(
          net::local::stream_protocol::endpoint(target.unix_path)));
      return;
    }
    uint32_t port = 0;
    for (char c : target.port)
      port = c >= '0' && c <= '9' && port <= 65535 ? port * 10 + (c - '0') : 1u << 20;
    if (port == 0 || port > 65535) return fail("bad port in " + target.authority);
    boost::system::error_code ec;
    auto address = net::ip::make_address(target.host, ec);
    if (!ec) {
      connect(net::generic::stream_protocol::endpoint(
          net::ip::tcp::endpoint(address, static_cast<uint16_t>(port))));
      return;
    }
    resolver = std::make_unique<net::ip::tcp::resolver>(strand);
    resolver->async_resolve(
        target.host, target.port,
        net::bind_executor(strand, [self](const boost::system::error_code& ec,
                                          net::ip::tcp::resolver::results_type r) {
          if (ec || r.empty()) {
            return self->fail("cannot resolve " + self->target.host + ": " +
                              (ec ? ec.message() : "no addresses"));
          }
          self->connect(net::generic::stream_protocol::endpoint(r.begin()->endpoint()));
        }));
  }

  void connect(const net::generic::stream_protocol::endpoint& endpoint) {
    auto self = shared_from_this();
    boost::system::error_code ec;
    socket.open(endpoint.protocol(), ec);
    if (ec) return fail("cannot open a socket: " + ec.message());
    // fail() takes fd_mutex itself: decide under the lock, fail after it is released.
    bool gone;
    {
      std::lock_guard lock(fd_mutex);
      gone = abandoned;
      if (!gone) fd = socket.native_handle();
    }
    if (gone) return fail("channel closed");
    socket.async_connect(
        endpoint, net::bind_executor(strand, [self](const boost::system::error_code& ec) {
          if (ec) return self->fail("cannot connect to " + self->describe() + ": " + ec.message());
          self->on_connected();
        }));
  }

  std::string describe() const {
    return target.unix_path.empty() ? target.authority : "unix:" + target.unix_path;
  }

  void on_connected() {
    if (closed) return;
    bool gone;
    {
      std::lock_guard lock(fd_mutex);
      gone = abandoned;
    }
    if (gone) return fail("channel closed");
    if (target.unix_path.empty()) {
      boost::system::error_code ignored;
      socket.set_option(net::ip::tcp::no_delay(true), ignored);
    }
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &Connection::on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &Connection::on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &Connection::on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &Connection::on_frame);
    const int rv = nghttp2_session_client_new(&session, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0) return fail(std::string("HTTP/2 session: ") + nghttp2_strerror(rv));
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 1u << 20},
    };
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    ready = true;
    auto waiting_calls = std::move(waiting);
    waiting.clear();
    for (auto& call : waiting_calls) submit(std::move(call));
    flush();
    read();
    deliver();
  }

  void add(std::unique_ptr<Call> call) {
    if (closed) {
      finish(*call, grpc::Status(grpc::StatusCode::UNAVAILABLE, close_reason));
      deliver();
      return;
    }
    call->serial = ++serials;
    if (call->timer) {  // the deadline counts from call(), connecting included
      auto self = shared_from_this();
      call->timer->async_wait(net::bind_executor(
          strand, [self, serial = call->serial](const boost::system::error_code& ec) {
            if (!ec) self->expire(serial);
          }));
    }
    if (!ready) {
      waiting.push_back(std::move(call));
      return;
    }
    submit(std::move(call));
    flush();
    deliver();
  }

  void submit(std::unique_ptr<Call> call) {
    if (!nghttp2_session_check_request_allowed(session)) {
      usable = false;  // GOAWAY received: the channel dials a new connection next time
      finish(*call, grpc::Status(grpc::StatusCode::UNAVAILABLE, "plugin connection is going away"));
      return;
    }
    std::vector<nghttp2_nv> nva = {
        header(":method", "POST"),
        header(":scheme", "http"),
        header(":path", call->method),
        header(":authority", target.authority),
        header("content-type", "application/grpc"),
        header("te", "trailers"),
        header("user-agent", "dataplane-aggregator"),
    };
    if (!call->timeout_header.empty()) nva.push_back(header("grpc-timeout", call->timeout_header));
    for (const auto& [key, value] : call->metadata) nva.push_back(header(key, value));
    nghttp2_data_provider provider{};
    provider.read_callback = &Connection::read_request;
    const int32_t id =
        nghttp2_submit_request(session, nullptr, nva.data(), nva.size(), &provider, nullptr);
    if (id < 0) {
      finish(*call,
             grpc::Status(grpc::StatusCode::INTERNAL,
                          std::string("cannot start HTTP/2 stream: ") + nghttp2_strerror(id)));
      return;
    }
    calls.emplace(id, std::move(call));
  }

  void expire(uint64_t serial) {
    const grpc::Status late(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
    for (auto it = waiting.begin(); it != waiting.end(); ++it) {
      if ((*it)->serial != serial) continue;
      finish(**it, late);
      waiting.erase(it);
      return deliver();
    }
    for (auto& [id, call] : calls) {
      if (call->serial != serial) continue;
      if (call->finished) return;
      finish(*call, late);
      // Tell the plugin to stop; the stream's close then removes the call.
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      flush();
      return deliver();
    }
  }

  // Queues `done` with its outcome; deliver() runs it once nghttp2 is no longer on the stack.
  void finish(Call& call, grpc::Status status, std::string reply = {}) {
    if (call.finished) return;
    call.finished = true;
    if (call.timer) call.timer->cancel();
    completed.push_back({std::move(call.done), std::move(status), std::move(reply)});
  }

  void deliver() {
    while (!completed.empty()) {
      auto batch = std::move(completed);
      completed.clear();
      for (auto& c : batch) c.done(std::move(c.status), std::move(c.reply));
    }
  }

  void complete(Call& call, uint32_t reset_code) {
    if (call.finished) return;
    if (call.grpc_status < 0) {
      if (reset_code != NGHTTP2_NO_ERROR) {
        return finish(call, grpc::Status(code_for_reset(reset_code),
                                         "stream reset by the plugin (HTTP/2 error " +
                                             std::to_string(reset_code) + ")"));
      }
      if (call.http_status != 200) {
        return finish(call, grpc::Status(code_for_http_status(call.http_status),
                                         "HTTP status " + std::to_string(call.http_status) +
                                             " from the plugin"));
      }
      return finish(
          call, grpc::Status(grpc::StatusCode::UNKNOWN, "no grpc-status in the plugin's reply"));
    }
    const auto code = static_cast<grpc::StatusCode>(call.grpc_status);
    if (code != grpc::StatusCode::OK) return finish(call, grpc::Status(code, call.grpc_message));
    const std::string& r = call.reply;
    if (r.size() < 5) {
      return finish(
          call, grpc::Status(grpc::StatusCode::INTERNAL, "No message returned for unary request"));
    }
    if (r[0] != 0) {
      return finish(call, grpc::Status(grpc::StatusCode::INTERNAL,
                                       "compressed reply, but no compression was negotiated"));
    }
    const uint32_t length = (uint32_t{static_cast<uint8_t>(r[1])} << 24) |
                            (uint32_t{static_cast<uint8_t>(r[2])} << 16) |
                            (uint32_t{static_cast<uint8_t>(r[3])} << 8) |
                            uint32_t{static_cast<uint8_t>(r[4])};
    if (r.size() != 5 + std::size_t{length}) {
      return finish(call, grpc::Status(grpc::StatusCode::INTERNAL,
                                       r.size() < 5 + std::size_t{length}
                                           ? "truncated reply message"
                                           : "more than one reply message for a unary call"));
    }
    call.reply.erase(0, 5);
    finish(call, grpc::Status::OK, std::move(call.reply));
  }

  void read() {
    auto self = shared_from_this();
    socket.async_read_some(
        net::buffer(input),
        net::bind_executor(strand, [self](const boost::system::error_code& ec, std::size_t n) {
          self->on_read(ec, n);
        }));
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (closed) return;
    if (ec) {
      fail(ec == net::error::eof ? "the plugin closed the connection"
                                 : "connection to the plugin failed: " + ec.message());
      return;
    }
    const auto rv = nghttp2_session_mem_recv(session, input.data(), n);
    if (rv < 0) {
      fail(std::string("HTTP/2 error from the plugin: ") + nghttp2_strerror(static_cast<int>(rv)));
      return;
    }
    flush();
    if (!closed) read();
    deliver();
  }

  void flush() {
    if (writing || closed) return;
    output.clear();
    for (;;) {
      const uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(session, &data);
      if (n < 0) return fail(std::string("HTTP/2 error: ") + nghttp2_strerror(static_cast<int>(n)));
      if (n == 0) break;
      output.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (output.empty()) {
      if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session)) {
        fail("the HTTP/2 session ended");
      }
      return;
    }
    writing = true;
    auto self = shared_from_this();
    net::async_write(
        socket, net::buffer(output),
        net::bind_executor(strand, [self](const boost::system::error_code& ec, std::size_t) {
          self->writing = false;
          if (self->closed) return;
          if (ec) return self->fail("write to the plugin failed: " + ec.message());
          self->flush();
          self->deliver();
        }));
  }

  // The connection is unusable: every call ends with UNAVAILABLE.
  void fail(const std::string& reason) {
    if (closed) return;
    closed = true;
    usable = false;
    close_reason = "plugin unavailable: " + reason;
    {
      std::lock_guard lock(fd_mutex);
      fd = -1;
    }
    boost::system::error_code ignored;
    socket.close(ignored);
    if (resolver) resolver->cancel();
    for (auto& call : waiting)
      finish(*call, grpc::Status(grpc::StatusCode::UNAVAILABLE, close_reason));
    waiting.clear();
    for (auto& [id, call] : calls)
      finish(*call, grpc::Status(grpc::StatusCode::UNAVAILABLE, close_reason));
    calls.clear();
    deliver();
  }

  Call* find(int32_t id) {
    auto it = calls.find(id);
    return it == calls.end() ? nullptr : it->second.get();
  }

  // --- nghttp2 callbacks (inside mem_recv / mem_send, on the strand)
  // ------------------------------
  static ssize_t read_request(nghttp2_session*, int32_t id, uint8_t* buf, size_t length,
                              uint32_t* flags, nghttp2_data_source*, void* user) {
    auto* call = static_cast<Connection*>(user)->find(id);
    if (call == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const std::size_t n = std::min(length, call->request.size() - call->sent);
    std::memcpy(buf, call->request.data() + call->sent, n);
    call->sent += n;
    if (call->sent == call->request.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      std::string().swap(call->request);
      call->sent = 0;
    }
    return static_cast<ssize_t>(n);
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    auto* call = static_cast<Connection*>(user)->find(frame->hd.stream_id);
    if (call == nullptr) return 0;
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      call->http_status = 0;
      for (char c : v)
        call->http_status = c >= '0' && c <= '9' ? call->http_status * 10 + (c - '0') : 0;
    } else if (n == "grpc-status") {
      int code = v.empty() ? -1 : 0;
      for (char c : v)
        code = c >= '0' && c <= '9' && code >= 0 && code < 1000 ? code * 10 + (c - '0') : -1;
      // An out-of-range code is UNKNOWN, as in the gRPC library.
      call->grpc_status =
          code >= 0 && code <= 16 ? code : static_cast<int>(grpc::StatusCode::UNKNOWN);
    } else if (n == "grpc-message") {
      call->grpc_message = http::percent_decode(v);  // grpc-message is %-encoded
    }
    return 0;
  }

  static int on_data(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len,
                     void* user) {
    auto* self = static_cast<Connection*>(user);
    auto* call = self->find(id);
    if (call == nullptr || call->finished) return 0;
    call->reply.append(reinterpret_cast<const char*>(data), len);
    const std::string& r = call->reply;
    if (r.size() >= 5 && r.size() == len) {  // first bytes: the length prefix sizes the buffer
      const std::size_t want = (std::size_t{static_cast<uint8_t>(r[1])} << 24) |
                               (std::size_t{static_cast<uint8_t>(r[2])} << 16) |
                               (std::size_t{static_cast<uint8_t>(r[3])} << 8) |
                               std::size_t{static_cast<uint8_t>(r[4])};
      if (want > self->max_reply) {
        self->finish(*call,
                     grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  "Received message larger than max (" + std::to_string(want) +
                                      " vs. " + std::to_string(self->max_reply) + ")"));
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        return 0;
      }
      call->reply.reserve(std::min(want + 5, kMaxReserve));
    }
    if (r.size() > self->max_reply + 5) {
      self->finish(
          *call, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "Received message larger than max (" + std::to_string(r.size() - 5) +
                                  " vs. " + std::to_string(self->max_reply) + ")"));
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user) {
    auto* self = static_cast<Connection*>(user);
    auto it = self->calls.find(id);
    if (it == self->calls.end()) return 0;
    self->complete(*it->second, error_code);
    self->calls.erase(it);
    return 0;
  }

  static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_GOAWAY) static_cast<Connection*>(user)->usable = false;
    return 0;
  }

  struct Completed {
    Done done;
    grpc::Status status;
    std::string reply;
  };

  net::strand<net::any_io_executor> strand;
  Socket socket;
  std::unique_ptr<net::ip::tcp::resolver> resolver;
  const H2Target target;
  const std::size_t max_reply;
  nghttp2_session* session = nullptr;
  uint64_t serials = 0;
  bool ready = false;
  bool closed = false;
  bool writing = false;
  std::string close_reason;
  std::atomic<bool> usable{true};
  std::mutex fd_mutex;
  int fd = -1;
  bool abandoned = false;                      // the channel is gone (under fd_mutex)
  std::vector<std::unique_ptr<Call>> waiting;  // made before the connection was up
  std::map<int32_t, std::unique_ptr<Call>> calls;
  std::vector<Completed> completed;
  std::string output;
  std::array<uint8_t, kReadBuffer> input;
};

H2UnaryChannel::H2UnaryChannel(H2Target target, std::size_t max_reply_bytes)
    : target_(std::move(target)), max_reply_bytes_(max_reply_bytes) {}

H2UnaryChannel::~H2UnaryChannel() {
  std::lock_guard lock(mutex_);
  for (auto& [context, connection] : connections_) connection->shutdown_socket();
}

void H2UnaryChannel::call(const net::any_io_executor& io, std::string method, std::string request,
                          std::vector<std::pair<std::string, std::string>> metadata,
                          std::chrono::milliseconds timeout, Done done) {
  auto& context = net::query(io, net::execution::context);
  std::shared_ptr<Connection> connection;
  bool fresh = false;
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(connections_.begin(), connections_.end(),
                           [&](const auto& entry) { return entry.first == &context; });
    if (it != connections_.end() && it->second->usable) {
      connection = it->second;
    } else {
      connection = std::make_shared<Connection>(context_executor(io), target_, max_reply_bytes_);
      fresh = true;
      if (it != connections_.end()) {
        it->second = connection;
      } else {
        connections_.emplace_back(&context, connection);
      }
    }
  }

  auto call = std::make_unique<Connection::Call>();
  call->method = std::move(method);
  call->metadata = std::move(metadata);
  call->request.reserve(request.size() + 5);
  const auto size = static_cast<uint32_t>(request.size());
  const char prefix[5] = {0, static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                          static_cast<char>(size >> 8), static_cast<char>(size)};
  call->request.append(prefix, 5);
  call->request.append(request);
  call->done = std::move(done);
  if (timeout.count() > 0) {
    call->timeout_header = grpc_timeout(timeout);
    call->timer = std::make_unique<net::steady_timer>(connection->strand, timeout);
  }
  net::post(connection->strand, [connection, fresh, call = std::move(call)]() mutable {
    if (fresh) connection->start();
    connection->add(std::move(call));
  });
}

std::size_t H2UnaryChannel::connection_count() {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

}  // namespace dpa::plugin
