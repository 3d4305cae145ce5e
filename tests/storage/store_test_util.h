// Helpers shared by the storage tests: the two backends for typed tests, a self-deleting temporary
// directory, polling waits, and a watch callback that records every event it receives.
#pragma once

#include "aggregator/storage/etcd/etcd_store.h"
#include "aggregator/storage/memory_store.h"
#include "aggregator/storage/sqlite_store.h"
#include "aggregator/storage/store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dpa::storage::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "dpa-storage-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Polls `done` until it holds or `timeout` passes; returns its last value.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Collects events delivered to a watch; callback() is the WatchCallback to register.
class EventLog {
 public:
  WatchCallback callback() {
    return [this](const std::vector<Event>& events) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const Event& event : events) events_.push_back(event);
      ++calls_;
    };
  }
  std::vector<Event> events() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_.size();
  }
  // Waits until at least n events arrived; false on timeout.
  bool wait_for(std::size_t n) {
    return eventually([&] { return size() >= n; });
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Event> events_;
  std::size_t calls_ = 0;
};

struct MemoryBackend {
  static constexpr const char* kName = "Memory";
  static std::unique_ptr<Store> open(const std::string&, const StoreOptions& options) {
    return std::make_unique<MemoryStore>(options);
  }
};

struct SqliteBackend {
  static constexpr const char* kName = "Sqlite";
  static std::unique_ptr<Store> open(const std::string& dir, const StoreOptions& options) {
    auto store = SqliteStore::open(dir, options);
    if (!store.ok()) {
      ADD_FAILURE() << store.error().message;
      return nullptr;
    }
    return std::move(store).value();
  }
};

// The client URLs of the binary's etcd (etcd_cluster.h), started on first use.
std::vector<std::string> shared_etcd_urls();

// A fresh key prefix in the binary's shared etcd for each store opened: tests never see each
// other's keys, and nothing else writes to that etcd while a test runs, so revisions are
// contiguous from the store's first one (tests count from base_revision()).
struct EtcdBackend {
  static constexpr const char* kName = "Etcd";
  static std::unique_ptr<Store> open(const std::string&, const StoreOptions& options) {
    static int opened = 0;
    auto client = etcd::Client::create({.servers = shared_etcd_urls()});
    if (!client.ok()) {
      ADD_FAILURE() << client.error().message;
      return nullptr;
    }
    etcd::EtcdStoreOptions etcd_options;
    etcd_options.prefix = "/dpa-test/" + std::to_string(::getpid()) + "/" + std::to_string(++opened);
    etcd_options.compaction_interval = std::chrono::milliseconds(0);
    etcd_options.start_timeout = std::chrono::seconds(30);
    auto store = etcd::EtcdStore::open(std::move(client).value(), etcd_options, options);
    if (!store.ok()) {
      ADD_FAILURE() << store.error().message;
      return nullptr;
    }
    return std::move(store).value();
  }
};

// Store watches a backend has registered (StoreEngine or EtcdStore).
inline std::size_t active_watches(const Store& store) {
  if (auto* engine = dynamic_cast<const StoreEngine*>(&store)) return engine->active_watches();
  if (auto* etcd = dynamic_cast<const etcd::EtcdStore*>(&store)) return etcd->active_watches();
  return 0;
}

using Backends = ::testing::Types<MemoryBackend, SqliteBackend, EtcdBackend>;
// The backends whose revisions count from 1 in every test (etcd's are shared by the whole binary):
// for tests that name absolute revisions.
using EngineBackends = ::testing::Types<MemoryBackend, SqliteBackend>;
class BackendNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};

inline std::vector<int64_t> revisions_of(const std::vector<Event>& events) {
  std::vector<int64_t> revisions;
  for (const Event& event : events) revisions.push_back(event.revision);
  return revisions;
}

}  // namespace dpa::storage::testing
