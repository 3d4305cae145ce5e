// Keeps the data-plane route table in step with the stored DataPlaneServices: lists them once,
// then watches the store and, for every batch of changes, builds a new immutable RouteTable and
// swaps it in atomically. Request threads only ever take a snapshot (table()); they never wait.
#pragma once

#include "aggregator/dataplane/route_table.h"
#include "aggregator/storage/store.h"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dpa::controller {

class RegistrationController {
 public:
  using TableListener = std::function<void(std::shared_ptr<const dataplane::RouteTable>)>;

  explicit RegistrationController(storage::Store& store);
  ~RegistrationController();
  RegistrationController(const RegistrationController&) = delete;
  RegistrationController& operator=(const RegistrationController&) = delete;

  // Initial sync (list, build, publish: ready() is true when it returns OK), then starts the watch
  // and the worker thread. The list is a local read (memory, or SQLite's file), never a wait on
  // a write.
  api::Outcome start();
  // Stops the watch and the worker. Idempotent; the destructor calls it.
  void stop();

  // The current snapshot; never null (empty before start()).
  std::shared_ptr<const dataplane::RouteTable> table() const;
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  std::size_t size() const { return table()->size(); }
  // Count of stored objects that could not be decoded (and are therefore not routed).
  std::size_t invalid_count() const { return invalid_count_.load(std::memory_order_relaxed); }

  // Called on the controller's worker thread after every swap (and once after the initial sync,
  // on the caller of start()), e.g. to drive the availability controller. Register before start().
  void on_table_change(TableListener listener);

 private:
  void apply(const storage::Event& event);
  void upsert(const std::string& name, const std::string& value);
  // Sets (entry non-null) or removes a name's entry and its claim on a group/version.
  void set_entry(const std::string& name, std::shared_ptr<const dataplane::ServiceEntry> entry);
  // Swaps in the table with every claim changed since the last publish resolved.
  void publish();
  void run();

  storage::Store& store_;
  std::unique_ptr<storage::Watch> watch_;

  // Owned by the worker thread after start() (the initial sync runs before the thread exists).
  std::map<std::string, std::shared_ptr<const dataplane::ServiceEntry>> entries_;
  // Every object claiming each group/version, sorted by name: the first is routed (validation
  // rejects a second claim; if two are stored anyway the choice is deterministic). Almost always
  // one: a vector, not a map per group/version.
  std::map<std::string, std::vector<std::shared_ptr<const dataplane::ServiceEntry>>> claims_;
  std::set<std::string> changed_keys_;  // claims changed since the last publish
  std::vector<TableListener> listeners_;

  mutable std::mutex table_mutex_;
  std::shared_ptr<const dataplane::RouteTable> table_;

  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<std::vector<storage::Event>> queue_;
  bool stopping_ = false;
  std::thread worker_;

  std::atomic<bool> ready_{false};
  std::atomic<std::size_t> invalid_count_{0};
};

}  // namespace dpa::controller
