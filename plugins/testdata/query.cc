#include "plugins/testdata/query.h"

#include "plugins/sdk/data.h"
#include "plugins/sdk/log.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <sstream>

namespace dpa::testdata {
namespace {

constexpr int64_t kDefaultMaxDataPoints = 100;
constexpr int64_t kDefaultIntervalMs = 1000;
constexpr int64_t kMaxPoints = 100000;          // keeps a hostile maxDataPoints bounded
constexpr int64_t kDefaultSlowDelayMs = 1000;
constexpr int64_t kMaxSlowDelayMs = 10 * 60 * 1000;
constexpr int64_t kDefaultRangeMs = 60 * 60 * 1000;  // when the host sends no time range

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t json_int(const nlohmann::json& j, const char* key, int64_t fallback) {
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (it->is_number()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return fallback;
    }
  }
  return fallback;
}

double json_double(const nlohmann::json& j, const char* key, double fallback) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

std::string json_string(const nlohmann::json& j, const char* key, std::string fallback = "") {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// `labels` may be an object or Grafana testdata's "key=value, key2=value2" string.
std::map<std::string, std::string> query_labels(const nlohmann::json& q) {
  std::map<std::string, std::string> labels;
  const auto it = q.find("labels");
  if (it == q.end()) return labels;
  if (it->is_object()) {
    for (auto l = it->begin(); l != it->end(); ++l) {
      labels[l.key()] = l.value().is_string() ? l.value().get<std::string>() : l.value().dump();
    }
  } else if (it->is_string()) {
    std::stringstream list(it->get<std::string>());
    std::string pair;
    while (std::getline(list, pair, ',')) {
      const auto eq = pair.find('=');
      if (eq == std::string::npos) continue;
      auto trim = [](std::string s) {
        const auto b = s.find_first_not_of(" \t\"");
        const auto e = s.find_last_not_of(" \t\"");
        return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
      };
      const std::string key = trim(pair.substr(0, eq));
      if (!key.empty()) labels[key] = trim(pair.substr(eq + 1));
    }
  }
  return labels;
}

struct Range {
  int64_t from_ms;
  int64_t to_ms;
};

Range query_range(const pluginv2::DataQuery& query) {
  Range r{query.timerange().fromepochms(), query.timerange().toepochms()};
  if (r.from_ms == 0 && r.to_ms == 0) {
    r.to_ms = now_ms();
    r.from_ms = r.to_ms - kDefaultRangeMs;
  }
  if (r.to_ms < r.from_ms) std::swap(r.from_ms, r.to_ms);
  return r;
}

frames::Frame random_walk(const pluginv2::DataQuery& query, const nlohmann::json& q) {
  const Range range = query_range(query);
  const int64_t max_points =
      std::clamp<int64_t>(query.maxdatapoints() > 0 ? query.maxdatapoints() : kDefaultMaxDataPoints,
                          1, kMaxPoints);
  const int64_t interval_ms = query.intervalms() > 0 ? query.intervalms() : kDefaultIntervalMs;
  // Never more than maxDataPoints points over the range, never closer than intervalMs.
  const int64_t span = range.to_ms - range.from_ms;
  const int64_t step = std::max<int64_t>(interval_ms, (span + max_points - 1) / max_points);
  const int64_t points = std::min<int64_t>(max_points, span / step + 1);

  std::mt19937_64 rng;
  if (q.contains("seed")) {
    rng.seed(static_cast<uint64_t>(json_int(q, "seed", 0)));
  } else {
    rng.seed(std::random_device{}());
  }
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double spread = json_double(q, "spread", 1.0);
  double value = json_double(q, "startValue", unit(rng) * 100.0);
  const double min = json_double(q, "min", -INFINITY);
  double max = json_double(q, "max", INFINITY);
  if (max < min) max = min;

  std::vector<int64_t> times;
  std::vector<double> values;
  times.reserve(static_cast<std::size_t>(points));
  values.reserve(static_cast<std::size_t>(points));
  // Align to the step so consecutive refreshes share timestamps, as Grafana's testdata does.
  int64_t t = range.from_ms - (range.from_ms % step);
  if (t < range.from_ms) t += step;
  for (int64_t i = 0; i < points && t <= range.to_ms; ++i, t += step) {
    times.push_back(t * 1000000);
    values.push_back(value);
    value = std::clamp(value + (unit(rng) - 0.5) * spread, min, max);
  }

  frames::Frame frame;
  frame.name = json_string(q, "alias", query.refid() + "-series");
  frame.meta = nlohmann::ordered_json{{"type", "timeseries-multi"}, {"typeVersion", {0, 0}}};
  frame.fields.push_back(sdk::time_field("time", std::move(times)));
  frame.fields.push_back(sdk::float64_field("value", std::move(values), query_labels(q)));
  return frame;
}

frames::Frame table() {
  frames::Frame frame;
  frame.name = "table";
  const int64_t base_ns = (now_ms() - (now_ms() % 1000)) * 1000000;
  frame.fields.push_back(
      sdk::time_field("time", {base_ns - 2000000000, base_ns - 1000000000, base_ns}));
  frame.fields.push_back(sdk::string_field("name", {"alpha", "beta", "gamma"}));
  frame.fields.push_back(sdk::int64_field("count", {1, 20, 300}));
  frame.fields.push_back(sdk::float64_field("ratio", {0.5, 1.25, -3.75}));
  frame.fields.push_back(sdk::bool_field("up", {true, false, true}));
  frame.fields.push_back(sdk::nullable_string_field("comment", {"first", std::nullopt, "third"}));
  frame.fields.push_back(sdk::nullable_int64_field("maybe", {std::nullopt, 7, std::nullopt}));
  frame.fields.push_back(sdk::nullable_float64_field("score", {1.5, std::nullopt, 9.0}));
  frame.meta = nlohmann::ordered_json{{"type", "table"}, {"typeVersion", {0, 0}}};
  return frame;
}

std::string scenario_of(const pluginv2::DataQuery& query, const nlohmann::json& q) {
  if (!query.querytype().empty()) return query.querytype();
  std::string s = json_string(q, "scenarioId");
  if (s.empty()) s = json_string(q, "scenario");
  return s.empty() ? "random_walk" : s;
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') { padding = true; continue; }
    else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    else return std::nullopt;
    if (padding) return std::nullopt;  // data after '='
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone trailing character carries no full byte
  return out;
}

grpc::Status QueryHandler::query_data(const sdk::CallContext& ctx,
                                      const pluginv2::QueryDataRequest& request,
                                      pluginv2::QueryDataResponse& response) {
  for (const auto& query : request.queries()) {
    (*response.mutable_responses())[query.refid()] = answer(ctx, request.plugincontext(), query);
    stats_.queries_served.fetch_add(1);
  }
  if (ctx.cancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "query cancelled");
  return grpc::Status::OK;
}

pluginv2::DataResponse QueryHandler::answer(const sdk::CallContext& ctx,
                                            const pluginv2::PluginContext& plugin,
                                            const pluginv2::DataQuery& query) {
  const sdk::JsonResult parsed = sdk::query_json(query);
  if (!parsed.ok()) return sdk::error_response(400, parsed.error);
  const nlohmann::json& q = parsed.value;
  const std::string scenario = scenario_of(query, q);

  if (scenario == "random_walk") return sdk::frames_response({random_walk(query, q)}, query.refid());
  if (scenario == "table") return sdk::frames_response({table()}, query.refid());
  if (scenario == "slow") {
    const int64_t delay = std::clamp<int64_t>(json_int(q, "delayMs", kDefaultSlowDelayMs), 0,
                                              kMaxSlowDelayMs);
    if (!ctx.sleep_for(std::chrono::milliseconds(delay))) {
      return sdk::error_response(504, "query cancelled while sleeping", sdk::ErrorSource::kDownstream);
    }
    return sdk::frames_response({random_walk(query, q)}, query.refid());
  }
  if (scenario == "error") {
    int status = static_cast<int>(json_int(q, "errorStatus", json_int(q, "status", 500)));
    const std::string message = json_string(q, "errorMessage", "testdata: requested error");
    const bool downstream = json_string(q, "errorSource") == "downstream";
    return sdk::error_response(status, message,
                               downstream ? sdk::ErrorSource::kDownstream : sdk::ErrorSource::kPlugin);
  }
  if (scenario == "raw_frame") {
    // The bytes go out untouched so tests can feed malformed Arrow to the host.
    const auto bytes = decode_base64(json_string(q, "frameBase64"));
    if (!bytes) return sdk::error_response(400, "raw_frame: frameBase64 is not valid base64");
    pluginv2::DataResponse response;
    response.add_frames(*bytes);
    response.set_status(200);
    response.set_format(pluginv2::ARROW);
    return response;
  }
  if (scenario == "streaming") {
    const std::string uid = plugin.datasourceinstancesettings().uid();
    frames::Frame frame;
    frame.name = "stream";
    frame.meta = nlohmann::ordered_json{{"typeVersion", {0, 0}},
                                        {"channel", "ds/" + uid + "/counter"}};
    frame.fields.push_back(sdk::time_field("time", {}));
    frame.fields.push_back(sdk::float64_field("value", {}));
    return sdk::frames_response({std::move(frame)}, query.refid());
  }
  sdk::log_warn("unknown scenario", {{"refId", query.refid()}, {"scenario", scenario}});
  return sdk::error_response(400, "unknown scenario \"" + scenario + "\"");
}

}  // namespace dpa::testdata
