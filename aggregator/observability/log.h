// Structured logs: one JSON object per line on stderr, {"ts","level","msg", ...fields}. Cheap enough
// for one line per request; the line is built first and written with a single write(2).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace dpa::obs {

enum class Level { kDebug, kInfo, kWarn, kError };

void set_log_level(Level level);
Level log_level();
// Level from "debug"/"info"/"warn"/"error"; unknown names give kInfo.
Level parse_level(std::string_view name);

// RFC 3339 in UTC with microseconds ("2026-07-23T18:32:12.123456Z"): log lines, audit events.
std::string rfc3339_micros(std::chrono::system_clock::time_point t);

// fields: a JSON object whose keys are appended after ts/level/msg.
void log(Level level, std::string_view message, const nlohmann::json& fields = nullptr);
inline void debug(std::string_view m, const nlohmann::json& f = nullptr) { log(Level::kDebug, m, f); }
inline void info(std::string_view m, const nlohmann::json& f = nullptr) { log(Level::kInfo, m, f); }
inline void warn(std::string_view m, const nlohmann::json& f = nullptr) { log(Level::kWarn, m, f); }
inline void error(std::string_view m, const nlohmann::json& f = nullptr) { log(Level::kError, m, f); }

}  // namespace dpa::obs
