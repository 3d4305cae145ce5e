// RFC 6455 framing and the server session. The decoder checks every MUST of §5 that applies to a
// server without extensions; a violation closes with the code §7.4.1 assigns and drops the
// connection without waiting for the peer (§7.1.7 "Fail the WebSocket Connection").
#include "aggregator/dataplane/websocket.h"

#include "aggregator/auth/auth.h"
#include "aggregator/http/wire.h"

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <utility>

namespace dpa::dataplane {
namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::size_t kMaxControlPayload = 125;
constexpr std::size_t kCompactThreshold = 64 * 1024;

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Decoded length of a well-formed base64 string, or nullopt.
std::optional<std::size_t> base64_decoded_size(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  std::size_t padding = 0;
  if (text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  return static_cast<std::size_t>(n) - padding;
}

bool is_known_opcode(std::uint8_t op) {
  return op == 0x0 || op == 0x1 || op == 0x2 || op == 0x8 || op == 0x9 || op == 0xA;
}

// §7.4: codes a peer may send in a close frame.
bool is_valid_close_code(std::uint16_t code) {
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1011) return true;
  return code >= 3000 && code <= 4999;
}

}  // namespace

std::string websocket_accept_key(std::string_view client_key) {
  std::string input(client_key);
  input.append(kWebSocketGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64(digest, sizeof digest);
}

api::Expected<http::ResponseHead> websocket_handshake_response(const http::Header& header) {
  namespace bh = boost::beast::http;
  const auto version = header.find(bh::field::sec_websocket_version);
  if (version == header.end() || version->value() != "13") {
    return api::ApiError::bad_request(
        "unsupported WebSocket version: Sec-WebSocket-Version must be 13");
  }
  const auto key = header.find(bh::field::sec_websocket_key);
  if (key == header.end()) {
    return api::ApiError::bad_request("missing Sec-WebSocket-Key header");
  }
  const std::string_view key_value = key->value();
  // §4.1: the key is a base64-encoded 16-byte nonce.
  if (base64_decoded_size(key_value) != std::optional<std::size_t>(16)) {
    return api::ApiError::bad_request("invalid Sec-WebSocket-Key header");
  }
  http::ResponseHead head;
  head.status = 101;
  head.headers = {{"Upgrade", "websocket"},
                  {"Connection", "Upgrade"},
                  {"Sec-WebSocket-Accept", websocket_accept_key(key_value)}};
  // A client that offers subprotocols fails the handshake unless one is chosen (browsers do).
  // Streams have no protocol of their own, so the first offered is taken, never the one that
  // carried the bearer token (kube's rule: a client sending the token offers another with it).
  if (auto offered = auth::websocket_protocols_without_token(header); !offered.empty()) {
    head.headers.emplace_back("Sec-WebSocket-Protocol", offered.front());
  }
  return head;
}

std::string encode_frame(WsOpcode opcode, std::string_view payload, bool fin,
                         std::optional<std::array<std::uint8_t, 4>> mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>((fin ? 0x80 : 0x00) | static_cast<std::uint8_t>(opcode)));
  const std::uint8_t mask_bit = mask ? 0x80 : 0x00;
  const std::uint64_t size = payload.size();
  if (size <= 125) {
    out.push_back(static_cast<char>(mask_bit | size));
  } else if (size <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>((size >> 8) & 0xFF));
    out.push_back(static_cast<char>(size & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((size >> shift) & 0xFF));
    }
  }
  if (!mask) {
    out.append(payload);
    return out;
  }
  for (auto byte : *mask) out.push_back(static_cast<char>(byte));
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ (*mask)[i % 4]));
  }
  return out;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string out;
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason.substr(0, kMaxControlPayload - 2));
  return out;
}

WsEvent WsDecoder::fail(std::uint16_t code, std::string reason) {
  done_ = true;
  buffer_.clear();
  offset_ = 0;
  message_.clear();
  WsEvent event;
  event.kind = WsEvent::Kind::kError;
  event.code = code;
  event.payload = std::move(reason);
  return event;
}

