// The process's last line of defence (DESIGN §8): an exception that escapes a handler, a callback
// or a completion must not end the process. Where one is caught it is reported here (one error
// log line and one count, served as dataplane_aggregator_handler_panics_total) and the thread
// that caught it goes on working.
//
// Two kinds of boundary use it: every thread's event loop (run_contained: an io_context's run(),
// re-entered after each escape) and the few places that call outside code on a thread we do not
// own (gRPC completion threads: contain()). Requests whose handler threw are answered by the HTTP
// layer when it drops the last reference to the exchange (server.h).
#pragma once

#include <boost/asio/io_context.hpp>

#include <boost/asio/executor_work_guard.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace dpa::obs {

// Logs "escaped exception" with `where` and the exception's text, and counts it.
void report_escaped_exception(std::string_view where, std::exception_ptr error) noexcept;
// Exceptions reported since the process started.
std::uint64_t escaped_exceptions() noexcept;

// Calls fn(); an exception it throws is reported and swallowed.
template <class Fn>
void contain(std::string_view where, Fn&& fn) noexcept {
  try {
    std::forward<Fn>(fn)();
  } catch (...) {
    report_escaped_exception(where, std::current_exception());
  }
}

// io.run() until it returns normally (stopped or out of work). A handler that throws is reported
// and the loop re-entered (Asio allows run() to be called again after an exception escaped it).
void run_contained(boost::asio::io_context& io, std::string_view where) noexcept;

// A fixed set of threads running one io_context under run_contained: what asio::thread_pool
// does, except that a throwing handler is reported instead of ending the process (thread_pool
// lets the exception leave the thread, which calls std::terminate).
class WorkerPool {
 public:
  WorkerPool(std::size_t threads, std::string name);
  ~WorkerPool();  // join()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  boost::asio::io_context::executor_type get_executor() { return io_.get_executor(); }
  // Runs what is queued (and what that queues) to completion, then joins the threads.
  void join();

 private:
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::string name_;
  std::vector<std::thread> threads_;
};

}  // namespace dpa::obs
