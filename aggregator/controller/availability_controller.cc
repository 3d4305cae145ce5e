// One worker thread owns the evaluation. Triggers (table swap, plugin status change, resync
// timer, explicit resync) only set a flag and wake it. A table swap re-evaluates only the
// services whose entry changed (applying one object to 10,000 checks one); the others are
// re-evaluated on plugin status changes and at the periodic resync. Health checks are asynchronous: the gRPC
// callback posts its result back to the worker, which ignores results from a superseded check
// (generation numbers) and writes the condition only when it differs from the last one written.
#include "aggregator/controller/availability_controller.h"

#include "aggregator/observability/containment.h"
#include "aggregator/observability/log.h"

namespace dpa::controller {

struct AvailabilityController::State {
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  bool dirty = true;          // evaluate every service
  bool table_changed = false;  // evaluate the services whose entry changed
  std::shared_ptr<const dataplane::RouteTable> table = dataplane::RouteTable::empty();
  std::deque<HealthResult> results;
  std::map<std::string, AvailableCondition> written;

  void wake_dirty() {
    {
      std::lock_guard lock(mutex);
      dirty = true;
    }
    cv.notify_all();
  }
};

AvailabilityController::AvailabilityController(
    std::shared_ptr<const dataplane::DataPlaneContext> context, ConditionWriter writer,
    AvailabilityOptions options)
    : context_(std::move(context)), writer_(std::move(writer)), options_(options),
      state_(std::make_shared<State>()) {}

AvailabilityController::~AvailabilityController() { stop(); }

void AvailabilityController::start() {
  std::weak_ptr<State> weak = state_;
  context_->plugins.on_status_change([weak](const std::string&, plugin::PluginStatus) {
    if (auto state = weak.lock()) state->wake_dirty();
  });
  worker_ = std::thread([this] { run(); });
}

void AvailabilityController::stop() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->cv.notify_all();
  if (worker_.joinable()) worker_.join();
}

void AvailabilityController::set_services(std::shared_ptr<const dataplane::RouteTable> table) {
  {
    std::lock_guard lock(state_->mutex);
    state_->table = std::move(table);
    state_->table_changed = true;
  }
  state_->cv.notify_all();
}

void AvailabilityController::resync() { state_->wake_dirty(); }

std::map<std::string, AvailableCondition> AvailabilityController::conditions() const {
  std::lock_guard lock(state_->mutex);
  return state_->written;
}

void AvailabilityController::rewrite() {
  {
    std::lock_guard lock(state_->mutex);
    state_->written.clear();
  }
  state_->wake_dirty();
}

std::optional<AvailableCondition> AvailabilityController::condition(const std::string& name) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->written.find(name);
  if (it == state_->written.end()) return std::nullopt;
  return it->second;
}

void AvailabilityController::run() {
  auto next_resync = std::chrono::steady_clock::now() + options_.resync_interval;
  for (;;) {
    bool evaluate = false;
    bool only_changed = false;
    std::deque<HealthResult> results;
    {
      std::unique_lock lock(state_->mutex);
      state_->cv.wait_until(lock, next_resync, [this] {
        return state_->stopping || state_->dirty || state_->table_changed ||
               !state_->results.empty();
      });
      if (state_->stopping) return;
      if (std::chrono::steady_clock::now() >= next_resync) {
        state_->dirty = true;
        next_resync = std::chrono::steady_clock::now() + options_.resync_interval;
      }
      evaluate = state_->dirty || state_->table_changed;
      only_changed = !state_->dirty;
      state_->dirty = false;
      state_->table_changed = false;
      results.swap(state_->results);
    }
    obs::contain("availability controller", [&] {
      for (auto& r : results) {
        auto it = in_flight_.find(r.name);
        if (it == in_flight_.end() || it->second != r.generation) continue;  // superseded
        in_flight_.erase(it);
        record(r.name, std::move(r.condition));
      }
      if (evaluate) evaluate_all(only_changed);
    });
  }
}

void AvailabilityController::evaluate_all(bool only_changed) {
  std::shared_ptr<const dataplane::RouteTable> table;
  {
    std::lock_guard lock(state_->mutex);
    table = state_->table;
  }
  // One walk over the services and seen_, both in name order: a new or changed entry forgets its
  // written condition and is evaluated (every entry, unless only_changed); a name gone is
  // forgotten. No copy of the names: at 10,000 services this runs on every table change.
  const auto services = table->services();
  auto forget_written = [&](const std::string& name) {
    std::lock_guard lock(state_->mutex);
    state_->written.erase(name);
  };
  auto forget = [&](auto it) {
    in_flight_.erase(it->first);
    forget_written(it->first);
    return seen_.erase(it);
  };
  auto seen = seen_.begin();
  for (const auto& s : services) {
    while (seen != seen_.end() && seen->first < s->name) seen = forget(seen);
    const bool known = seen != seen_.end() && seen->first == s->name;
    if (known && seen->second == s) {  // unchanged since the last evaluation
      ++seen;
      if (!only_changed) evaluate(*s);
      continue;
    }
    if (known) {
      seen->second = s;
    } else {
      seen = seen_.emplace_hint(seen, s->name, s);
    }
    ++seen;
    forget_written(s->name);
    evaluate(*s);
  }
  while (seen != seen_.end()) seen = forget(seen);
}

