// gtest main, plus the child mode of the durability test (crash_child.h).
#include "aggregator/storage/sqlite_store.h"
#include "tests/storage/crash_child.h"
#include "tests/storage/etcd_cluster.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdlib>
#include <thread>
#include <vector>

namespace dpa::storage {

std::vector<std::string> testing::shared_etcd_urls() {
  auto& cluster = testing::shared_etcd();
  if (!cluster.ready()) ADD_FAILURE() << "etcd did not start (is etcd-server installed?)";
  return cluster.urls();
}

std::string crash_child_value(const std::string& key) {
  nlohmann::json doc = {{"key", key}, {"padding", std::string(2048, 'p')}, {"tail", key}};
  return doc.dump();
}

int crash_child_main(const std::string& data_dir, const std::string& round) {
  auto store = SqliteStore::open(data_dir);
  if (!store.ok()) return 2;
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (long i = 0;; ++i) {
        std::string key = "/crash/r" + round + "/t" + std::to_string(t) + "/" + std::to_string(i);
        if (!(*store)->create(key, crash_child_value(key)).ok()) std::_Exit(3);
        std::string line = key + "\n";  // one write(2) below PIPE_BUF: lines never interleave
        if (::write(STDOUT_FILENO, line.data(), line.size()) < 0) std::_Exit(4);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return 0;
}

}  // namespace dpa::storage

int main(int argc, char** argv) {
  if (const char* dir = std::getenv(dpa::storage::kCrashChildEnv)) {
    const char* round = std::getenv(dpa::storage::kCrashRoundEnv);
    return dpa::storage::crash_child_main(dir, round ? round : "0");
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