WsEvent WsDecoder::next() {
  while (!done_) {
    const std::size_t available = buffer_.size() - offset_;
    if (available < 2) break;
    const auto at = [&](std::size_t k) { return static_cast<std::uint8_t>(buffer_[offset_ + k]); };
    const std::uint8_t b0 = at(0);
    const std::uint8_t b1 = at(1);
    const bool fin = (b0 & 0x80) != 0;
    const std::uint8_t opcode = b0 & 0x0F;
    const bool masked = (b1 & 0x80) != 0;
    const std::uint8_t len7 = b1 & 0x7F;

    // §5.2: no extension was negotiated, so every RSV bit must be 0.
    if ((b0 & 0x70) != 0) return fail(kCloseProtocolError, "reserved bits set");
    if (!is_known_opcode(opcode)) return fail(kCloseProtocolError, "unknown opcode");
    const bool control = (opcode & 0x08) != 0;
    // §5.5: control frames are never fragmented and carry at most 125 bytes.
    if (control && !fin) return fail(kCloseProtocolError, "fragmented control frame");
    if (control && len7 > kMaxControlPayload) {
      return fail(kCloseProtocolError, "control frame too long");
    }
    // §5.1: a server MUST close the connection on an unmasked client frame.
    if (limits_.require_masked && !masked) return fail(kCloseProtocolError, "unmasked frame");

    std::size_t header_size = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (available < header_size) break;
    std::uint64_t length = len7;
    if (len7 == 126) {
      length = (std::uint64_t{at(2)} << 8) | at(3);
    } else if (len7 == 127) {
      length = 0;
      for (std::size_t k = 0; k < 8; ++k) length = (length << 8) | at(2 + k);
      if (length >> 63) return fail(kCloseProtocolError, "invalid frame length");
    }
    // Check the declared size before buffering the payload, so a huge frame costs nothing.
    if (!control) {
      const std::uint64_t so_far = in_message_ ? message_.size() : 0;
      if (length > limits_.max_message_bytes || so_far + length > limits_.max_message_bytes) {
        return fail(kCloseTooBig, "message too big");
      }
    }
    if (available - header_size < length) break;

    std::array<std::uint8_t, 4> key{};
    if (masked) {
      for (std::size_t k = 0; k < 4; ++k) key[k] = at(header_size - 4 + k);
    }
    std::string payload = buffer_.substr(offset_ + header_size, static_cast<std::size_t>(length));
    if (masked) {
      for (std::size_t k = 0; k < payload.size(); ++k) {
        payload[k] = static_cast<char>(static_cast<std::uint8_t>(payload[k]) ^ key[k % 4]);
      }
    }
    offset_ += header_size + static_cast<std::size_t>(length);
    if (offset_ == buffer_.size()) {
      buffer_.clear();
      offset_ = 0;
    } else if (offset_ > kCompactThreshold) {
      buffer_.erase(0, offset_);
      offset_ = 0;
    }

    WsEvent event;
    switch (static_cast<WsOpcode>(opcode)) {
      case WsOpcode::kContinuation:
        if (!in_message_) return fail(kCloseProtocolError, "continuation without a message");
        message_.append(payload);
        if (!fin) continue;
        in_message_ = false;
        event.opcode = message_opcode_;
        event.payload = std::move(message_);
        message_.clear();
        break;
      case WsOpcode::kText:
      case WsOpcode::kBinary:
        if (in_message_) return fail(kCloseProtocolError, "new message inside a fragmented one");
        if (!fin) {
          in_message_ = true;
          message_opcode_ = static_cast<WsOpcode>(opcode);
          message_ = std::move(payload);
          continue;
        }
        event.opcode = static_cast<WsOpcode>(opcode);
        event.payload = std::move(payload);
        break;
      case WsOpcode::kPing:
        event.kind = WsEvent::Kind::kPing;
        event.payload = std::move(payload);
        return event;
      case WsOpcode::kPong:
        event.kind = WsEvent::Kind::kPong;
        event.payload = std::move(payload);
        return event;
      case WsOpcode::kClose: {
        if (payload.size() == 1) return fail(kCloseProtocolError, "invalid close payload");
        event.kind = WsEvent::Kind::kClose;
        event.code = 1005;  // §7.1.5: no status code present
        if (payload.size() >= 2) {
          event.code = static_cast<std::uint16_t>(
              (static_cast<std::uint8_t>(payload[0]) << 8) | static_cast<std::uint8_t>(payload[1]));
          if (!is_valid_close_code(event.code)) {
            return fail(kCloseProtocolError, "invalid close code");
          }
          event.payload = payload.substr(2);
          if (!is_valid_utf8(event.payload)) {
            return fail(kCloseInvalidPayload, "close reason is not UTF-8");
          }
        }
        done_ = true;
        return event;
      }
    }
    // A whole data message.
    if (event.opcode == WsOpcode::kText && !is_valid_utf8(event.payload)) {
      return fail(kCloseInvalidPayload, "text message is not UTF-8");
    }
    event.kind = WsEvent::Kind::kMessage;
    return event;
  }
  return WsEvent{};
}

// --- WebSocketSession ----------------------------------------------------------------------------

std::shared_ptr<WebSocketSession> WebSocketSession::create(std::unique_ptr<http::ByteStream> stream,
                                                           Options options) {
  return std::shared_ptr<WebSocketSession>(new WebSocketSession(std::move(stream), options));
}

WebSocketSession::WebSocketSession(std::unique_ptr<http::ByteStream> stream, Options options)
    : stream_(std::move(stream)),
      strand_(boost::asio::make_strand(stream_->executor())),
      close_timer_(strand_),
      options_(options),
      decoder_(options.limits) {}

WebSocketSession::~WebSocketSession() = default;

void WebSocketSession::start(std::function<void(WsOpcode, std::string)> on_message,
                             std::function<void(std::uint16_t code)> on_closed) {
  boost::asio::post(strand_, [self = shared_from_this(), on_message = std::move(on_message),
                              on_closed = std::move(on_closed)]() mutable {
    self->on_message_ = std::move(on_message);
    self->on_closed_ = std::move(on_closed);
    self->do_read();
  });
}

