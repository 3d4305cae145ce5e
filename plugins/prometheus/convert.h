// Turns a Prometheus HTTP API answer (/api/v1/query, /api/v1/query_range) into Grafana frames:
// one time + value frame per series, series labels on the value field, meta.type
// timeseries-multi. Prometheus errors become an error message and an HTTP-like status.
#pragma once

#include "aggregator/frames/frame.h"

#include <string>
#include <string_view>
#include <vector>

namespace dpa::prometheus {

struct Converted {
  std::vector<frames::Frame> frames;
  std::string error;  // empty = success
  int status = 200;   // the status for DataResponse.status
  bool ok() const { return error.empty(); }
};

// http_status and body as received; `expr` names frames of series without __name__ and goes into
// meta.executedQueryString.
Converted convert_response(int http_status, std::string_view body, const std::string& expr);

// Prometheus sample value text ("1.5", "NaN", "+Inf", "-Inf") as a double; NaN when unparsable.
double parse_sample_value(const std::string& text);

}  // namespace dpa::prometheus
