// Re-logging of a plugin's stderr (reference §2.4 step 7): hclog JSON lines (@level, @message,
// other keys), `[LEVEL]` prefixed lines, and panics, each becoming one obs::log line with
// {"plugin": id}.
#pragma once

#include "aggregator/observability/log.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace dpa::plugin {

struct PluginLogLine {
  obs::Level level = obs::Level::kDebug;
  std::string message;
  nlohmann::json fields = nlohmann::json::object();
};

// Parses stderr line by line; remembers whether a Go panic started (then the rest is errors).
class PluginLogParser {
 public:
  PluginLogLine parse(std::string_view line);

 private:
  bool panicking_ = false;
};

// parse() + obs::log with fields {"plugin": plugin_id, ...}.
void relog_plugin_line(PluginLogParser& parser, const std::string& plugin_id,
                       std::string_view line);

}  // namespace dpa::plugin
