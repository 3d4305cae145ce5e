// CallResource of the testdata plugin: `echo` reflects the request as JSON, `stream?chunks=N`
// answers in N body chunks, `status/<code>` answers that code, anything else 404.
#pragma once

#include "plugins/sdk/handlers.h"
#include "plugins/testdata/stats.h"

namespace dpa::testdata {

class ResourceHandler final : public sdk::CallResourceHandler {
 public:
  explicit ResourceHandler(Stats& stats) : stats_(stats) {}
  grpc::Status call_resource(const sdk::CallContext& ctx,
                             const pluginv2::CallResourceRequest& request,
                             sdk::ResourceSender& sender) override;

 private:
  Stats& stats_;
};

}  // namespace dpa::testdata
