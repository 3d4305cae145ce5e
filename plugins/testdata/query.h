// QueryData of the testdata plugin: one synthetic answer per query, chosen by queryType or the
// query JSON's `scenarioId`/`scenario` (random_walk, table, slow, error, raw_frame, streaming).
#pragma once

#include "plugins/sdk/handlers.h"
#include "plugins/testdata/stats.h"

#include <optional>
#include <string>
#include <string_view>

namespace dpa::testdata {

class QueryHandler final : public sdk::QueryDataHandler {
 public:
  explicit QueryHandler(Stats& stats) : stats_(stats) {}
  grpc::Status query_data(const sdk::CallContext& ctx, const pluginv2::QueryDataRequest& request,
                          pluginv2::QueryDataResponse& response) override;

 private:
  pluginv2::DataResponse answer(const sdk::CallContext& ctx, const pluginv2::PluginContext& plugin,
                                const pluginv2::DataQuery& query);
  Stats& stats_;
};

// Decodes standard base64 (padding optional, whitespace ignored); nullopt on bad input.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace dpa::testdata
