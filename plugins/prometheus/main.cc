// The Prometheus backend plugin (id prometheus): queries a Prometheus server's HTTP API.
#include "plugins/prometheus/datasource.h"
#include "plugins/sdk/serve.h"

int main() {
  dpa::prometheus::Datasource datasource;
  dpa::sdk::ServeOptions options;
  options.plugin_id = "prometheus";
  options.query_data = &datasource;
  options.check_health = &datasource;
  options.collect_metrics = &datasource;
  return dpa::sdk::serve(options);
}
