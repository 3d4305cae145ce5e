// Structured logs: one JSON object per line on stderr, {"ts","level","msg", ...fields}. Cheap enough
// for one line per request; the line is built first and written with a single write(2).
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

namespace dpa::obs {

enum class Level { kDebug, kInfo, kWarn, kError };

void set_log_level(Level level);
Level log_level();
// Level from "debug"/"info"/"warn"/"error"; unknown names give kInfo.
Level parse_level(std::string_view name);

// fields: a JSON object whose keys are appended after ts/level/msg.
void log(Level level, std::string_view message, const nlohmann::json& fields = nullptr);
inline void debug(std::string_view m, const nlohmann::json& f = nullptr) { log(Level::kDebug, m, f); }
inline void info(std::string_view m, const nlohmann::json& f = nullptr) { log(Level::kInfo, m, f); }
inline void warn(std::string_view m, const nlohmann::json& f = nullptr) { log(Level::kWarn, m, f); }
inline void error(std::string_view m, const nlohmann::json& f = nullptr) { log(Level::kError, m, f); }

}  // namespace dpa::obs
