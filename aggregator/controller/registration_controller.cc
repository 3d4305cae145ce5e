// Events are handed from the store's notification thread to one worker thread, which drains
// everything queued, applies it to its name -> entry map and rebuilds the table once: a burst of
// applies costs one rebuild, and the store's thread is never held up by table building.
// Each swap derives the new table from the current one with only the changed group/versions
// (RouteTable::with_changes), so applying one object to a table of 10,000 copies one shard and
// builds one matcher.
//
// Unlike Grafana (reference §12.2-12.4), routing is keyed by the spec's group/version, so renames,
// group/version changes and deletes can never leave a stale mount behind.
#include "aggregator/controller/registration_controller.h"

#include "aggregator/dataplaneservice/types.h"
#include "aggregator/observability/containment.h"
#include "aggregator/observability/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace dpa::controller {

RegistrationController::RegistrationController(storage::Store& store)
    : store_(store), table_(dataplane::RouteTable::empty()) {}

RegistrationController::~RegistrationController() { stop(); }

void RegistrationController::on_table_change(TableListener listener) {
  listeners_.push_back(std::move(listener));
}

std::shared_ptr<const dataplane::RouteTable> RegistrationController::table() const {
  std::lock_guard lock(table_mutex_);
  return table_;
}

api::Outcome RegistrationController::start() {
  storage::ListOptions options;
  options.prefix = dataplaneservice::kKeyPrefix;
  auto listed = store_.list(options);
  if (!listed) return listed.error();
  for (const auto& record : listed->items) {
    upsert(record.key.substr(options.prefix.size()), record.value);
  }
  publish();
  ready_.store(true, std::memory_order_release);
  obs::info("registration controller synced",
            {{"dataplaneservices", entries_.size()}, {"revision", listed->revision}});

  worker_ = std::thread([this] { run(); });
  auto watch = store_.watch(options.prefix, listed->revision,
                            [this](const std::vector<storage::Event>& events) {
                              {
                                std::lock_guard lock(queue_mutex_);
                                queue_.push_back(events);
                              }
                              queue_cv_.notify_one();
                            });
  if (!watch) {
    stop();
    return watch.error();
  }
  watch_ = std::move(watch.value());
  return api::Ok{};
}

void RegistrationController::stop() {
  if (watch_) {
    watch_->cancel();
    watch_.reset();
  }
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void RegistrationController::run() {
  for (;;) {
    std::deque<std::vector<storage::Event>> batch;
    {
      std::unique_lock lock(queue_mutex_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      batch.swap(queue_);
    }
    obs::contain("registration controller", [&] {
      for (const auto& events : batch) {
        for (const auto& event : events) apply(event);
      }
      publish();
    });
  }
}

void RegistrationController::apply(const storage::Event& event) {
  const std::string prefix = dataplaneservice::kKeyPrefix;
  if (event.record.key.compare(0, prefix.size(), prefix) != 0) return;
  const std::string name = event.record.key.substr(prefix.size());
  if (event.type == storage::EventType::kDeleted) {
    set_entry(name, nullptr);
    return;
  }
  upsert(name, event.record.value);
}

void RegistrationController::upsert(const std::string& name, const std::string& value) {
  auto object = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    obs::warn("stored dataplaneservice is not a JSON object; not routed", {{"name", name}});
    set_entry(name, nullptr);
    invalid_count_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto spec = dataplaneservice::decode_spec(object);
  if (!spec) {
    obs::warn("stored dataplaneservice is invalid; not routed",
              {{"name", name}, {"error", spec.error().message}});
    set_entry(name, nullptr);
    invalid_count_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // A status write, or a change to metadata, leaves the spec alone: the entry (and the route
  // table's matcher built for it, and the availability controller's verdict) stay as they are.
  if (auto it = entries_.find(name); it != entries_.end() && it->second->spec == *spec) return;
  auto entry = std::make_shared<dataplane::ServiceEntry>();
  entry->name = name;
  entry->spec = std::move(spec.value());
  set_entry(name, std::move(entry));
}

void RegistrationController::set_entry(const std::string& name,
                                       std::shared_ptr<const dataplane::ServiceEntry> entry) {
  if (auto it = entries_.find(name); it != entries_.end()) {
    if (auto key = dataplane::RouteTable::route_key(it->second->spec)) {
      auto claims = claims_.find(*key);
      std::erase_if(claims->second, [&](const auto& claim) { return claim->name == name; });
      if (claims->second.empty()) claims_.erase(claims);
      changed_keys_.insert(*key);
    }
    entries_.erase(it);
  }
  if (!entry) return;
  if (auto key = dataplane::RouteTable::route_key(entry->spec)) {
    auto& claims = claims_[*key];
    claims.insert(std::upper_bound(claims.begin(), claims.end(), name,
                                   [](const std::string& n, const auto& claim) {
                                     return n < claim->name;
                                   }),
                  entry);
    changed_keys_.insert(*key);
  } else {
    obs::warn("dataplaneservice has no routable group/version; skipped", {{"name", name}});
  }
  entries_.emplace(name, std::move(entry));
}

void RegistrationController::publish() {
  std::vector<std::pair<std::string, std::shared_ptr<const dataplane::ServiceEntry>>> changes;
  changes.reserve(changed_keys_.size());
  for (const auto& key : changed_keys_) {
    auto claims = claims_.find(key);
    if (claims == claims_.end()) {
      changes.emplace_back(key, nullptr);
      continue;
    }
    const auto& entry = claims->second.front();
    if (claims->second.size() > 1) {
      obs::warn("dataplaneservices claim the same group/version; the first by name is routed",
                {{"group_version", key}, {"routed", entry->name},
                 {"claims", claims->second.size()}});
    }
    changes.emplace_back(key, entry);
  }
  changed_keys_.clear();
  auto table = this->table()->with_changes(changes);
  {
    std::lock_guard lock(table_mutex_);
    table_ = table;
  }
  for (const auto& listener : listeners_) listener(table);
}

}  // namespace dpa::controller
