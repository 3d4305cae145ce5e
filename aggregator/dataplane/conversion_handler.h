// POST /apis/{g}/{v}/conversion: an apiextensions.k8s.io/v1 ConversionReview (a CRD conversion
// webhook call) -> ResourceConversion.ConvertObjects. The plugin's StatusResult becomes
// response.result; a plugin that answers with the wrong number of objects or non-JSON objects
// yields a Failure result, so the API server reports it instead of storing garbage.
#pragma once

#include "aggregator/dataplane/context.h"

#include <string>

namespace dpa::dataplane {

struct ParsedConversionReview {
  std::string api_version;  // apiextensions.k8s.io/v1 (v1beta1 accepted and echoed)
  std::string uid;
  pluginv2::ConversionRequest request;  // without pluginContext
};

// 415 for a non-JSON Content-Type, 400 for a malformed review (missing request, uid,
// desiredAPIVersion or objects of the wrong type).
api::Expected<ParsedConversionReview> parse_conversion_review(std::string_view content_type,
                                                              std::string_view body);
std::string conversion_review(const ParsedConversionReview& review,
                              const pluginv2::ConversionResponse& response);

void handle_conversion(std::shared_ptr<const DataPlaneContext> context,
                       std::shared_ptr<http::Exchange> exchange, RouteMatch match);

}  // namespace dpa::dataplane
