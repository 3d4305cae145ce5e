#include "aggregator/observability/trace_context.h"

#include <cstdint>
#include <random>

namespace dpa::obs {
namespace {

// version "-" trace-id "-" parent-id "-" flags
constexpr std::size_t kVersion00Size = 2 + 1 + 32 + 1 + 16 + 1 + 2;
// What a vendor must propagate at least; past it members are dropped from the end (the spec's
// truncation order), and a list of more than 32 members is dropped whole.
constexpr std::size_t kMaxTracestate = 512;
constexpr std::size_t kMaxTracestateMembers = 32;

bool lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

void append_random_hex(std::string& out, int bytes) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  while (bytes > 0) {
    std::uint64_t r = rng();
    for (int i = 0; i < 8 && bytes > 0; ++i, --bytes, r >>= 8) {
      out.push_back(kHex[(r >> 4) & 0xf]);
      out.push_back(kHex[r & 0xf]);
    }
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The members of a tracestate list (empty ones skipped), or "" when it has characters outside
// printable ASCII or too many members; cut to kMaxTracestate.
std::string clean_tracestate(std::string_view value) {
  for (unsigned char c : value) {
    if (c < 0x20 || c > 0x7e) return {};
  }
  std::string out;
  std::size_t members = 0;
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    std::string_view member = trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    if (member.empty()) continue;
    if (member.find('=') == std::string_view::npos) return {};
    if (++members > kMaxTracestateMembers) return {};
    if (out.size() + (out.empty() ? 0 : 1) + member.size() > kMaxTracestate) continue;
    if (!out.empty()) out.push_back(',');
    out.append(member);
  }
  return out;
}

}  // namespace

bool valid_traceparent(std::string_view v) {
  if (v.size() < kVersion00Size) return false;
  std::string_view version = v.substr(0, 2);
  if (!lower_hex(version) || version == "ff") return false;
  if (version == "00" ? v.size() != kVersion00Size
                      : v.size() > kVersion00Size && v[kVersion00Size] != '-') {
    return false;
  }
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  std::string_view trace_id = v.substr(3, 32), parent_id = v.substr(36, 16), flags = v.substr(53, 2);
  return lower_hex(trace_id) && lower_hex(parent_id) && lower_hex(flags) && !all_zero(trace_id) &&
         !all_zero(parent_id);
}

std::string_view TraceContext::trace_id() const {
  if (traceparent.size() < kVersion00Size) return {};
  return std::string_view(traceparent).substr(3, 32);
}

TraceContext TraceContext::from_headers(std::string_view traceparent, std::string_view tracestate) {
  if (!valid_traceparent(traceparent)) return generate();
  TraceContext context;
  context.traceparent.reserve(kVersion00Size);
  context.traceparent.append("00");
  context.traceparent.append(traceparent.substr(2, kVersion00Size - 2));
  context.tracestate = clean_tracestate(tracestate);
  return context;
}

TraceContext TraceContext::generate() {
  TraceContext context;
  auto& tp = context.traceparent;
  tp.reserve(kVersion00Size);
  tp.append("00-");
  append_random_hex(tp, 16);
  tp.push_back('-');
  append_random_hex(tp, 8);
  tp.append("-00");
  return context;
}

}  // namespace dpa::obs
