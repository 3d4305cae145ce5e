// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate` a
// request carries. The aggregator records no spans of its own, so it propagates the context it
// received unchanged, as a non-participating intermediary should, to the delegate (HTTP headers)
// and to every plugin call (gRPC metadata, where Grafana's plugin SDK reads it). A request without
// a valid `traceparent` gets a new one, so every log line, audit event, delegate request and
// plugin call of one request share a trace id.
#pragma once

#include <string>
#include <string_view>

namespace dpa::obs {

struct TraceContext {
  // Valid once built by from_headers or generate: "00-<32 hex trace id>-<16 hex parent id>-<2
  // hex flags>". Empty in a default-constructed context (no trace: background plugin calls).
  std::string traceparent;
  // The vendors' list, forwarded only with the traceparent it came with; empty when none.
  std::string tracestate;

  std::string_view trace_id() const;  // empty for a default-constructed (empty) context

  // The request's context: `traceparent` as received when valid (a later version is cut to the
  // fields version 00 defines, as the spec asks) with its `tracestate`; otherwise a new one,
  // and any tracestate is dropped (it belongs to the trace it came with).
  static TraceContext from_headers(std::string_view traceparent, std::string_view tracestate);
  // A new trace: random trace and parent ids, flags 00 (we do not sample).
  static TraceContext generate();
};

// True when `value` is a traceparent this code accepts (version 00, or a later one whose first
// 55 characters parse as version 00 and are followed by nothing or '-').
bool valid_traceparent(std::string_view value);

}  // namespace dpa::obs
