// Counters of the testdata plugin, shared by its handlers and exposed by CollectMetrics as
// Prometheus text.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace dpa::testdata {

struct Stats {
  std::atomic<uint64_t> queries_served{0};
  std::atomic<uint64_t> resource_calls{0};
  std::atomic<int64_t> streams_running{0};
  std::atomic<uint64_t> packets_sent{0};

  std::string prometheus_text() const;
};

}  // namespace dpa::testdata
