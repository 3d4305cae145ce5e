// hclog-style JSON logging for plugin processes: one object per line on stderr with "@level",
// "@message", "@timestamp" (RFC 3339, microseconds) and "@module", then the caller's keys. The
// host (Grafana or the aggregator) re-logs these lines (reference grafana-plugin-protocol.md §2.4.7).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace dpa::sdk {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };

// "@module" of every later line (serve() sets it to "plugin.<plugin id>").
void set_log_module(std::string module);
// Lines below `level` are dropped; the default is kDebug (the host filters again).
void set_log_level(LogLevel level);

// One log line. `fields` must be a JSON object or null; its keys follow the "@" keys.
void log(LogLevel level, std::string_view message, const nlohmann::json& fields = nullptr);
inline void log_debug(std::string_view m, const nlohmann::json& f = nullptr) {
  log(LogLevel::kDebug, m, f);
}
inline void log_info(std::string_view m, const nlohmann::json& f = nullptr) {
  log(LogLevel::kInfo, m, f);
}
inline void log_warn(std::string_view m, const nlohmann::json& f = nullptr) {
  log(LogLevel::kWarn, m, f);
}
inline void log_error(std::string_view m, const nlohmann::json& f = nullptr) {
  log(LogLevel::kError, m, f);
}

// The line log() would write (without the trailing newline), for tests.
std::string format_log_line(LogLevel level, std::string_view message, const nlohmann::json& fields);

}  // namespace dpa::sdk
