// Overload protection (DESIGN §8), kube-apiserver's max-in-flight filter: at most `readonly`
// non-mutating and `mutating` mutating requests are served at once; past that a request gets 429
// Too Many Requests with Retry-After, at once, instead of queueing behind the others.
// Long-running requests (watches, stream subscriptions, upgraded connections, log follows) are
// not counted: they hold a connection, not the server. Per-datasource bounds live in the data
// plane (DataPlaneOptions::max_datasource_inflight).
#pragma once

#include "aggregator/auth/auth.h"
#include "aggregator/http/exchange.h"

#include <atomic>
#include <cstddef>

namespace dpa::app {

class InflightLimits {
 public:
  InflightLimits(std::size_t readonly, std::size_t mutating);  // 0: no limit

  // True when the request may go on (its slot is given back when the exchange completes);
  // false when it was answered with 429.
  bool admit(http::Exchange& exchange, const auth::Attributes& attributes);

 private:
  const std::size_t readonly_limit_, mutating_limit_;
  std::atomic<std::size_t> readonly_{0}, mutating_{0};
};

// Whether a request holds its connection open for as long as the client likes.
bool is_long_running(const http::Exchange& exchange, const auth::Attributes& attributes);

}  // namespace dpa::app
