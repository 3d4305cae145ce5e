// A plugin's HTTP/2 reply to a gRPC unary call, as the data plane's channel reads it
// (aggregator/plugin/h2_unary_channel.*): frames, HPACK headers and trailers, grpc-status and
// grpc-message, the length-prefixed reply message, RST_STREAM, GOAWAY, flow control. A server on
// 127.0.0.1 accepts the channel's connection, reads its preface and request, writes the input,
// then closes; every call must complete with a status, never crash or hang.
//
// The first byte chooses:
//   bit 0  0: the input follows a valid server preface (an empty SETTINGS and the ACK of the
//          client's), so it is read as frames; 1: the input is all the server sends
//   bit 1  two calls on the connection (streams 1 and 3) instead of one
#include "aggregator/plugin/h2_unary_channel.h"
#include "tests/fuzz/loopback.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace {

using namespace dpa;

constexpr std::string_view kClientMagic = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::size_t kMaxReply = 64 * 1024;

// Whether the client's request has arrived: the preface, then a DATA frame ending a stream.
bool request_sent(std::string_view bytes) {
  if (bytes.size() > 64 * 1024) return true;  // not what our client sends: answer anyway
  if (bytes.size() < kClientMagic.size()) return false;
  std::size_t at = kClientMagic.size();
  while (bytes.size() - at >= 9) {
    const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(bytes[at + i]); };
    const std::size_t length = (std::size_t{byte(0)} << 16) | (std::size_t{byte(1)} << 8) | byte(2);
    if (bytes.size() - at - 9 < length) return false;
    if (byte(3) == 0x0 && (byte(4) & 0x1) != 0) return true;  // DATA with END_STREAM
    at += 9 + length;
  }
  return false;
}

std::string server_preface() {
  // SETTINGS with no parameters, then SETTINGS with the ACK flag.
  return std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                     "\x00\x00\x00\x04\x01\x00\x00\x00\x00",
                     18);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static auto* plugin = new fuzz::ScriptedServer();
  const std::uint8_t mode = data[0];
  std::string reply = (mode & 1) == 0 ? server_preface() : std::string();
  reply.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  plugin->serve_once(request_sent, std::move(reply));

  auto channel = std::make_unique<plugin::H2UnaryChannel>(
      plugin::parse_h2_target("ipv4:127.0.0.1:" + std::to_string(plugin->port())), kMaxReply);
  const int calls = (mode & 2) != 0 ? 2 : 1;
  auto completed = std::make_shared<int>(0);
  for (int i = 0; i < calls; ++i) {
    // No deadline: the server always closes, so every call must end without one.
    channel->call(fuzz::io().get_executor(), "/pluginv2.Data/QueryData", std::string("\x0a\x00", 2),
                  {}, std::chrono::milliseconds(0),
                  [completed](grpc::Status status, std::string reply) {
                    fuzz::show("a call's status",
                               std::to_string(status.error_code()) + " " + status.error_message() +
                                   " (" + std::to_string(reply.size()) + " reply bytes)");
                    ++*completed;
                  });
  }
  if (!fuzz::run_until([&] { return *completed >= calls; })) {
    fuzz::hang("the unary call did not complete", plugin->state());
  }
  channel.reset();  // shuts the connection's socket down, which ends the server's side
  if (!fuzz::run_until([&] { return plugin->done(); })) {
    fuzz::hang("the channel did not close its connection", plugin->state());
  }
  fuzz::show("the client's request", plugin->received());
  if (*completed != calls) {
    std::fprintf(stderr, "a call completed %d times\n", *completed);
    std::abort();
  }
  return 0;
}
