// The Prometheus data source: QueryData runs each query's `expr` against the data source URL
// (instant -> /api/v1/query, range -> /api/v1/query_range, basic auth when configured);
// CheckHealth probes /-/ready, then /api/v1/status/buildinfo.
#pragma once

#include "plugins/sdk/handlers.h"

#include <atomic>
#include <chrono>
#include <cstdint>

namespace dpa::prometheus {

inline constexpr auto kRequestTimeout = std::chrono::seconds(30);
inline constexpr auto kHealthTimeout = std::chrono::seconds(5);
inline constexpr int64_t kMaxPointsPerSeries = 11000;  // Prometheus' own limit per range query

class Datasource final : public sdk::QueryDataHandler,
                         public sdk::CheckHealthHandler,
                         public sdk::CollectMetricsHandler {
 public:
  grpc::Status query_data(const sdk::CallContext& ctx, const pluginv2::QueryDataRequest& request,
                          pluginv2::QueryDataResponse& response) override;
  grpc::Status check_health(const sdk::CallContext& ctx,
                            const pluginv2::CheckHealthRequest& request,
                            pluginv2::CheckHealthResponse& response) override;
  grpc::Status collect_metrics(const sdk::CallContext& ctx,
                               const pluginv2::CollectMetricsRequest& request,
                               pluginv2::CollectMetricsResponse& response) override;

 private:
  pluginv2::DataResponse run_query(const pluginv2::QueryDataRequest& request,
                                   const pluginv2::DataQuery& query);

  std::atomic<uint64_t> queries_{0};
  std::atomic<uint64_t> query_errors_{0};
  std::atomic<uint64_t> upstream_requests_{0};
};

// Range query step in seconds: the larger of intervalMs, range/maxDataPoints and
// range/kMaxPointsPerSeries; an explicit `step` (seconds or "<n>s|m|h") wins if larger.
double range_step_seconds(int64_t from_ms, int64_t to_ms, int64_t interval_ms,
                          int64_t max_data_points, double explicit_step_seconds);

}  // namespace dpa::prometheus
