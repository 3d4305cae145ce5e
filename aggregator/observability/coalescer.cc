#include "aggregator/observability/coalescer.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include <utility>

namespace dpa::obs {

Coalescer::Coalescer(boost::asio::any_io_executor executor,
                     std::chrono::steady_clock::duration interval, std::function<void()> run)
    : strand_(boost::asio::make_strand(std::move(executor))),
      timer_(strand_),
      interval_(interval),
      run_(std::move(run)) {}

void Coalescer::request() {
  boost::asio::post(strand_, [this] {
    if (waiting_) return;  // the run already waiting covers this request
    waiting_ = true;
    timer_.expires_at(last_run_ + interval_);
    timer_.async_wait(boost::asio::bind_executor(strand_, [this](boost::system::error_code ec) {
      if (ec) return;
      // From here a request queues behind this run on the strand, and waits for the next one.
      waiting_ = false;
      last_run_ = std::chrono::steady_clock::now();
      run_();
    }));
  });
}

}  // namespace dpa::obs
