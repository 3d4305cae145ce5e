#include "aggregator/app/instrumented_store.h"

#include <chrono>

namespace dpa::app {
namespace {

// Times one call and records it under `operation`.
template <class F>
auto timed(obs::Metrics& metrics, const char* operation, F&& call) {
  auto start = std::chrono::steady_clock::now();
  auto result = call();
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  metrics.observe_store_operation(operation, elapsed.count(), result.ok());
  return result;
}

// Keeps the open-watches gauge right for the lifetime of one watch.
class CountedWatch : public storage::Watch {
 public:
  CountedWatch(std::unique_ptr<storage::Watch> inner, prometheus::Gauge& gauge)
      : inner_(std::move(inner)), gauge_(gauge) {
    gauge_.Increment();
  }
  ~CountedWatch() override {
    inner_.reset();
    gauge_.Decrement();
  }
  void cancel() override { inner_->cancel(); }

 private:
  std::unique_ptr<storage::Watch> inner_;
  prometheus::Gauge& gauge_;
};

}  // namespace

api::Expected<storage::Record> InstrumentedStore::get(const std::string& key) const {
  return timed(metrics_, "get", [&] { return inner_->get(key); });
}

api::Expected<storage::ListResult> InstrumentedStore::list(
    const storage::ListOptions& options) const {
  return timed(metrics_, "list", [&] { return inner_->list(options); });
}

api::Expected<storage::Record> InstrumentedStore::create(const std::string& key,
                                                         const std::string& value) {
  return timed(metrics_, "create", [&] { return inner_->create(key, value); });
}

api::Expected<storage::Record> InstrumentedStore::update(const std::string& key,
                                                         const std::string& value,
                                                         int64_t expected_mod_revision) {
  return timed(metrics_, "update",
               [&] { return inner_->update(key, value, expected_mod_revision); });
}

api::Expected<storage::Record> InstrumentedStore::remove(const std::string& key,
                                                         int64_t expected_mod_revision) {
  return timed(metrics_, "delete", [&] { return inner_->remove(key, expected_mod_revision); });
}

api::Outcome InstrumentedStore::compact(int64_t revision) {
  return timed(metrics_, "compact", [&] { return inner_->compact(revision); });
}

api::Expected<std::unique_ptr<storage::Watch>> InstrumentedStore::watch(
    const std::string& prefix, int64_t after_revision, storage::WatchCallback callback,
    storage::ProgressCallback on_progress) {
  auto watch = inner_->watch(prefix, after_revision, std::move(callback), std::move(on_progress));
  if (!watch.ok()) return std::move(watch).error();
  return std::unique_ptr<storage::Watch>(
      std::make_unique<CountedWatch>(std::move(watch).value(), metrics_.open_watches()));
}

}  // namespace dpa::app
