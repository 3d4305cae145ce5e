// Raw bytes from a client through the real HTTP/1.1 server (aggregator/http/server.*, session.*):
// request heads, pipelined requests, Content-Length and chunked bodies, Expect, absolute-form
// targets, garbage. The input is sent on one connection to a server on 127.0.0.1, then the
// connection is half-closed and the reply read until the server closes it. The handler answers
// by path so bodies are read whole, read in pieces, ignored, or answered with a stream:
//   /body...   read_body (limit 4 KiB), answers with the body's size
//   /some...   read_body_some until the last piece, answers with the total
//   /stream... a chunked response of two writes
//   /query...  echoes a decoded query parameter
//   otherwise  answers at once without reading the body
// One server for the whole run; its timeouts are short so a stalled input ends quickly.
#include "aggregator/http/server.h"
#include "tests/fuzz/loopback.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace {

using namespace dpa;

void read_in_pieces(std::shared_ptr<http::Exchange> exchange, std::shared_ptr<std::size_t> total) {
  exchange->read_body_some([exchange, total](bool ok, std::string chunk, bool last) {
    if (!ok) {
      exchange->respond(http::Response::text(400, "body read failed"));
      return;
    }
    *total += chunk.size();
    if (!last) return read_in_pieces(exchange, total);
    exchange->respond(http::Response::text(200, std::to_string(*total)));
  });
}

void handle(std::shared_ptr<http::Exchange> exchange) {
  const std::string_view path = exchange->path();
  if (path.starts_with("/body")) {
    exchange->read_body(4096, [exchange](api::Expected<std::string> body) {
      if (!body) return exchange->respond_error(body.error());
      exchange->respond(http::Response::text(200, std::to_string(body->size())));
    });
  } else if (path.starts_with("/some")) {
    read_in_pieces(exchange, std::make_shared<std::size_t>(0));
  } else if (path.starts_with("/stream")) {
    exchange->begin_stream({200, {{"Content-Type", "application/x-ndjson"}}});
    exchange->write("{\"a\":1}\n");
    exchange->write("{\"b\":2}\n", [exchange](bool) { exchange->finish(); });
  } else if (path.starts_with("/query")) {
    std::string value = exchange->has_query_param("a") ? exchange->query_param("a") : "-";
    exchange->respond(http::Response::text(200, value + "|" + exchange->request_id()));
  } else {
    exchange->respond(http::Response::text(200, std::string(path)));
  }
}

int server_port() {
  static http::Server* server = fuzz::serve(handle);
  return server->port();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int port = server_port();
  (void)fuzz::send_and_read(port, std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
