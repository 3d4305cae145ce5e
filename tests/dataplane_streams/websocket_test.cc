// RFC 6455 framing, the opening handshake and the server session over an in-memory connection.
#include "aggregator/dataplane/websocket.h"

#include "tests/support/fake_exchange.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace dpa::dataplane {
namespace {

using namespace std::chrono_literals;
constexpr std::array<std::uint8_t, 4> kMask{0x37, 0xfa, 0x21, 0x3d};

http::Header upgrade_request() {
  http::Header h;
  h.method(boost::beast::http::verb::get);
  h.target("/stream/counter");
  h.set(boost::beast::http::field::connection, "keep-alive, Upgrade");
  h.set(boost::beast::http::field::upgrade, "websocket");
  h.set(boost::beast::http::field::sec_websocket_version, "13");
  h.set(boost::beast::http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  return h;
}

std::vector<WsEvent> drain(WsDecoder& decoder) {
  std::vector<WsEvent> events;
  for (;;) {
    WsEvent e = decoder.next();
    if (e.kind == WsEvent::Kind::kNeedMore) break;
    events.push_back(std::move(e));
    if (events.back().kind == WsEvent::Kind::kError) break;
  }
  return events;
}

TEST(WebSocketHandshake, AcceptKeyOfRfc6455Example) {
  // RFC 6455 §1.3.
  EXPECT_EQ(websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshake, DetectsUpgradeAndBuilds101) {
  auto h = upgrade_request();
  EXPECT_TRUE(http::is_websocket_upgrade(h));
  auto head = websocket_handshake_response(h);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->status, 101);
  bool accept_found = false;
  for (const auto& [k, v] : head->headers) {
    if (k == "Sec-WebSocket-Accept") {
      EXPECT_EQ(v, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
      accept_found = true;
    }
  }
  EXPECT_TRUE(accept_found);

  auto plain = upgrade_request();
  plain.erase(boost::beast::http::field::upgrade);
  EXPECT_FALSE(http::is_websocket_upgrade(plain));
  auto post = upgrade_request();
  post.method(boost::beast::http::verb::post);
  EXPECT_FALSE(http::is_websocket_upgrade(post));
}

TEST(WebSocketHandshake, RejectsBadVersionAndKey) {
  auto h = upgrade_request();
  h.set(boost::beast::http::field::sec_websocket_version, "8");
  auto r = websocket_handshake_response(h);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 400);

  h = upgrade_request();
  h.set(boost::beast::http::field::sec_websocket_key, "c2hvcnQ=");  // 5 bytes, not 16
  r = websocket_handshake_response(h);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 400);

  h = upgrade_request();
  h.erase(boost::beast::http::field::sec_websocket_key);
  EXPECT_FALSE(websocket_handshake_response(h).ok());
}

TEST(WebSocketFraming, EncodesUnmaskedServerFrames) {
  // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
  EXPECT_EQ(encode_frame(WsOpcode::kText, "Hello"), std::string("\x81\x05Hello", 7));
  // 16-bit and 64-bit extended lengths.
  const std::string medium = encode_frame(WsOpcode::kBinary, std::string(256, 'x'));
  EXPECT_EQ(static_cast<std::uint8_t>(medium[1]), 126);
  EXPECT_EQ(static_cast<std::uint8_t>(medium[2]), 0x01);
  EXPECT_EQ(static_cast<std::uint8_t>(medium[3]), 0x00);
  EXPECT_EQ(medium.size(), 4u + 256u);
  const std::string big = encode_frame(WsOpcode::kBinary, std::string(65536, 'y'));
  EXPECT_EQ(static_cast<std::uint8_t>(big[1]), 127);
  EXPECT_EQ(big.size(), 10u + 65536u);
}

TEST(WebSocketFraming, DecodesMaskedClientFrame) {
  // RFC 6455 §5.7: a single-frame masked text message "Hello".
  const std::string wire("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  EXPECT_EQ(encode_frame(WsOpcode::kText, "Hello", true, kMask), wire);
  WsDecoder decoder;
  decoder.feed(wire);
  auto events = drain(decoder);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, WsEvent::Kind::kMessage);
  EXPECT_EQ(events[0].opcode, WsOpcode::kText);
  EXPECT_EQ(events[0].payload, "Hello");
}

TEST(WebSocketFraming, DecodesByteByByteAndLargeLengths) {
  WsDecoder decoder;
  const std::string payload(70000, 'z');
  const std::string wire = encode_frame(WsOpcode::kBinary, payload, true, kMask) +
                           encode_frame(WsOpcode::kText, std::string(300, 'a'), true, kMask);
  std::vector<WsEvent> events;
  for (char c : wire) {
    decoder.feed(std::string_view(&c, 1));
    for (auto& e : drain(decoder)) events.push_back(std::move(e));
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].opcode, WsOpcode::kBinary);
  EXPECT_EQ(events[0].payload, payload);
  EXPECT_EQ(events[1].payload, std::string(300, 'a'));
}

