// Kubernetes-style hooks of the testdata plugin: admission (deny objects with spec.deny == true,
// label mutated objects) and conversion (rewrite apiVersion; spec.oldName <-> spec.newName
// between v1 and v2).
#pragma once

#include "plugins/sdk/handlers.h"

namespace dpa::testdata {

inline constexpr const char* kMutatedLabel = "testdata.grafana.app/mutated";

class AdmissionHandler final : public sdk::AdmissionHandler {
 public:
  grpc::Status validate_admission(const sdk::CallContext& ctx,
                                  const pluginv2::AdmissionRequest& request,
                                  pluginv2::ValidationResponse& response) override;
  grpc::Status mutate_admission(const sdk::CallContext& ctx,
                                const pluginv2::AdmissionRequest& request,
                                pluginv2::MutationResponse& response) override;
};

class ConversionHandler final : public sdk::ConversionHandler {
 public:
  grpc::Status convert_objects(const sdk::CallContext& ctx,
                               const pluginv2::ConversionRequest& request,
                               pluginv2::ConversionResponse& response) override;
};

}  // namespace dpa::testdata
