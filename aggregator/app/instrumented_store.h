// A Store decorator that feeds the store metrics (operation latency, errors, open watches) without
// the storage component knowing about Prometheus.
#pragma once

#include "aggregator/observability/metrics.h"
#include "aggregator/storage/store.h"

#include <memory>

namespace dpa::app {

class InstrumentedStore : public storage::Store {
 public:
  InstrumentedStore(std::unique_ptr<storage::Store> inner, obs::Metrics& metrics)
      : inner_(std::move(inner)), metrics_(metrics) {}

  api::Expected<storage::Record> get(const std::string& key) const override;
  api::Expected<storage::ListResult> list(const storage::ListOptions& options) const override;
  int64_t current_revision() const override { return inner_->current_revision(); }
  int64_t compacted_revision() const override { return inner_->compacted_revision(); }
  api::Expected<storage::Record> create(const std::string& key, const std::string& value) override;
  api::Expected<storage::Record> update(const std::string& key, const std::string& value,
                                        int64_t expected_mod_revision) override;
  api::Expected<storage::Record> remove(const std::string& key,
                                        int64_t expected_mod_revision) override;
  api::Outcome compact(int64_t revision) override;
  api::Expected<std::unique_ptr<storage::Watch>> watch(const std::string& prefix,
                                                       int64_t after_revision,
                                                       storage::WatchCallback callback,
                                                       storage::ProgressCallback on_progress = {}) override;

 private:
  std::unique_ptr<storage::Store> inner_;
  obs::Metrics& metrics_;
};

}  // namespace dpa::app