TEST(WebSocketFraming, RejectsUnmaskedClientFrameOnServer) {
  WsDecoder decoder;
  decoder.feed(encode_frame(WsOpcode::kText, "Hello"));
  auto events = drain(decoder);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, WsEvent::Kind::kError);
  EXPECT_EQ(events[0].code, kCloseProtocolError);

  WsDecoder client_side(WsDecoder::Limits{.max_message_bytes = 1024, .require_masked = false});
  client_side.feed(encode_frame(WsOpcode::kText, "Hello"));
  events = drain(client_side);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].payload, "Hello");
}

TEST(WebSocketFraming, ReassemblesFragmentsWithInterleavedPing) {
  // §5.4: control frames may be injected in the middle of a fragmented message.
  WsDecoder decoder;
  decoder.feed(encode_frame(WsOpcode::kText, "Hel", false, kMask));
  decoder.feed(encode_frame(WsOpcode::kPing, "p", true, kMask));
  decoder.feed(encode_frame(WsOpcode::kContinuation, "lo, ", false, kMask));
  decoder.feed(encode_frame(WsOpcode::kContinuation, "world", true, kMask));
  auto events = drain(decoder);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, WsEvent::Kind::kPing);
  EXPECT_EQ(events[0].payload, "p");
  EXPECT_EQ(events[1].kind, WsEvent::Kind::kMessage);
  EXPECT_EQ(events[1].payload, "Hello, world");
}

TEST(WebSocketFraming, FragmentationViolations) {
  {
    WsDecoder decoder;
    decoder.feed(encode_frame(WsOpcode::kContinuation, "x", true, kMask));
    auto events = drain(decoder);
    ASSERT_EQ(events.back().kind, WsEvent::Kind::kError);
    EXPECT_EQ(events.back().code, kCloseProtocolError);
  }
  {
    WsDecoder decoder;
    decoder.feed(encode_frame(WsOpcode::kText, "a", false, kMask));
    decoder.feed(encode_frame(WsOpcode::kText, "b", true, kMask));
    auto events = drain(decoder);
    ASSERT_EQ(events.back().kind, WsEvent::Kind::kError);
    EXPECT_EQ(events.back().code, kCloseProtocolError);
  }
  {
    WsDecoder decoder;
    decoder.feed(encode_frame(WsOpcode::kPing, "x", false, kMask));  // fragmented control
    EXPECT_EQ(drain(decoder).back().code, kCloseProtocolError);
  }
  {
    WsDecoder decoder;
    decoder.feed(encode_frame(WsOpcode::kPing, std::string(126, 'x'), true, kMask));
    EXPECT_EQ(drain(decoder).back().code, kCloseProtocolError);
  }
  {
    WsDecoder decoder;
    std::string frame = encode_frame(WsOpcode::kText, "x", true, kMask);
    frame[0] = static_cast<char>(frame[0] | 0x40);  // RSV1 without an extension
    decoder.feed(frame);
    EXPECT_EQ(drain(decoder).back().code, kCloseProtocolError);
  }
  {
    WsDecoder decoder;
    std::string frame = encode_frame(WsOpcode::kText, "x", true, kMask);
    frame[0] = static_cast<char>(0x83);  // reserved opcode 3
    decoder.feed(frame);
    EXPECT_EQ(drain(decoder).back().code, kCloseProtocolError);
  }
}

TEST(WebSocketFraming, OversizedMessagesAreRejectedBeforeBuffering) {
  WsDecoder decoder(WsDecoder::Limits{.max_message_bytes = 100, .require_masked = true});
  // Only the header of a 1 GiB frame: rejected without waiting for the payload.
  std::string header = encode_frame(WsOpcode::kBinary, std::string(70000, 'x'), true, kMask);
  header[2] = 0;
  header[3] = 0;
  header[4] = 0;
  header[5] = 0;
  header[6] = 0x40;  // length 0x40000000
  header[7] = 0;
  header[8] = 0;
  header[9] = 0;
  decoder.feed(std::string_view(header).substr(0, 14));
  auto events = drain(decoder);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].code, kCloseTooBig);

  // The limit applies to the reassembled message, not only to one frame.
  WsDecoder fragmented(WsDecoder::Limits{.max_message_bytes = 100, .require_masked = true});
  fragmented.feed(encode_frame(WsOpcode::kText, std::string(60, 'a'), false, kMask));
  fragmented.feed(encode_frame(WsOpcode::kContinuation, std::string(60, 'a'), true, kMask));
  EXPECT_EQ(drain(fragmented).back().code, kCloseTooBig);
}

