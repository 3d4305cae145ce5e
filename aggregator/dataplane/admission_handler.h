// POST /apis/{g}/{v}/admission/validate|mutate: an admission.k8s.io/v1 AdmissionReview in, the
// plugin's AdmissionControl verdict out (reference grafana-aggregator-behaviour.md §4), with a
// JSON Patch computed from the plugin's mutated object. Fixed against Grafana: Content-Type may
// carry parameters (415 otherwise), a bad body, nil request or unknown operation is 400, plugin
// failures are 502/503/504, and the plugin gets a plugin-level context (no datasource lookup).
#pragma once

#include "aggregator/dataplane/context.h"

#include <string>

namespace dpa::dataplane {

enum class AdmissionKind { kValidate, kMutate };

struct ParsedAdmissionReview {
  std::string api_version;  // as received (admission.k8s.io/v1)
  std::string uid;
  std::string ns;           // request.namespace
  pluginv2::AdmissionRequest request;  // without pluginContext
  nlohmann::json object;    // request.object (null when absent)
};

// Content-Type check and AdmissionReview decoding; 415/400 on failure.
api::Expected<ParsedAdmissionReview> parse_admission_review(std::string_view content_type,
                                                            std::string_view body);

// The response AdmissionReview (compact JSON). 502 when a mutation's object bytes are empty or not
// JSON.
api::Expected<std::string> validation_review(const ParsedAdmissionReview& review,
                                             const pluginv2::ValidationResponse& response);
api::Expected<std::string> mutation_review(const ParsedAdmissionReview& review,
                                           const pluginv2::MutationResponse& response);

std::string base64_encode(std::string_view bytes);

void handle_admission(std::shared_ptr<const DataPlaneContext> context,
                      std::shared_ptr<http::Exchange> exchange, RouteMatch match,
                      AdmissionKind kind);

}  // namespace dpa::dataplane
