// /healthz, /livez and /readyz as kube-apiserver serves them: "ok" (200) or, with ?verbose, one
// "[+]name ok" / "[-]name failed: reason" line per check; ?exclude=name skips a check. A failing
// check answers 503 so load balancers take the instance out.
#pragma once

#include "aggregator/http/exchange.h"

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace dpa::app {

class HealthChecks {
 public:
  // A check returns an empty string when healthy, else the reason.
  using Check = std::function<std::string()>;

  void add_liveness(std::string name, Check check);
  void add_readiness(std::string name, Check check);  // also part of /healthz

  // path is "/healthz", "/livez" or "/readyz", optionally followed by "/<check name>".
  void handle(http::Exchange& exchange) const;

 private:
  struct Named {
    std::string name;
    Check check;
  };
  mutable std::mutex mutex_;
  std::vector<Named> liveness_;
  std::vector<Named> readiness_;
};

}  // namespace dpa::app
