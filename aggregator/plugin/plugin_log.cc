#include "aggregator/plugin/plugin_log.h"

namespace dpa::plugin {
namespace {

obs::Level hclog_level(std::string_view name) {
  if (name == "error") return obs::Level::kError;
  if (name == "warn" || name == "warning") return obs::Level::kWarn;
  if (name == "info") return obs::Level::kInfo;
  return obs::Level::kDebug;  // trace, debug, unknown
}

struct Prefix {
  std::string_view text;
  obs::Level level;
};
constexpr Prefix kPrefixes[] = {
    {"[TRACE]", obs::Level::kDebug}, {"[DEBUG]", obs::Level::kDebug},
    {"[INFO]", obs::Level::kInfo},   {"[WARN]", obs::Level::kWarn},
    {"[ERROR]", obs::Level::kError},
};

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

}  // namespace

PluginLogLine PluginLogParser::parse(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  PluginLogLine out;
  if (!line.empty() && line.front() == '{') {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      auto level = j.find("@level");
      out.level = level != j.end() && level->is_string() ? hclog_level(level->get<std::string>())
                                                         : obs::Level::kDebug;
      auto msg = j.find("@message");
      if (msg != j.end() && msg->is_string()) out.message = msg->get<std::string>();
      for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& key = it.key();
        if (key == "@level" || key == "@message") continue;
        std::string name = key;
        if (name.starts_with("@")) name = "plugin_" + name.substr(1);  // @timestamp, @module
        // Keys of our own log line must not be overwritten by the plugin's.
        if (name == "ts" || name == "level" || name == "msg" || name == "plugin") {
          name = "plugin_" + name;
        }
        out.fields[name] = it.value();
      }
      if (panicking_) out.level = obs::Level::kError;
      return out;
    }
  }
  if (line.starts_with("panic: ") || line.starts_with("fatal error: ")) panicking_ = true;
  out.level = panicking_ ? obs::Level::kError : obs::Level::kDebug;
  out.message = std::string(line);
  for (const auto& p : kPrefixes) {
    if (line.starts_with(p.text)) {
      out.level = panicking_ ? obs::Level::kError : p.level;
      out.message = std::string(trim_left(line.substr(p.text.size())));
      break;
    }
  }
  return out;
}

void relog_plugin_line(PluginLogParser& parser, const std::string& plugin_id,
                       std::string_view line) {
  PluginLogLine parsed = parser.parse(line);
  if (parsed.level < obs::log_level()) return;
  parsed.fields["plugin"] = plugin_id;
  obs::log(parsed.level, parsed.message, parsed.fields);
}

}  // namespace dpa::plugin
