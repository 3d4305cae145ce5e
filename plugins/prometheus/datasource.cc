#include "plugins/prometheus/datasource.h"

#include "plugins/prometheus/convert.h"
#include "plugins/prometheus/http_client.h"
#include "plugins/sdk/data.h"
#include "plugins/sdk/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

namespace dpa::prometheus {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr int64_t kDefaultIntervalMs = 15000;
constexpr int64_t kDefaultMaxDataPoints = 1000;

// Epoch milliseconds as Prometheus' decimal seconds ("1700000000.123").
std::string seconds_text(int64_t ms) {
  char buf[64];
  const int64_t whole = ms / 1000;
  const int64_t frac = std::llabs(ms % 1000);
  std::snprintf(buf, sizeof buf, "%s%lld.%03lld", ms < 0 && whole == 0 ? "-" : "",
                static_cast<long long>(whole), static_cast<long long>(frac));
  return buf;
}

std::string step_text(double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", seconds);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// `step` as a number of seconds or a duration string ("30s", "1m", "2h", "500ms"); 0 if absent.
double explicit_step(const nlohmann::json& q) {
  const auto it = q.find("step");
  if (it == q.end()) return 0;
  if (it->is_number()) return std::max(0.0, it->get<double>());
  if (!it->is_string()) return 0;
  const std::string s = it->get<std::string>();
  char* end = nullptr;
  const double n = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(n) || n <= 0) return 0;
  const std::string unit = end;
  if (unit.empty() || unit == "s") return n;
  if (unit == "ms") return n / 1000.0;
  if (unit == "m") return n * 60.0;
  if (unit == "h") return n * 3600.0;
  if (unit == "d") return n * 86400.0;
  return 0;
}

bool json_true(const nlohmann::json& q, const char* key) {
  const auto it = q.find(key);
  return it != q.end() && *it == true;
}

// Authentication headers for calls to the data source: basic auth, custom headers
// (jsonData.httpHeaderNameN + secureJsonData.httpHeaderValueN) and OAuth pass-through.
Headers auth_headers(const sdk::DataSourceSettings& s,
                     const google::protobuf::Map<std::string, std::string>* forwarded) {
  Headers headers;
  if (s.basic_auth_enabled) {
    const auto pw = s.secure_json_data.find("basicAuthPassword");
    const std::string password = pw == s.secure_json_data.end() ? "" : pw->second;
    headers.emplace_back("Authorization", "Basic " + base64_encode(s.basic_auth_user + ":" + password));
  }
  for (int i = 1;; ++i) {
    const std::string key = "httpHeaderName" + std::to_string(i);
    const auto name = s.json_data.find(key);
    if (name == s.json_data.end() || !name->is_string()) break;
    const auto value = s.secure_json_data.find("httpHeaderValue" + std::to_string(i));
    headers.emplace_back(name->get<std::string>(),
                         value == s.secure_json_data.end() ? "" : value->second);
  }
  if (forwarded != nullptr && json_true(s.json_data, "oauthPassThru")) {
    if (auto token = sdk::forwarded_header(*forwarded, "Authorization")) {
      headers.emplace_back("Authorization", *token);
    }
  }
  return headers;
}

}  // namespace

double range_step_seconds(int64_t from_ms, int64_t to_ms, int64_t interval_ms,
                          int64_t max_data_points, double explicit_step_seconds) {
  const double range_s = static_cast<double>(std::max<int64_t>(0, to_ms - from_ms)) / 1000.0;
  double step = static_cast<double>(interval_ms > 0 ? interval_ms : kDefaultIntervalMs) / 1000.0;
  const int64_t points = max_data_points > 0 ? max_data_points : kDefaultMaxDataPoints;
  step = std::max(step, range_s / static_cast<double>(points));
  step = std::max(step, range_s / static_cast<double>(kMaxPointsPerSeries));
  step = std::max(step, explicit_step_seconds);
  // Prometheus rejects a zero step; round up to whole milliseconds.
  return std::max(0.001, std::ceil(step * 1000.0) / 1000.0);
}

grpc::Status Datasource::query_data(const sdk::CallContext& ctx,
                                    const pluginv2::QueryDataRequest& request,
                                    pluginv2::QueryDataResponse& response) {
  for (const auto& query : request.queries()) {
    if (ctx.cancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "query cancelled");
    queries_.fetch_add(1);
    pluginv2::DataResponse answer = run_query(request, query);
    if (!answer.error().empty()) query_errors_.fetch_add(1);
    (*response.mutable_responses())[query.refid()] = std::move(answer);
  }
  return grpc::Status::OK;
}

