// The testdata backend plugin (id grafana-testdata-datasource): synthetic data, errors, delays,
// resources, streams, admission and conversion, for exercising plugin hosts end to end.
#include "plugins/sdk/data.h"
#include "plugins/sdk/serve.h"
#include "plugins/testdata/kube.h"
#include "plugins/testdata/query.h"
#include "plugins/testdata/resources.h"
#include "plugins/testdata/stats.h"
#include "plugins/testdata/streams.h"

namespace dpa::testdata {
namespace {

class DiagnosticsHandler final : public sdk::CheckHealthHandler, public sdk::CollectMetricsHandler {
 public:
  explicit DiagnosticsHandler(Stats& stats) : stats_(stats) {}

  grpc::Status check_health(const sdk::CallContext&, const pluginv2::CheckHealthRequest& request,
                            pluginv2::CheckHealthResponse& response) override {
    const sdk::DataSourceSettings settings = sdk::datasource_settings(request.plugincontext());
    const bool fail =
        settings.json_data.contains("failHealth") && settings.json_data["failHealth"] == true;
    nlohmann::json details = {{"uid", settings.uid},
                              {"name", settings.name},
                              {"queriesServed", stats_.queries_served.load()}};
    if (!settings.json_data_error.empty()) {
      response.set_status(pluginv2::CheckHealthResponse::ERROR);
      response.set_message("Invalid data source settings: " + settings.json_data_error);
    } else if (fail) {
      response.set_status(pluginv2::CheckHealthResponse::ERROR);
      response.set_message("Data source is failing: jsonData.failHealth is true");
    } else {
      response.set_status(pluginv2::CheckHealthResponse::OK);
      response.set_message("Data source is working");
    }
    response.set_jsondetails(details.dump());
    return grpc::Status::OK;
  }

  grpc::Status collect_metrics(const sdk::CallContext&, const pluginv2::CollectMetricsRequest&,
                               pluginv2::CollectMetricsResponse& response) override {
    response.mutable_metrics()->set_prometheus(stats_.prometheus_text());
    return grpc::Status::OK;
  }

 private:
  Stats& stats_;
};

}  // namespace
}  // namespace dpa::testdata

int main() {
  using namespace dpa::testdata;
  Stats stats;
  QueryHandler query(stats);
  DiagnosticsHandler diagnostics(stats);
  ResourceHandler resources(stats);
  StreamHandler streams(stats);
  AdmissionHandler admission;
  ConversionHandler conversion;

  dpa::sdk::ServeOptions options;
  options.plugin_id = "grafana-testdata-datasource";
  options.query_data = &query;
  options.check_health = &diagnostics;
  options.collect_metrics = &diagnostics;
  options.call_resource = &resources;
  options.stream = &streams;
  options.admission = &admission;
  options.conversion = &conversion;
  return dpa::sdk::serve(options);
}
