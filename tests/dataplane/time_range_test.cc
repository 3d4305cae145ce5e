#include "aggregator/dataplane/time_range.h"

#include <gtest/gtest.h>

namespace dpa::dataplane {
namespace {

// 2024-03-15T10:20:30.456Z, a Friday.
constexpr int64_t kNow = 1710498030456;
constexpr int64_t kHour = 3600 * 1000;
constexpr int64_t kDay = 24 * kHour;

TEST(TimeRangeTest, EpochMilliseconds) {
  EXPECT_EQ(parse_time_ms("1700000000000", kNow, false), 1700000000000);
  EXPECT_EQ(parse_time_ms("0", kNow, false), 0);
  EXPECT_EQ(parse_time_ms("-5", kNow, false), -5);
}

TEST(TimeRangeTest, GoDurationsMeanNowMinus) {
  EXPECT_EQ(parse_time_ms("1h", kNow, false), kNow - kHour);
  EXPECT_EQ(parse_time_ms("1h30m", kNow, false), kNow - kHour - 30 * 60 * 1000);
  EXPECT_EQ(parse_time_ms("1.5s", kNow, false), kNow - 1500);
  EXPECT_EQ(parse_time_ms("300ms", kNow, false), kNow - 300);
  EXPECT_FALSE(parse_go_duration_ns("1d"));  // days are not a Go duration unit
  EXPECT_FALSE(parse_go_duration_ns("-1h"));
  EXPECT_FALSE(parse_go_duration_ns("h"));
  EXPECT_EQ(*parse_go_duration_ns("2us"), 2000);
}

TEST(TimeRangeTest, DateMath) {
  EXPECT_EQ(parse_time_ms("now", kNow, false), kNow);
  EXPECT_EQ(parse_time_ms("now-1h", kNow, false), kNow - kHour);
  EXPECT_EQ(parse_time_ms("now-1m", kNow, false), kNow - 60000);
  EXPECT_EQ(parse_time_ms("now+2d", kNow, false), kNow + 2 * kDay);
  const int64_t midnight = 1710460800000;  // 2024-03-15T00:00:00Z
  EXPECT_EQ(parse_time_ms("now/d", kNow, false), midnight);
  EXPECT_EQ(parse_time_ms("now/d", kNow, true), midnight + kDay - 1);
  EXPECT_EQ(parse_time_ms("now-1d/d", kNow, false), midnight - kDay);
  EXPECT_EQ(parse_time_ms("now/w", kNow, false), midnight - 4 * kDay);  // Monday 11th
  EXPECT_EQ(parse_time_ms("now/M", kNow, false), 1709251200000);       // 2024-03-01
  EXPECT_EQ(parse_time_ms("now/y", kNow, false), 1704067200000);       // 2024-01-01
  EXPECT_EQ(parse_time_ms("now/y", kNow, true), 1735689600000 - 1);    // end of 2024
  EXPECT_EQ(parse_time_ms("now/h", kNow, false), 1710496800000);
  EXPECT_EQ(parse_time_ms("now-1M", kNow, false), kNow - 29 * kDay);   // Feb 2024 has 29 days
}

TEST(TimeRangeTest, AbsoluteDates) {
  EXPECT_EQ(parse_time_ms("2024-03-15T00:00:00Z", kNow, false), 1710460800000);
  EXPECT_EQ(parse_time_ms("2024-03-15T01:00:00+01:00", kNow, false), 1710460800000);
  EXPECT_EQ(parse_time_ms("2024-03-15", kNow, false), 1710460800000);
  EXPECT_EQ(parse_time_ms("2024-03-15||+1d", kNow, false), 1710460800000 + kDay);
  EXPECT_EQ(parse_time_ms("2024-01-31||+1M", kNow, false), 1709337600000);  // Go: Feb 31st = Mar 2nd
}

TEST(TimeRangeTest, InvalidIsEpochZero) {
  EXPECT_EQ(parse_time_ms("", kNow, false), 0);
  EXPECT_EQ(parse_time_ms("yesterday", kNow, false), 0);
  EXPECT_EQ(parse_time_ms("now-", kNow, false), 0);
  EXPECT_EQ(parse_time_ms("now-1x", kNow, false), 0);
  EXPECT_EQ(parse_time_ms("now/", kNow, true), 0);
}

TEST(TimeRangeTest, RangeRoundsToUp) {
  auto r = parse_time_range("now/d", "now/d", kNow);
  EXPECT_EQ(r.from_ms, 1710460800000);
  EXPECT_EQ(r.to_ms, 1710460800000 + kDay - 1);
}

}  // namespace
}  // namespace dpa::dataplane
