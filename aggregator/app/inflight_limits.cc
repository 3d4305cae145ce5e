#include "aggregator/app/inflight_limits.h"

namespace dpa::app {
namespace {

bool is_mutating(const std::string& verb) {
  return verb == "create" || verb == "update" || verb == "patch" || verb == "delete" ||
         verb == "deletecollection";
}

// Takes a slot when fewer than `limit` are taken (0: unlimited).
bool try_acquire(std::atomic<std::size_t>& used, std::size_t limit) {
  std::size_t now = used.load(std::memory_order_relaxed);
  do {
    if (limit > 0 && now >= limit) return false;
  } while (!used.compare_exchange_weak(now, now + 1, std::memory_order_acq_rel));
  return true;
}

}  // namespace

bool is_long_running(const http::Exchange& exchange, const auth::Attributes& attributes) {
  if (attributes.verb == "watch" || attributes.verb == "proxy") return true;
  const std::string& sub = attributes.subresource;
  if (sub == "exec" || sub == "attach" || sub == "portforward" || sub == "log") return true;
  return exchange.header().find(boost::beast::http::field::upgrade) != exchange.header().end();
}

InflightLimits::InflightLimits(std::size_t readonly, std::size_t mutating)
    : readonly_limit_(readonly), mutating_limit_(mutating) {}

bool InflightLimits::admit(http::Exchange& exchange, const auth::Attributes& attributes) {
  if (is_long_running(exchange, attributes)) return true;
  const bool mutating = is_mutating(attributes.verb);
  auto& used = mutating ? mutating_ : readonly_;
  if (!try_acquire(used, mutating ? mutating_limit_ : readonly_limit_)) {
    // kube-apiserver's answer, word for word.
    exchange.respond_error(
        api::ApiError::too_many_requests("Too many requests, please try again later.", 1));
    return false;
  }
  exchange.on_complete([counter = &used](int) { counter->fetch_sub(1, std::memory_order_acq_rel); });
  return true;
}

}  // namespace dpa::app
