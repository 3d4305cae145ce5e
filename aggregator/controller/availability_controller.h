// Keeps status.conditions[type=Available] of every DataPlaneService right (DESIGN §2.1): whether
// its plugin is installed, started and running, and, when the service lists `health`, whether the
// plugin's CheckHealth passes. Re-evaluated on registration changes, plugin status changes and a
// periodic resync; a condition is written (through the writer callback given at construction)
// only when it changes. Routing never waits on it.
#pragma once

#include "aggregator/dataplane/context.h"
#include "aggregator/dataplane/route_table.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace dpa::controller {

// Condition reasons.
inline constexpr const char* kReasonPassed = "Passed";
inline constexpr const char* kReasonPluginNotFound = "PluginNotFound";
inline constexpr const char* kReasonPluginStarting = "PluginStarting";
inline constexpr const char* kReasonPluginUnavailable = "PluginUnavailable";
inline constexpr const char* kReasonHealthCheckFailed = "HealthCheckFailed";

struct AvailabilityOptions {
  std::chrono::milliseconds resync_interval{30000};
  std::chrono::milliseconds health_timeout{5000};
};

struct AvailableCondition {
  bool available = false;
  std::string reason;
  std::string message;
  bool operator==(const AvailableCondition&) const = default;
};

// Called on the controller's own thread (never an I/O thread); it may block (a store write).
using ConditionWriter = std::function<void(const std::string& name, bool available,
                                           const std::string& reason, const std::string& message)>;

class AvailabilityController {
 public:
  AvailabilityController(std::shared_ptr<const dataplane::DataPlaneContext> context,
                         ConditionWriter writer, AvailabilityOptions options = {});
  ~AvailabilityController();
  AvailabilityController(const AvailabilityController&) = delete;
  AvailabilityController& operator=(const AvailabilityController&) = delete;

  // Subscribes to plugin status changes and starts the worker thread.
  void start();
  void stop();

  // The services to watch; bind to RegistrationController::on_table_change. Any thread.
  void set_services(std::shared_ptr<const dataplane::RouteTable> table);
  // Forces a re-evaluation of every service now (e.g. after a datasource reload). Any thread.
  void resync();
  // Forgets what was written and re-evaluates, so every condition reaches the writer again (the
  // store write itself skips an unchanged one): for a replica that just became the one writing.
  void rewrite();

  // The last condition written for a service.
  std::optional<AvailableCondition> condition(const std::string& name) const;
  // This replica's view of every service: the last condition it evaluated (and wrote, when it
  // writes), by name.
  std::map<std::string, AvailableCondition> conditions() const;

 private:
  struct HealthResult {
    std::string name;
    uint64_t generation;
    AvailableCondition condition;
  };
  struct State;  // shared with plugin-host callbacks, which cannot be unregistered

  void run();
  // Every service, or (only_changed) those whose entry is new since the last evaluation.
  void evaluate_all(bool only_changed);
  void evaluate(const dataplane::ServiceEntry& service);
  void record(const std::string& name, AvailableCondition condition);

  std::shared_ptr<const dataplane::DataPlaneContext> context_;
  ConditionWriter writer_;
  AvailabilityOptions options_;
  std::shared_ptr<State> state_;
  std::thread worker_;

  // Worker-thread only.
  std::map<std::string, uint64_t> in_flight_;  // name -> generation of the pending health check
  // The entry each name had at the last evaluation: a new entry (the object was updated or
  // re-created) forgets the cached condition, so it is written again.
  std::map<std::string, std::shared_ptr<const dataplane::ServiceEntry>> seen_;
  uint64_t generation_ = 0;
};

}  // namespace dpa::controller
