// Date math follows the Elasticsearch-style grammar Grafana uses (go-datemath): an anchor (`now`, or
// an absolute date optionally followed by `||`), then any number of `+N<unit>`, `-N<unit>` and
// `/<unit>` operations, units y M w d h H m s. Calendar arithmetic is done in UTC with Go's
// AddDate normalisation (Jan 31 + 1M = Mar 3); weeks start on Monday.
#include "aggregator/dataplane/time_range.h"

#include <cctype>
#include <charconv>
#include <string>

namespace dpa::dataplane {
namespace {

constexpr int64_t kMsPerSecond = 1000;
constexpr int64_t kMsPerMinute = 60 * kMsPerSecond;
constexpr int64_t kMsPerHour = 60 * kMsPerMinute;
constexpr int64_t kMsPerDay = 24 * kMsPerHour;

// Howard Hinnant's civil-date algorithms; linear in `d`, so an overflowing day rolls over.
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Civil {
  int64_t y, m, d;
};

Civil civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = yoe + era * 400;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp + (mp < 10 ? 3 : -9);
  return {y + (m <= 2), m, d};
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

struct Broken {
  Civil date;
  int64_t ms_of_day;
};

Broken split_ms(int64_t ms) {
  const int64_t days = floor_div(ms, kMsPerDay);
  return {civil_from_days(days), ms - days * kMsPerDay};
}

int64_t join_ms(const Civil& c, int64_t ms_of_day) {
  return days_from_civil(c.y, c.m, c.d) * kMsPerDay + ms_of_day;
}

// Go's AddDate(years, months, 0): month arithmetic then day overflow normalisation.
int64_t add_months(int64_t ms, int64_t months) {
  Broken b = split_ms(ms);
  int64_t total = b.date.y * 12 + (b.date.m - 1) + months;
  Civil c{floor_div(total, 12), total - floor_div(total, 12) * 12 + 1, b.date.d};
  return join_ms(c, b.ms_of_day);
}

int64_t start_of(int64_t ms, char unit) {
  Broken b = split_ms(ms);
  switch (unit) {
    case 's': return floor_div(ms, kMsPerSecond) * kMsPerSecond;
    case 'm': return floor_div(ms, kMsPerMinute) * kMsPerMinute;
    case 'h': case 'H': return floor_div(ms, kMsPerHour) * kMsPerHour;
    case 'd': return join_ms(b.date, 0);
    case 'w': {
      const int64_t days = days_from_civil(b.date.y, b.date.m, b.date.d);
      // 1970-01-01 was a Thursday: (days + 3) mod 7 == 0 on Mondays.
      const int64_t weekday_from_monday = ((days + 3) % 7 + 7) % 7;
      return (days - weekday_from_monday) * kMsPerDay;
    }
    case 'M': return join_ms({b.date.y, b.date.m, 1}, 0);
    case 'y': return join_ms({b.date.y, 1, 1}, 0);
  }
  return ms;
}

int64_t add_units(int64_t ms, int64_t n, char unit) {
  switch (unit) {
    case 's': return ms + n * kMsPerSecond;
    case 'm': return ms + n * kMsPerMinute;
    case 'h': case 'H': return ms + n * kMsPerHour;
    case 'd': return ms + n * kMsPerDay;
    case 'w': return ms + n * 7 * kMsPerDay;
    case 'M': return add_months(ms, n);
    case 'y': return add_months(ms, n * 12);
  }
  return ms;
}

bool is_unit(char c) {
  return c == 'y' || c == 'M' || c == 'w' || c == 'd' || c == 'h' || c == 'H' || c == 'm' ||
         c == 's';
}

bool read_int(std::string_view s, std::size_t& pos, std::size_t digits, int64_t& out) {
  if (pos + digits > s.size()) return false;
  int64_t v = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += digits;
  out = v;
  return true;
}

// YYYY[-MM[-DD[(T| )HH:MM[:SS[.fff...]]]]][Z|(+|-)HH[:]MM]
std::optional<int64_t> parse_absolute(std::string_view s) {
  std::size_t pos = 0;
  int64_t y = 0, mo = 1, d = 1, h = 0, mi = 0, sec = 0, frac_ms = 0;
  if (!read_int(s, pos, 4, y)) return std::nullopt;
  if (pos < s.size() && s[pos] == '-') {
    ++pos;
    if (!read_int(s, pos, 2, mo) || mo < 1 || mo > 12) return std::nullopt;
    if (pos < s.size() && s[pos] == '-') {
      ++pos;
      if (!read_int(s, pos, 2, d) || d < 1 || d > 31) return std::nullopt;
      if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
        ++pos;
        if (!read_int(s, pos, 2, h) || h > 23) return std::nullopt;
        if (pos >= s.size() || s[pos] != ':') return std::nullopt;
        ++pos;
        if (!read_int(s, pos, 2, mi) || mi > 59) return std::nullopt;
        if (pos < s.size() && s[pos] == ':') {
          ++pos;
          if (!read_int(s, pos, 2, sec) || sec > 60) return std::nullopt;
          if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
            ++pos;
            int64_t scale = 100;
            std::size_t start = pos;
            while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
              frac_ms += (s[pos] - '0') * scale;
              scale /= 10;
              ++pos;
            }
            if (pos == start) return std::nullopt;
          }
        }
        int64_t offset_min = 0;
        if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
          ++pos;
        } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
          const int sign = s[pos] == '-' ? -1 : 1;
          ++pos;
          int64_t oh = 0, om = 0;
          if (!read_int(s, pos, 2, oh)) return std::nullopt;
          if (pos < s.size() && s[pos] == ':') ++pos;
          if (!read_int(s, pos, 2, om)) return std::nullopt;
          offset_min = sign * (oh * 60 + om);
        }
        if (pos != s.size()) return std::nullopt;
        return days_from_civil(y, mo, d) * kMsPerDay + h * kMsPerHour + mi * kMsPerMinute +
               sec * kMsPerSecond + frac_ms - offset_min * kMsPerMinute;
      }
    }
  }
  if (pos != s.size()) return std::nullopt;
  return days_from_civil(y, mo, d) * kMsPerDay;
}

