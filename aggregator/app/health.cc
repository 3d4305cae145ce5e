#include "aggregator/app/health.h"

namespace dpa::app {

void HealthChecks::add_liveness(std::string name, Check check) {
  std::lock_guard<std::mutex> lock(mutex_);
  liveness_.push_back({std::move(name), std::move(check)});
}

void HealthChecks::add_readiness(std::string name, Check check) {
  std::lock_guard<std::mutex> lock(mutex_);
  readiness_.push_back({std::move(name), std::move(check)});
}

void HealthChecks::add_report(std::string name, Report report) {
  std::lock_guard<std::mutex> lock(mutex_);
  reports_.emplace_back(std::move(name), std::move(report));
}

void HealthChecks::handle(http::Exchange& exchange) const {
  std::string_view path = exchange.path();
  std::string_view endpoint = path.substr(0, path.find('/', 1));
  std::string_view only;
  if (endpoint.size() < path.size()) only = path.substr(endpoint.size() + 1);

  std::vector<Named> checks;
  std::vector<std::pair<std::string, Report>> reports;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    checks = liveness_;
    if (endpoint != "/livez") checks.insert(checks.end(), readiness_.begin(), readiness_.end());
    if (endpoint == "/readyz" && only.empty()) reports = reports_;
  }
  const bool verbose = exchange.has_query_param("verbose");
  const std::string exclude = exchange.query_param("exclude");

  std::string report;
  bool healthy = true;
  bool found = only.empty();
  for (const auto& named : checks) {
    if (!only.empty() && named.name != only) continue;
    if (named.name == exclude) {
      report += "[+]" + named.name + " excluded: ok\n";
      continue;
    }
    found = true;
    std::string reason = named.check();
    if (reason.empty()) {
      report += "[+]" + named.name + " ok\n";
    } else {
      healthy = false;
      report += "[-]" + named.name + " failed: " + reason + "\n";
    }
  }
  if (!found) {
    exchange.respond_error(
        api::ApiError::not_found("no health check named \"" + std::string(only) + "\""));
    return;
  }
  if (verbose) {
    for (const auto& [report_name, report_fn] : reports) {
      for (const auto& [entry, detail] : report_fn()) {
        report += "[+]" + report_name + "/" + entry + " ok: " + detail + "\n";
      }
    }
  }
  std::string name(endpoint.substr(1));
  if (healthy) {
    exchange.respond(http::Response::text(
        200, verbose ? report + name + " check passed\n" : std::string("ok")));
  } else {
    exchange.respond(http::Response::text(503, report + name + " check failed\n"));
  }
}

}  // namespace dpa::app
