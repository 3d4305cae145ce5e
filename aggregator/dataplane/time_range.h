// Grafana's time strings for query ranges (reference grafana-aggregator-behaviour.md §3.1): an
// integer is epoch milliseconds; otherwise a Go duration means "now minus it"; otherwise date math
// (`now`, `now-1h`, `now/d`, `2024-01-02T03:04:05Z||+1d`). Unparseable strings give epoch 0, as the
// SDK does. All results are UTC epoch milliseconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dpa::dataplane {

struct TimeRange {
  int64_t from_ms = 0;
  int64_t to_ms = 0;
};

// Go time.ParseDuration syntax ("1h", "1h30m", "1.5s", "300ms", "0"), without a sign. Returns
// nanoseconds; nullopt when it is not a duration.
std::optional<int64_t> parse_go_duration_ns(std::string_view text);

// Date math only (no epoch/duration forms). round_up: `/unit` rounds to the end of the unit (the
// `to` side). nullopt when the expression is invalid.
std::optional<int64_t> parse_date_math_ms(std::string_view text, int64_t now_ms, bool round_up);

// The full SDK order: epoch ms, then duration, then date math; invalid -> 0.
int64_t parse_time_ms(std::string_view text, int64_t now_ms, bool round_up);

// from rounds down, to rounds up.
TimeRange parse_time_range(std::string_view from, std::string_view to, int64_t now_ms);

int64_t now_ms();

}  // namespace dpa::dataplane
