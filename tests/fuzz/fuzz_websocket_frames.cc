// WebSocket as the stream route speaks it (aggregator/dataplane/websocket.*, our own RFC 6455
// code, not Beast's): the opening handshake read from the request headers, then client frames
// decoded by WsDecoder (masking, lengths, fragmentation, control frames, close codes, UTF-8) and
// answered by WebSocketSession (pongs, close echo, protocol-error close) over the connection the
// real HTTP server hands over after the 101. The stream route ignores what clients send; here
// text messages are echoed so writes interleave with reads.
//
// The first byte chooses:
//   bit 0     0: a valid handshake request precedes the input, which is the frames;
//             1: the input is the whole request, handshake head included
//   bits 1-3  the bytes also go through a WsDecoder in memory, fed in pieces of 2^n bytes
//             (server side, then client side without the masking rule)
// Then the bytes are sent on one connection to the server on 127.0.0.1, the connection is
// half-closed, and the reply read until the server closes it.
#include "aggregator/dataplane/websocket.h"
#include "aggregator/http/server.h"
#include "tests/fuzz/loopback.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace {

using namespace dpa;
using dataplane::WsDecoder;
using dataplane::WsEvent;

constexpr std::string_view kHandshake =
    "GET /apis/dataplane.grafana.app/v0alpha1/namespaces/default/datasources/ds1/stream/counter "
    "HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "\r\n";

void decode_in_pieces(std::string_view bytes, std::size_t piece, WsDecoder::Limits limits) {
  WsDecoder decoder(limits);
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    decoder.feed(bytes.substr(at, piece));
    for (;;) {
      WsEvent event = decoder.next();
      if (event.kind == WsEvent::Kind::kNeedMore) break;
      if (event.kind == WsEvent::Kind::kError || event.kind == WsEvent::Kind::kClose) return;
    }
  }
}

void handle(std::shared_ptr<http::Exchange> exchange) {
  if (!http::is_websocket_upgrade(exchange->header())) {
    exchange->respond(http::Response::text(426, "WebSocket only"));
    return;
  }
  auto head = dataplane::websocket_handshake_response(exchange->header());
  if (!head) return exchange->respond_error(head.error());
  exchange->upgrade(std::move(*head), [](std::unique_ptr<http::ByteStream> stream) {
    if (!stream) return;
    dataplane::WebSocketSession::Options options;
    options.limits.max_message_bytes = 4096;
    options.close_timeout = std::chrono::milliseconds(200);
    auto session = dataplane::WebSocketSession::create(std::move(stream), options);
    std::weak_ptr<dataplane::WebSocketSession> weak = session;
    session->start(
        [weak](dataplane::WsOpcode opcode, std::string message) {
          auto self = weak.lock();
          if (!self || opcode != dataplane::WsOpcode::kText) return;
          if (message == "close") return self->close(dataplane::kCloseNormal, "bye");
          self->send_text(std::move(message));
        },
        [](std::uint16_t) {});
    session->send_text("{\"subscribed\":true}");
  });
}

int server_port() {
  static http::Server* server = fuzz::serve(handle);
  return server->port();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string_view frames = input;
  std::string request;
  if ((mode & 1) == 0) {
    request.assign(kHandshake);
    request.append(input);
  } else {
    request.assign(input);
    const auto end = input.find("\r\n\r\n");
    frames = end == std::string_view::npos ? std::string_view() : input.substr(end + 4);
  }
  const std::size_t piece = std::size_t{1} << ((mode >> 1) & 7);
  decode_in_pieces(frames, piece, {.max_message_bytes = 4096, .require_masked = true});
  decode_in_pieces(frames, piece, {.max_message_bytes = 4096, .require_masked = false});

  (void)fuzz::send_and_read(server_port(), std::move(request));
  return 0;
}