pluginv2::DataResponse Datasource::run_query(const pluginv2::QueryDataRequest& request,
                                             const pluginv2::DataQuery& query) {
  const sdk::JsonResult parsed = sdk::query_json(query);
  if (!parsed.ok()) return sdk::error_response(400, parsed.error);
  const nlohmann::json& q = parsed.value;
  const auto expr_it = q.find("expr");
  const std::string expr = expr_it != q.end() && expr_it->is_string() ? expr_it->get<std::string>() : "";
  if (expr.empty()) return sdk::error_response(400, "query " + query.refid() + ": expr is empty");

  const sdk::DataSourceSettings settings = sdk::datasource_settings(request.plugincontext());
  const auto [base, url_error] = parse_url(settings.url);
  if (!url_error.empty()) return sdk::error_response(400, "data source URL: " + url_error);
  const Headers headers = auth_headers(settings, &request.headers());

  const bool instant = json_true(q, "instant");
  const bool range = json_true(q, "range") || !instant;
  const int64_t from_ms = query.timerange().fromepochms();
  const int64_t to_ms = query.timerange().toepochms();

  std::vector<frames::Frame> frames;
  auto fetch = [&](const std::string& target) -> std::optional<pluginv2::DataResponse> {
    upstream_requests_.fetch_add(1);
    const HttpResult http = http_get(base, target, headers, kRequestTimeout);
    if (!http.ok()) {
      sdk::log_warn("prometheus request failed", {{"target", target}, {"error", http.error}});
      return sdk::error_response(502, "Prometheus request failed: " + http.error,
                                 sdk::ErrorSource::kDownstream);
    }
    Converted converted = convert_response(http.status, http.body, expr);
    if (!converted.ok()) {
      return sdk::error_response(converted.status, converted.error, sdk::ErrorSource::kDownstream);
    }
    for (auto& f : converted.frames) frames.push_back(std::move(f));
    return std::nullopt;
  };

  if (range) {
    const auto json_interval = q.find("intervalMs");
    const int64_t interval_ms =
        query.intervalms() > 0 ? query.intervalms()
        : json_interval != q.end() && json_interval->is_number_integer() ? json_interval->get<int64_t>()
                                                                         : 0;
    const double step =
        range_step_seconds(from_ms, to_ms, interval_ms, query.maxdatapoints(), explicit_step(q));
    if (auto failed = fetch("/api/v1/query_range?query=" + url_encode(expr) +
                            "&start=" + seconds_text(from_ms) + "&end=" + seconds_text(to_ms) +
                            "&step=" + step_text(step))) {
      return *failed;
    }
  }
  if (instant) {
    if (auto failed = fetch("/api/v1/query?query=" + url_encode(expr) + "&time=" + seconds_text(to_ms))) {
      return *failed;
    }
  }
  return sdk::frames_response(std::move(frames), query.refid());
}

grpc::Status Datasource::check_health(const sdk::CallContext&,
                                      const pluginv2::CheckHealthRequest& request,
                                      pluginv2::CheckHealthResponse& response) {
  const sdk::DataSourceSettings settings = sdk::datasource_settings(request.plugincontext());
  const auto [base, url_error] = parse_url(settings.url);
  if (settings.url.empty() || !url_error.empty()) {
    response.set_status(pluginv2::CheckHealthResponse::ERROR);
    response.set_message(settings.url.empty() ? "No Prometheus URL configured" : url_error);
    return grpc::Status::OK;
  }
  const Headers headers = auth_headers(settings, &request.headers());
  std::string last_problem;
  for (const char* probe : {"/-/ready", "/api/v1/status/buildinfo"}) {
    upstream_requests_.fetch_add(1);
    const HttpResult http = http_get(base, probe, headers, kHealthTimeout);
    if (http.ok() && http.status == 200) {
      response.set_status(pluginv2::CheckHealthResponse::OK);
      response.set_message("Successfully queried the Prometheus API.");
      response.set_jsondetails(nlohmann::json{{"url", settings.url}, {"probe", probe}}.dump());
      return grpc::Status::OK;
    }
    last_problem = http.ok() ? std::string(probe) + " answered HTTP " + std::to_string(http.status)
                             : std::string(probe) + ": " + http.error;
  }
  response.set_status(pluginv2::CheckHealthResponse::ERROR);
  response.set_message("Prometheus is not reachable: " + last_problem);
  response.set_jsondetails(nlohmann::json{{"url", settings.url}}.dump());
  return grpc::Status::OK;
}

grpc::Status Datasource::collect_metrics(const sdk::CallContext&,
                                         const pluginv2::CollectMetricsRequest&,
                                         pluginv2::CollectMetricsResponse& response) {
  std::string text;
  auto counter = [&text](const char* name, const char* help, uint64_t value) {
    text += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
            " " + std::to_string(value) + "\n";
  };
  counter("prometheus_plugin_queries_total", "Data queries handled (one per refId).", queries_.load());
  counter("prometheus_plugin_query_errors_total", "Data queries answered with an error.",
          query_errors_.load());
  counter("prometheus_plugin_upstream_requests_total", "HTTP requests sent to Prometheus.",
          upstream_requests_.load());
  response.mutable_metrics()->set_prometheus(text);
  return grpc::Status::OK;
}

}  // namespace dpa::prometheus