void WebSocketSession::send_text(std::string text) {
  if (finished_.load()) return;
  std::string frame = encode_frame(WsOpcode::kText, text);
  // Counted at once (not on the strand) so a burst of sends is visible to the hub immediately.
  pending_bytes_ += frame.size();
  boost::asio::post(strand_, [self = shared_from_this(), frame = std::move(frame)]() mutable {
    if (self->close_sent_ || self->finished_.load()) {
      self->pending_bytes_ -= frame.size();
      return;
    }
    self->write_queue_.push_back(std::move(frame));
    if (!self->writing_) self->do_write();
  });
}

void WebSocketSession::close(std::uint16_t code, std::string reason) {
  boost::asio::post(strand_, [self = shared_from_this(), code, reason = std::move(reason)]() mutable {
    self->start_close(code, std::move(reason));
  });
}

void WebSocketSession::do_read() {
  stream_->read_some([self = shared_from_this()](bool ok, std::string bytes) {
    boost::asio::post(self->strand_, [self, ok, bytes = std::move(bytes)]() mutable {
      self->on_read(ok, std::move(bytes));
    });
  });
}

void WebSocketSession::on_read(bool ok, std::string bytes) {
  if (finished_.load()) return;
  if (!ok) {
    finish(close_received_ ? close_code_ : 1006);
    return;
  }
  decoder_.feed(bytes);
  for (;;) {
    WsEvent event = decoder_.next();
    switch (event.kind) {
      case WsEvent::Kind::kNeedMore:
        do_read();
        return;
      case WsEvent::Kind::kMessage:
        // §7.1.4 lets a closing endpoint discard data; the handler no longer wants it.
        if (!close_sent_ && on_message_) on_message_(event.opcode, std::move(event.payload));
        if (finished_.load()) return;
        break;
      case WsEvent::Kind::kPing:
        if (!close_sent_) queue_frame(encode_frame(WsOpcode::kPong, event.payload));
        break;
      case WsEvent::Kind::kPong:
        break;  // unsolicited pongs are allowed and ignored (§5.5.3)
      case WsEvent::Kind::kClose:
        close_received_ = true;
        close_code_ = event.code;
        if (close_sent_) {
          // Our close was answered: the server closes the TCP connection first (§7.1.1).
          finish(close_code_);
        } else {
          // Echo the peer's code (§5.5.1), then drop the connection once it is written.
          close_sent_ = true;
          drop_after_write_ = true;
          queue_frame(encode_frame(WsOpcode::kClose,
                                   event.code == 1005 ? std::string()
                                                      : close_payload(event.code, "")));
        }
        return;
      case WsEvent::Kind::kError:
        close_code_ = event.code;
        if (!close_sent_) {
          close_sent_ = true;
          queue_frame(encode_frame(WsOpcode::kClose, close_payload(event.code, event.payload)));
        }
        drop_after_write_ = true;
        if (!writing_) finish(close_code_);
        return;
    }
  }
}

void WebSocketSession::queue_frame(std::string frame) {
  pending_bytes_ += frame.size();
  write_queue_.push_back(std::move(frame));
  if (!writing_) do_write();
}

void WebSocketSession::do_write() {
  if (write_queue_.empty() || finished_.load()) {
    writing_ = false;
    return;
  }
  writing_ = true;
  stream_->write(write_queue_.front(), [self = shared_from_this()](bool ok) {
    boost::asio::post(self->strand_, [self, ok] { self->on_write(ok); });
  });
}

void WebSocketSession::on_write(bool ok) {
  if (!write_queue_.empty()) {
    pending_bytes_ -= write_queue_.front().size();
    write_queue_.pop_front();
  }
  if (finished_.load()) return;
  if (!ok) {
    finish(1006);
    return;
  }
  if (write_queue_.empty()) {
    writing_ = false;
    if (drop_after_write_) finish(close_code_);
    return;
  }
  do_write();
}

void WebSocketSession::start_close(std::uint16_t code, std::string reason) {
  if (close_sent_ || finished_.load()) return;
  close_sent_ = true;
  close_code_ = code;
  queue_frame(encode_frame(WsOpcode::kClose, close_payload(code, reason)));
  close_timer_.expires_after(options_.close_timeout);
  close_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->finish(self->close_code_);
  });
}

void WebSocketSession::finish(std::uint16_t code) {
  if (finished_.exchange(true)) return;
  close_timer_.cancel();
  stream_->close();
  // Drop the unsent frames; the one being written (if any) is accounted for by its on_write.
  const std::size_t keep = writing_ && !write_queue_.empty() ? 1 : 0;
  while (write_queue_.size() > keep) {
    pending_bytes_ -= write_queue_.back().size();
    write_queue_.pop_back();
  }
  auto on_closed = std::move(on_closed_);
  on_closed_ = nullptr;
  on_message_ = nullptr;
  if (on_closed) on_closed(code);
}

}  // namespace dpa::dataplane
