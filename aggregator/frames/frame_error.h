// The one error frames/ returns: a 502 BadGateway Status, since every malformed frame comes from a
// plugin. Built here from status.h alone (same fields as ApiError::bad_gateway) so that frames/,
// which sits below apimachinery/ in the dependency order, needs no link dependency on it and can
// also be used by plugin binaries.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <string>
#include <utility>

namespace dpa::frames::detail {

inline api::ApiError bad_gateway(std::string message) {
  api::ApiError error;
  error.code = 502;
  error.reason = "BadGateway";
  error.message = std::move(message);
  return error;
}

}  // namespace dpa::frames::detail
