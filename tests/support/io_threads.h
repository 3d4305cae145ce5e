// An io_context run by background threads for the lifetime of the object, for tests that need
// asynchronous work going on while the test body blocks. IoThreads(1) is one of the aggregator's
// I/O threads: one context, one thread, run under the same containment (an escaped exception is
// reported and the thread goes on).
#pragma once

#include "aggregator/observability/containment.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <thread>
#include <vector>

namespace dpa::testing {

class IoThreads {
 public:
  explicit IoThreads(int threads = 2) : guard_(boost::asio::make_work_guard(io_)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { obs::run_contained(io_, "test I/O thread"); });
  }
  ~IoThreads() { stop(); }
  void stop() {
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  boost::asio::io_context& io() { return io_; }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }

  // Lets run() return once no operation is pending (the threads then end by themselves).
  void release() { guard_.reset(); }
  // True once run() has returned on its own (after release(): nothing was left pending).
  bool finished_within(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!io_.stopped() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return io_.stopped();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

}  // namespace dpa::testing
