// What an upstream (the delegate, a datasource's URL, a discovery endpoint) answers, as the HTTP
// client (aggregator/http/client.*) parses it: status lines, interim responses, headers,
// Content-Length, chunked and close-delimited bodies, 101. A server on 127.0.0.1 reads one request
// and writes the input as the response, then closes; the call must end with a response or an
// error, never crash or hang.
//
// The first byte chooses how the response is consumed, the rest is the response:
//   bits 0-1  0, 1: fetch() (whole body, limit 4 KiB); 2: read_head, take_buffered_body, then
//             read_body_some; 3: read_head, read_body_some
//   bits 2-3  method: GET, HEAD (no body expected), POST with a body, PUT with a streamed
//             chunked body
//   bit 4     a 101 head is taken as an upgraded stream and read until it ends
#include "aggregator/http/client.h"
#include "tests/fuzz/loopback.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace {

using namespace dpa;

// Whether the request (head, and body when it has one) has been read whole.
bool request_complete(std::string_view bytes) {
  const auto end = bytes.find("\r\n\r\n");
  if (end == std::string_view::npos) return false;
  const std::string_view head = bytes.substr(0, end);
  if (head.find("Transfer-Encoding: chunked") != std::string_view::npos) {
    return bytes.find("0\r\n\r\n", end + 4) != std::string_view::npos;
  }
  if (head.find("Content-Length: 4\r") != std::string_view::npos ||
      head.ends_with("Content-Length: 4")) {
    return bytes.size() >= end + 4 + 4;
  }
  return true;
}

struct Outcome {
  bool done = false;
};

void read_body(std::shared_ptr<http::ClientCall> call, std::shared_ptr<Outcome> outcome) {
  call->read_body_some([call, outcome](bool ok, std::string chunk, bool last) {
    fuzz::show(ok ? "a body chunk" : "read_body_some failed", chunk);
    if (!ok || last) {
      outcome->done = true;
      return;
    }
    read_body(call, outcome);
  });
}

void read_upgraded(std::shared_ptr<http::ByteStream> stream, std::shared_ptr<Outcome> outcome) {
  stream->read_some([stream, outcome](bool ok, std::string) {
    if (!ok) {
      stream->close();
      outcome->done = true;
      return;
    }
    read_upgraded(stream, outcome);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static auto* upstream = new fuzz::ScriptedServer();
  const std::uint8_t mode = data[0];
  upstream->serve_once(request_complete,
                       std::string(reinterpret_cast<const char*>(data) + 1, size - 1));

  http::Endpoint endpoint;
  endpoint.host = "127.0.0.1";
  endpoint.port = static_cast<std::uint16_t>(upstream->port());
  http::ClientRequest request;
  request.target = "/apis/example.com/v1/things?watch=false";
  // No request timeout: the server always closes, so the call must end without one (a timer
  // would also keep a finished call, and its connection, until it fired).
  switch ((mode >> 2) & 3) {
    case 0:
      break;
    case 1:
      request.method = "HEAD";
      break;
    case 2:
      request.method = "POST";
      request.body = "{}\r\n";
      break;
    case 3:
      request.method = "PUT";
      request.body_streamed = true;
      request.body_chunked = true;
      break;
  }
  const bool take_upgrade = (mode & 0x10) != 0;

  auto client = std::make_unique<http::HttpClient>(http::ClientOptions{});
  auto outcome = std::make_shared<Outcome>();
  const auto executor = fuzz::io().get_executor();
  std::shared_ptr<http::ClientCall> call;
  if ((mode & 3) < 2 && !request.body_streamed) {
    client->fetch(endpoint, request, 4096, executor,
                  [outcome](api::Expected<http::Response> response) {
                    fuzz::show("fetch", response ? std::to_string(response->status) + " " +
                                                       response->body
                                                 : response.error().message);
                    outcome->done = true;
                  });
  } else {
    call = client->start(endpoint, request, executor);
    if (request.body_streamed) {
      call->write_body("{}", false, {});
      call->write_body("", true, {});
    }
    const bool buffered = (mode & 3) == 2;
    call->read_head([call, outcome, buffered, take_upgrade](api::Outcome head) {
      if (!head) {
        fuzz::show("read_head", head.error().message);
        outcome->done = true;
        return;
      }
      fuzz::show("read_head", std::to_string(call->copy_head().status));
      if (call->head().result_int() == 101 && take_upgrade) {
        std::shared_ptr<http::ByteStream> stream = call->take_upgraded();
        if (!stream) {
          outcome->done = true;
          return;
        }
        return read_upgraded(stream, outcome);
      }
      if (buffered && call->take_buffered_body()) {
        outcome->done = true;
        return;
      }
      read_body(call, outcome);
    });
  }
  if (!fuzz::run_until([&] { return outcome->done; })) {
    fuzz::hang("the client call did not complete", upstream->state());
  }
  // Done with the call, as a proxy is when its client leaves: the connection is closed unless
  // it went back to the pool.
  if (call) call->cancel();
  call.reset();
  client.reset();  // closes a pooled connection, which ends the server's side
  if (!fuzz::run_until([&] { return upstream->done(); })) {
    fuzz::hang("the client did not close its connection", upstream->state());
  }
  fuzz::show("the client's request", upstream->received());
  return 0;
}