void AvailabilityController::evaluate(const dataplane::ServiceEntry& service) {
  const std::string& plugin_id = service.spec.plugin_id;
  const auto status = context_->plugins.status(plugin_id);
  auto with_detail = [&](std::string text) {
    return status.message.empty() ? text : text + ": " + status.message;
  };
  switch (status.state) {
    case plugin::PluginState::kNotFound:
      in_flight_.erase(service.name);
      return record(service.name, {false, kReasonPluginNotFound,
                                   "plugin \"" + plugin_id + "\" is not installed"});
    case plugin::PluginState::kStarting:
      in_flight_.erase(service.name);
      return record(service.name, {false, kReasonPluginStarting,
                                   with_detail("plugin \"" + plugin_id + "\" is starting")});
    case plugin::PluginState::kUnavailable:
      in_flight_.erase(service.name);
      return record(service.name, {false, kReasonPluginUnavailable,
                                   with_detail("plugin \"" + plugin_id + "\" is unavailable")});
    case plugin::PluginState::kRunning:
      break;
  }
  bool wants_health = false;
  for (const auto& s : service.spec.services) wants_health = wants_health || s.type == "health";
  if (!wants_health) {
    in_flight_.erase(service.name);
    return record(service.name, {true, kReasonPassed, "plugin \"" + plugin_id + "\" is running"});
  }
  if (in_flight_.count(service.name) != 0) return;  // a check is already under way

  // A datasource of the plugin's type when one is provisioned (a datasource plugin's health is
  // its datasource's), else a plugin-level check.
  auto snapshot = context_->datasources ? context_->datasources() : nullptr;
  const plugin::Datasource* ds = nullptr;
  if (snapshot) {
    for (const auto& candidate : snapshot->all()) {
      if (candidate.type == plugin_id) {
        ds = &candidate;
        break;
      }
    }
  }
  auto target = dataplane::resolve_plugin(*context_, plugin_id, ds, snapshot, nullptr, "default");
  if (!target) {
    // The plugin stopped between status() and client(): the next status change re-evaluates.
    return record(service.name, {false, kReasonPluginUnavailable, target.error().message});
  }
  const uint64_t generation = ++generation_;
  in_flight_[service.name] = generation;
  pluginv2::CheckHealthRequest request;
  *request.mutable_plugincontext() = std::move(target->plugin_context);
  std::weak_ptr<State> weak = state_;
  const std::string what = ds ? "datasource \"" + ds->uid + "\"" : "plugin \"" + plugin_id + "\"";
  target->client->check_health(
      std::move(request), options_.health_timeout,
      [weak, name = service.name, generation, what](
          api::Expected<pluginv2::CheckHealthResponse> result) {
        AvailableCondition c;
        if (result && result->status() == pluginv2::CheckHealthResponse::OK) {
          c = {true, kReasonPassed, "health check of " + what + " passed"};
        } else if (result) {
          c = {false, kReasonHealthCheckFailed,
               "health check of " + what + " failed" +
                   (result->message().empty() ? "" : ": " + result->message())};
        } else if (result.error().code == 501) {
          c = {true, kReasonPassed, "plugin has no health check; it is running"};
        } else if (result.error().code == 503) {
          c = {false, kReasonPluginUnavailable, result.error().message};
        } else {
          c = {false, kReasonHealthCheckFailed, result.error().message};
        }
        auto state = weak.lock();
        if (!state) return;
        {
          std::lock_guard lock(state->mutex);
          state->results.push_back({name, generation, std::move(c)});
        }
        state->cv.notify_all();
      });
}

void AvailabilityController::record(const std::string& name, AvailableCondition condition) {
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->written.find(name);
    if (it != state_->written.end() && it->second == condition) return;
    state_->written[name] = condition;
  }
  obs::info("dataplaneservice availability changed",
            {{"name", name}, {"available", condition.available}, {"reason", condition.reason},
             {"message", condition.message}});
  if (writer_) writer_(name, condition.available, condition.reason, condition.message);
}

}  // namespace dpa::controller
