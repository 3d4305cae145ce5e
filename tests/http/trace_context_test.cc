// W3C Trace Context parsing: which traceparents are kept, how a later version is cut to version
// 00's fields, what happens to tracestate, and that a new trace is always valid and new.
#include "aggregator/observability/trace_context.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace dpa::obs {
namespace {

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, AValidTraceparentAndItsTracestateAreKept) {
  auto context = TraceContext::from_headers(kValid, "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7");
  EXPECT_EQ(context.traceparent, kValid);
  EXPECT_EQ(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(context.tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
}

TEST(TraceContextTest, InvalidTraceparentsStartANewTraceAndDropTracestate) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",   // version 00 is exact
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
           "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   // later version, no '-'
       }) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(valid_traceparent(bad));
    auto context = TraceContext::from_headers(bad, "congo=t61rcWkgMzE");
    EXPECT_TRUE(valid_traceparent(context.traceparent)) << context.traceparent;
    EXPECT_NE(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(context.tracestate, "");
  }
}

TEST(TraceContextTest, ALaterVersionIsReadAsVersion00) {
  auto context = TraceContext::from_headers(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-brings", "");
  EXPECT_EQ(context.traceparent, kValid);
  EXPECT_TRUE(valid_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(TraceContextTest, TracestateIsCleanedOrDropped) {
  // Empty members go; a member without '=' or a byte outside printable ASCII drops the list.
  EXPECT_EQ(TraceContext::from_headers(kValid, " a=1 ,, b=2 ").tracestate, "a=1,b=2");
  EXPECT_EQ(TraceContext::from_headers(kValid, "a=1,nonsense").tracestate, "");
  EXPECT_EQ(TraceContext::from_headers(kValid, "a=1\x01").tracestate, "");
  EXPECT_EQ(TraceContext::from_headers(kValid, "a=\xc3\xa9").tracestate, "");
  // More than 32 members: dropped whole.
  std::string many;
  for (int i = 0; i < 33; ++i) many += "k" + std::to_string(i) + "=v,";
  EXPECT_EQ(TraceContext::from_headers(kValid, many).tracestate, "");
  // Past 512 bytes, members are left out from the end.
  std::string big = "first=" + std::string(300, 'x') + ",second=" + std::string(300, 'y') + ",third=z";
  EXPECT_EQ(TraceContext::from_headers(kValid, big).tracestate,
            "first=" + std::string(300, 'x') + ",third=z");
}

TEST(TraceContextTest, AnEmptyContextHasAnEmptyTraceId) {
  EXPECT_EQ(TraceContext().trace_id(), "");  // never throws: log lines read it unconditionally
}

TEST(TraceContextTest, NewTracesAreValidUnsampledAndDistinct) {
  std::set<std::string> traces, parents;
  for (int i = 0; i < 1000; ++i) {
    auto context = TraceContext::generate();
    ASSERT_TRUE(valid_traceparent(context.traceparent)) << context.traceparent;
    EXPECT_EQ(context.traceparent.substr(53), "00");
    traces.insert(std::string(context.trace_id()));
    parents.insert(context.traceparent.substr(36, 16));
  }
  EXPECT_EQ(traces.size(), 1000u);
  EXPECT_EQ(parents.size(), 1000u);
}

}  // namespace
}  // namespace dpa::obs
