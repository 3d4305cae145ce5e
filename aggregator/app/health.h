// /healthz, /livez and /readyz as kube-apiserver serves them: "ok" (200) or, with ?verbose, one
// "[+]name ok" / "[-]name failed: reason" line per check; ?exclude=name skips a check. A failing
// check answers 503 so load balancers take the instance out.
#pragma once

#include "aggregator/http/exchange.h"

#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dpa::app {

class HealthChecks {
 public:
  // A check returns an empty string when healthy, else the reason.
  using Check = std::function<std::string()>;

  void add_liveness(std::string name, Check check);
  void add_readiness(std::string name, Check check);  // also part of /healthz
  // Lines that inform and never fail: with ?verbose, /readyz lists each (entry, detail) the
  // function returns as "[+]<name>/<entry> ok: <detail>" after the checks (a replica's own view
  // of something several replicas share, such as the Available conditions).
  using Report = std::function<std::vector<std::pair<std::string, std::string>>()>;
  void add_report(std::string name, Report report);

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
  std::vector<std::pair<std::string, Report>> reports_;
};

}  // namespace dpa::app
