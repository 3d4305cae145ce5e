#include "plugins/prometheus/convert.h"

#include "plugins/sdk/data.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>

namespace dpa::prometheus {
namespace {

using nlohmann::json;

// Prometheus timestamps are seconds with millisecond precision; round to ms, then to ns.
bool sample_time_ns(const json& ts, int64_t& out) {
  if (!ts.is_number()) return false;
  const double seconds = ts.get<double>();
  if (!std::isfinite(seconds)) return false;
  out = static_cast<int64_t>(std::llround(seconds * 1000.0)) * 1000000;
  return true;
}

bool sample(const json& pair, int64_t& time_ns, double& value) {
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_string()) return false;
  if (!sample_time_ns(pair[0], time_ns)) return false;
  value = parse_sample_value(pair[1].get<std::string>());
  return true;
}

frames::Frame series_frame(const json& metric, const std::string& expr,
                           std::vector<int64_t> times, std::vector<double> values) {
  std::map<std::string, std::string> labels;
  if (metric.is_object()) {
    for (auto it = metric.begin(); it != metric.end(); ++it) {
      if (it.value().is_string()) labels[it.key()] = it.value().get<std::string>();
    }
  }
  frames::Frame frame;
  const auto name = labels.find("__name__");
  frame.name = name != labels.end() ? name->second : expr;
  frame.meta = nlohmann::ordered_json{{"type", "timeseries-multi"},
                                      {"typeVersion", {0, 1}},
                                      {"executedQueryString", "Expr: " + expr}};
  frame.fields.push_back(sdk::time_field("Time", std::move(times)));
  frame.fields.push_back(sdk::float64_field("Value", std::move(values), std::move(labels)));
  return frame;
}

std::string string_at(const json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

Converted failure(int status, std::string message) {
  Converted c;
  c.status = status;
  c.error = std::move(message);
  return c;
}

}  // namespace

double parse_sample_value(const std::string& text) {
  // strtod understands NaN, Inf, +Inf and -Inf (case-insensitively), which is what Prometheus
  // writes for its special values.
  const char* begin = text.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0') return std::numeric_limits<double>::quiet_NaN();
  return v;
}

Converted convert_response(int http_status, std::string_view body, const std::string& expr) {
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    // Not the API's JSON (a proxy error page, a wrong URL): the server is at fault.
    const int status = http_status >= 400 ? http_status : 502;
    return failure(status, "Prometheus answered HTTP " + std::to_string(http_status) +
                               " without a JSON body");
  }
  if (string_at(doc, "status") != "success") {
    std::string message = string_at(doc, "error");
    const std::string type = string_at(doc, "errorType");
    if (message.empty()) message = "Prometheus query failed";
    if (!type.empty()) message = type + ": " + message;
    // bad_data is 400, execution errors 422, unavailable 503; keep Prometheus' own status.
    const int status = http_status >= 400 && http_status <= 599 ? http_status : 500;
    return failure(status, message);
  }
  const json& data = doc.contains("data") ? doc["data"] : json();
  const std::string type = string_at(data, "resultType");
  const json& result = data.is_object() && data.contains("result") ? data["result"] : json();
  if (!result.is_array()) return failure(502, "Prometheus response has no data.result array");

  Converted out;
  if (type == "matrix") {
    for (const auto& series : result) {
      if (!series.is_object()) continue;
      std::vector<int64_t> times;
      std::vector<double> values;
      const auto it = series.find("values");
      if (it != series.end() && it->is_array()) {
        times.reserve(it->size());
        values.reserve(it->size());
        for (const auto& pair : *it) {
          int64_t t;
          double v;
          if (!sample(pair, t, v)) return failure(502, "malformed sample in Prometheus matrix");
          times.push_back(t);
          values.push_back(v);
        }
      }
      out.frames.push_back(series_frame(series.contains("metric") ? series["metric"] : json::object(), expr,
                                        std::move(times), std::move(values)));
    }
  } else if (type == "vector") {
    for (const auto& series : result) {
      if (!series.is_object()) continue;
      int64_t t;
      double v;
      if (!series.contains("value") || !sample(series["value"], t, v)) {
        return failure(502, "malformed sample in Prometheus vector");
      }
      out.frames.push_back(series_frame(series.contains("metric") ? series["metric"] : json::object(), expr, {t}, {v}));
    }
  } else if (type == "scalar") {
    int64_t t;
    double v;
    if (!sample(result, t, v)) return failure(502, "malformed Prometheus scalar");
    out.frames.push_back(series_frame(json::object(), expr, {t}, {v}));
  } else {
    return failure(502, "unsupported Prometheus result type \"" + type + "\"");
  }
  return out;
}

}  // namespace dpa::prometheus
