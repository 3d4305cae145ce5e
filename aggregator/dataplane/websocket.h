// Server side of RFC 6455 WebSockets for stream subscriptions: the opening-handshake helpers
// (Sec-WebSocket-Accept), a frame encoder, an incremental frame/message decoder that enforces the
// protocol's rules (masked client frames, control-frame limits, fragmentation, size limits, UTF-8),
// and WebSocketSession, which speaks the protocol over the raw ByteStream left after a 101.
#pragma once

#include "aggregator/frames/utf8.h"
#include "aggregator/http/exchange.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace dpa::dataplane {

// RFC 6455 §4.2.2: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string websocket_accept_key(std::string_view client_key);

// Checks the rest of the opening handshake (RFC 6455 §4.2.1: version 13, a 16-byte base64 key);
// returns the head of the 101 response, or a 400 error (with Sec-WebSocket-Version: 13 advice).
api::Expected<http::ResponseHead> websocket_handshake_response(const http::Header& header);

enum class WsOpcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes used here (RFC 6455 §7.4.1).
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseGoingAway = 1001;
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kCloseInvalidPayload = 1007;
inline constexpr std::uint16_t kClosePolicyViolation = 1008;
inline constexpr std::uint16_t kCloseTooBig = 1009;
inline constexpr std::uint16_t kCloseInternalError = 1011;

// One frame on the wire. A server never masks (RFC 6455 §5.1); tests pass a mask to act as client.
std::string encode_frame(WsOpcode opcode, std::string_view payload, bool fin = true,
                         std::optional<std::array<std::uint8_t, 4>> mask = std::nullopt);
// The payload of a close frame: 2-byte code (network order) + UTF-8 reason (<= 123 bytes).
std::string close_payload(std::uint16_t code, std::string_view reason);

using frames::is_valid_utf8;

// What the decoder found in the bytes fed so far.
struct WsEvent {
  enum class Kind {
    kNeedMore,  // no complete event yet
    kMessage,   // a whole (reassembled) text or binary message
    kPing,
    kPong,
    kClose,     // the peer's close frame: code (1005 when absent) and reason
    kError,     // protocol violation: close with `code`, then drop the connection
  };
  Kind kind = Kind::kNeedMore;
  WsOpcode opcode = WsOpcode::kText;  // for kMessage: kText or kBinary
  std::string payload;                // message / ping / pong payload, or close/error reason
  std::uint16_t code = 0;             // kClose / kError
};

// Incremental decoder: feed() the bytes as they arrive, then call next() until kNeedMore.
// After kError or kClose it yields nothing more.
class WsDecoder {
 public:
  struct Limits {
    std::size_t max_message_bytes = 1 << 20;  // a whole (reassembled) message; over -> 1009
    bool require_masked = true;                // server side: client frames MUST be masked
  };
  WsDecoder() : WsDecoder(Limits{}) {}
  explicit WsDecoder(Limits limits) : limits_(limits) {}

  void feed(std::string_view bytes) { buffer_.append(bytes); }
  WsEvent next();

 private:
  WsEvent fail(std::uint16_t code, std::string reason);

  Limits limits_;
  std::string buffer_;
  std::size_t offset_ = 0;  // consumed prefix of buffer_
  bool in_message_ = false;
  WsOpcode message_opcode_ = WsOpcode::kText;
  std::string message_;
  bool done_ = false;
};

// A server WebSocket connection over the upgraded ByteStream. All state lives on one strand; the
// public methods may be called from any thread. on_message / on_closed run on that strand.
class WebSocketSession : public std::enable_shared_from_this<WebSocketSession> {
 public:
  struct Options {
    WsDecoder::Limits limits;
    // Our close frame waits this long for the peer's before the connection is dropped.
    std::chrono::milliseconds close_timeout{5000};
  };

  static std::shared_ptr<WebSocketSession> create(std::unique_ptr<http::ByteStream> stream,
                                                  Options options);
  static std::shared_ptr<WebSocketSession> create(std::unique_ptr<http::ByteStream> stream) {
    return create(std::move(stream), Options{});
  }
  ~WebSocketSession();

  // Starts reading. on_closed(code) is called exactly once, when the connection is gone.
  void start(std::function<void(WsOpcode, std::string)> on_message,
             std::function<void(std::uint16_t code)> on_closed);
  // Queues a text message (ignored once closing).
  void send_text(std::string text);
  // Starts the close handshake (idempotent).
  void close(std::uint16_t code, std::string reason);
  // Bytes queued but not yet written (the stream hub sheds slow subscribers with it).
  std::size_t pending_bytes() const { return pending_bytes_.load(); }
  bool closed() const { return finished_.load(); }

 private:
  WebSocketSession(std::unique_ptr<http::ByteStream> stream, Options options);

  void do_read();
  void on_read(bool ok, std::string bytes);
  void queue_frame(std::string frame);
  void do_write();
  void on_write(bool ok);
  void start_close(std::uint16_t code, std::string reason);
  void finish(std::uint16_t code);

  std::unique_ptr<http::ByteStream> stream_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer close_timer_;
  Options options_;
  WsDecoder decoder_;
  std::function<void(WsOpcode, std::string)> on_message_;
  std::function<void(std::uint16_t)> on_closed_;
  std::deque<std::string> write_queue_;
  bool writing_ = false;
  bool close_sent_ = false;
  bool close_received_ = false;
  bool drop_after_write_ = false;  // close the TCP once the queue drains (after our close frame)
  std::uint16_t close_code_ = 1006;
  std::atomic<std::size_t> pending_bytes_{0};
  std::atomic<bool> finished_{false};
};

}  // namespace dpa::dataplane