TEST(WebSocketFraming, CloseFramesAndUtf8) {
  {
    WsDecoder decoder;
    decoder.feed(encode_frame(WsOpcode::kClose, close_payload(1000, "bye"), true, kMask));
    auto events = drain(decoder);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, WsEvent::Kind::kClose);
    EXPECT_EQ(events[0].code, 1000);
    EXPECT_EQ(events[0].payload, "bye");
  }
  {
    WsDecoder decoder;
    decoder.feed(encode_frame(WsOpcode::kClose, "", true, kMask));
    EXPECT_EQ(drain(decoder)[0].code, 1005);
  }
  {
    WsDecoder decoder;
    decoder.feed(encode_frame(WsOpcode::kClose, close_payload(1005, ""), true, kMask));
    EXPECT_EQ(drain(decoder)[0].kind, WsEvent::Kind::kError);  // 1005 must not be sent
  }
  {
    WsDecoder decoder;
    decoder.feed(encode_frame(WsOpcode::kText, "\xc3\x28", true, kMask));
    EXPECT_EQ(drain(decoder)[0].code, kCloseInvalidPayload);
  }
  EXPECT_TRUE(is_valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));      // truncated
}

// --- the session over an in-memory connection --------------------------------------------------

class WebSocketSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
    auto [server, client] = testing::PipeStream::make_pair(io_.get_executor());
    client_ = std::move(client);
    WebSocketSession::Options options;
    options.limits.max_message_bytes = 1024;
    options.close_timeout = 200ms;
    session_ = WebSocketSession::create(std::move(server), options);
    session_->start(
        [this](WsOpcode, std::string text) {
          std::lock_guard lock(mutex_);
          messages_.push_back(std::move(text));
        },
        [this](std::uint16_t code) { closed_code_ = code; });
  }
  void TearDown() override {
    client_->close();  // completes the session's pending read, which releases it
    session_.reset();
    work_.reset();
    thread_.join();
    client_.reset();
  }

  // Reads server frames until `count` events are decoded.
  std::vector<WsEvent> read_frames(std::size_t count) {
    std::vector<WsEvent> events;
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (events.size() < count && std::chrono::steady_clock::now() < deadline) {
      client_decoder_.feed(client_->take_written_by_peer(1, 200ms));
      for (auto& e : drain(client_decoder_)) events.push_back(std::move(e));
    }
    return events;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::unique_ptr<testing::PipeStream> client_;
  std::shared_ptr<WebSocketSession> session_;
  WsDecoder client_decoder_{WsDecoder::Limits{.max_message_bytes = 1 << 20, .require_masked = false}};
  std::mutex mutex_;
  std::vector<std::string> messages_;
  std::atomic<int> closed_code_{-1};
};

TEST_F(WebSocketSessionTest, DeliversMessagesAndAnswersPing) {
  client_->write(encode_frame(WsOpcode::kText, "hi", true, kMask), {});
  client_->write(encode_frame(WsOpcode::kPing, "are you there", true, kMask), {});
  auto events = read_frames(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, WsEvent::Kind::kPong);
  EXPECT_EQ(events[0].payload, "are you there");
  std::lock_guard lock(mutex_);
  ASSERT_EQ(messages_.size(), 1u);
  EXPECT_EQ(messages_[0], "hi");
}

TEST_F(WebSocketSessionTest, SendsTextFramesInOrder) {
  for (int i = 0; i < 20; ++i) session_->send_text("{\"i\":" + std::to_string(i) + "}");
  auto events = read_frames(20);
  ASSERT_EQ(events.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(events[i].kind, WsEvent::Kind::kMessage);
    EXPECT_EQ(events[i].payload, "{\"i\":" + std::to_string(i) + "}");
  }
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (session_->pending_bytes() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(session_->pending_bytes(), 0u);
}

TEST_F(WebSocketSessionTest, ClientCloseIsEchoedThenConnectionDropped) {
  client_->write(encode_frame(WsOpcode::kClose, close_payload(1000, "done"), true, kMask), {});
  auto events = read_frames(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, WsEvent::Kind::kClose);
  EXPECT_EQ(events[0].code, 1000);
  EXPECT_TRUE(client_->wait_closed(2s));
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (closed_code_ < 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(closed_code_.load(), 1000);
}

TEST_F(WebSocketSessionTest, ServerCloseWaitsForPeerThenTimesOut) {
  session_->close(kCloseGoingAway, "shutdown");
  auto events = read_frames(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, WsEvent::Kind::kClose);
  EXPECT_EQ(events[0].code, kCloseGoingAway);
  EXPECT_EQ(events[0].payload, "shutdown");
  // The client never answers: the session drops the connection after close_timeout.
  EXPECT_TRUE(client_->wait_closed(2s));
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (closed_code_ < 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(closed_code_.load(), kCloseGoingAway);
  session_->send_text("ignored after close");  // harmless
}

TEST_F(WebSocketSessionTest, ProtocolErrorClosesWith1002) {
  client_->write(encode_frame(WsOpcode::kText, "unmasked"), {});
  auto events = read_frames(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, WsEvent::Kind::kClose);
  EXPECT_EQ(events[0].code, kCloseProtocolError);
  EXPECT_TRUE(client_->wait_closed(2s));
}

TEST_F(WebSocketSessionTest, OversizedMessageClosesWith1009) {
  client_->write(encode_frame(WsOpcode::kText, std::string(2000, 'a'), true, kMask), {});
  auto events = read_frames(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].code, kCloseTooBig);
  EXPECT_TRUE(client_->wait_closed(2s));
}

}  // namespace
}  // namespace dpa::dataplane
