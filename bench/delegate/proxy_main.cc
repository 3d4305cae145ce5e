// Standalone pass-through proxy for the benchmark, built from the http + delegate libraries only
// (so it does not depend on the aggregator's main.cpp). bench/delegate/run.sh drives it.
//   dpa_bench_proxy --port N --delegate-url URL [--threads T] [--access-log 0|1]
#include "aggregator/delegate/delegate_proxy.h"
#include "aggregator/http/server.h"

#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  int port = 0;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  bool access_log = false;
  std::string url;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--port") port = std::atoi(argv[i + 1]);
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    if (a == "--delegate-url") url = argv[i + 1];
    if (a == "--access-log") access_log = std::string(argv[i + 1]) == "1";
  }
  if (url.empty() || threads < 1) {
    std::fprintf(stderr, "usage: %s --port N --delegate-url URL [--threads T]\n", argv[0]);
    return 2;
  }
  boost::asio::io_context io(threads);
  dpa::delegate::DelegateProxy proxy(io, {.url = url});
  if (!proxy.status()) {
    std::fprintf(stderr, "delegate: %s\n", proxy.status().error().message.c_str());
    return 1;
  }
  dpa::http::ServerOptions options;
  options.port = port;
  options.access_log = access_log;
  dpa::http::Server server(io, options, [&proxy](std::shared_ptr<dpa::http::Exchange> ex) {
    proxy.forward(std::move(ex));
  });
  auto started = server.start();
  if (!started) {
    std::fprintf(stderr, "%s\n", started.error().message.c_str());
    return 1;
  }
  std::printf("listening on %d\n", server.port());
  std::fflush(stdout);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) {
    server.shutdown(std::chrono::seconds(1), [&io] { io.stop(); });
  });
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
}
