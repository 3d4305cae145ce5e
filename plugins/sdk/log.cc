#include "plugins/sdk/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace dpa::sdk {
namespace {

std::mutex g_module_mutex;
std::string g_module = "plugin";  // guarded by g_module_mutex
std::atomic<int> g_level{static_cast<int>(LogLevel::kDebug)};

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

// Go layout 2006-01-02T15:04:05.000000Z07:00 in UTC: "2024-05-01T10:11:12.123456Z".
std::string timestamp_now() {
  const auto now = std::chrono::system_clock::now();
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(micros / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros % 1000000));
  return buf;
}

}  // namespace

void set_log_module(std::string module) {
  std::lock_guard lock(g_module_mutex);
  g_module = std::move(module);
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }

std::string format_log_line(LogLevel level, std::string_view message,
                            const nlohmann::json& fields) {
  nlohmann::ordered_json line;
  line["@level"] = level_name(level);
  line["@message"] = std::string(message);
  line["@timestamp"] = timestamp_now();
  {
    std::lock_guard lock(g_module_mutex);
    line["@module"] = g_module;
  }
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  }
  // Replace invalid UTF-8 instead of throwing: log arguments often come from untrusted input.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void log(LogLevel level, std::string_view message, const nlohmann::json& fields) {
  if (static_cast<int>(level) < g_level.load()) return;
  std::string line = format_log_line(level, message, fields);
  line.push_back('\n');
  // One write(2) per line so concurrent lines never interleave on the host's pipe.
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, data, left);
    if (n <= 0) return;
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace dpa::sdk
