// Runs a job after changes, once per burst of them: request() asks for a run, a request while one
// is waiting joins it, and one made during a run asks for another after it. Runs are at least
// `interval` apart (measured start to start), never overlap, and the last request is always
// followed by a complete run. For derived state recomputed from everything (the datasource
// exchange document reads every service) where a burst of 10,000 changes must not cost 10,000
// recomputations.
//
// Thread-safe. Runs go on `executor` (through a strand). Destroy it only once that executor has
// run out of work (a joined WorkerPool): a run or a wait still queued refers to it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>

namespace dpa::obs {

class Coalescer {
 public:
  Coalescer(boost::asio::any_io_executor executor, std::chrono::steady_clock::duration interval,
            std::function<void()> run);
  Coalescer(const Coalescer&) = delete;
  Coalescer& operator=(const Coalescer&) = delete;

  void request();

 private:
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer timer_;
  const std::chrono::steady_clock::duration interval_;
  const std::function<void()> run_;
  // On strand_ only.
  bool waiting_ = false;
  std::chrono::steady_clock::time_point last_run_{};
};

}  // namespace dpa::obs
