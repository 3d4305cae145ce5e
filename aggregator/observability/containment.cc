#include "aggregator/observability/containment.h"

#include "aggregator/observability/log.h"

#include <atomic>
#include <string>

namespace dpa::obs {
namespace {

std::atomic<std::uint64_t> g_escaped{0};

std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace

void report_escaped_exception(std::string_view where, std::exception_ptr error) noexcept {
  g_escaped.fetch_add(1, std::memory_order_relaxed);
  try {
    obs::error("escaped exception", {{"where", where}, {"error", describe(error)}});
  } catch (...) {
    // Out of memory while logging: the count above is all that can be kept.
  }
}

std::uint64_t escaped_exceptions() noexcept { return g_escaped.load(std::memory_order_relaxed); }

void run_contained(boost::asio::io_context& io, std::string_view where) noexcept {
  for (;;) {
    try {
      io.run();
      return;
    } catch (...) {
      report_escaped_exception(where, std::current_exception());
    }
  }
}

WorkerPool::WorkerPool(std::size_t threads, std::string name)
    : io_(static_cast<int>(threads)), work_(io_.get_executor()), name_(std::move(name)) {
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { run_contained(io_, name_); });
  }
}

WorkerPool::~WorkerPool() { join(); }

void WorkerPool::join() {
  work_.reset();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace dpa::obs