std::optional<int64_t> parse_epoch_ms(std::string_view s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<int64_t> parse_go_duration_ns(std::string_view s) {
  if (s == "0") return 0;
  if (s.empty()) return std::nullopt;
  std::size_t pos = 0;
  double total = 0;
  while (pos < s.size()) {
    const std::size_t start = pos;
    int64_t whole = 0;
    bool any_digit = false;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      whole = whole * 10 + (s[pos] - '0');
      if (whole > (int64_t{1} << 62)) return std::nullopt;
      any_digit = true;
      ++pos;
    }
    double frac = 0;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      double scale = 0.1;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        frac += (s[pos] - '0') * scale;
        scale /= 10;
        any_digit = true;
        ++pos;
      }
    }
    if (!any_digit || pos == start) return std::nullopt;
    const std::size_t unit_start = pos;
    while (pos < s.size() && !(s[pos] >= '0' && s[pos] <= '9') && s[pos] != '.') ++pos;
    std::string_view unit = s.substr(unit_start, pos - unit_start);
    double ns_per_unit = 0;
    if (unit == "ns") ns_per_unit = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") ns_per_unit = 1e3;
    else if (unit == "ms") ns_per_unit = 1e6;
    else if (unit == "s") ns_per_unit = 1e9;
    else if (unit == "m") ns_per_unit = 60e9;
    else if (unit == "h") ns_per_unit = 3600e9;
    else return std::nullopt;
    total += (static_cast<double>(whole) + frac) * ns_per_unit;
    if (total > 9.2e18) return std::nullopt;  // Go: "invalid duration" on overflow
  }
  return static_cast<int64_t>(total);
}

std::optional<int64_t> parse_date_math_ms(std::string_view s, int64_t now, bool round_up) {
  int64_t t = 0;
  std::string_view ops;
  if (s.substr(0, 3) == "now") {
    t = now;
    ops = s.substr(3);
  } else {
    const std::size_t bars = s.find("||");
    auto abs = parse_absolute(bars == std::string_view::npos ? s : s.substr(0, bars));
    if (!abs) return std::nullopt;
    t = *abs;
    ops = bars == std::string_view::npos ? std::string_view{} : s.substr(bars + 2);
  }
  std::size_t pos = 0;
  while (pos < ops.size()) {
    const char op = ops[pos++];
    if (op == '/') {
      if (pos >= ops.size() || !is_unit(ops[pos])) return std::nullopt;
      const char unit = ops[pos++];
      t = start_of(t, unit);
      if (round_up) t = add_units(t, 1, unit) - 1;
      continue;
    }
    if (op != '+' && op != '-') return std::nullopt;
    int64_t n = 0;
    bool digits = false;
    while (pos < ops.size() && ops[pos] >= '0' && ops[pos] <= '9') {
      n = n * 10 + (ops[pos] - '0');
      if (n > 1'000'000'000) return std::nullopt;
      digits = true;
      ++pos;
    }
    if (!digits) n = 1;
    if (pos >= ops.size() || !is_unit(ops[pos])) return std::nullopt;
    t = add_units(t, op == '-' ? -n : n, ops[pos++]);
  }
  return t;
}

int64_t parse_time_ms(std::string_view s, int64_t now, bool round_up) {
  if (auto epoch = parse_epoch_ms(s)) return *epoch;
  if (auto ns = parse_go_duration_ns(s)) return now - *ns / 1'000'000;
  if (auto dm = parse_date_math_ms(s, now, round_up)) return *dm;
  return 0;
}

TimeRange parse_time_range(std::string_view from, std::string_view to, int64_t now) {
  return {parse_time_ms(from, now, false), parse_time_ms(to, now, true)};
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace dpa::dataplane
