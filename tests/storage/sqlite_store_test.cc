// SqliteStore beyond the shared contract: persistence across reopen, history read back from disk,
// start-up errors, and the kill -9 durability test (the child is this binary re-executed, see
// test_main.cc).
#include "aggregator/storage/memory_store.h"
#include "aggregator/storage/sqlite_store.h"
#include "tests/storage/crash_child.h"
#include "tests/storage/store_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace dpa::storage {
namespace {

using testing::EventLog;
using testing::TempDir;
using testing::revisions_of;

std::unique_ptr<SqliteStore> open_or_fail(const std::string& dir, StoreOptions options = {}) {
  auto store = SqliteStore::open(dir, options);
  if (!store.ok()) {
    ADD_FAILURE() << store.error().message;
    return nullptr;
  }
  return std::move(store).value();
}

TEST(SqliteStoreTest, ReopenKeepsDataRevisionsAndHistory) {
  TempDir dir;
  {
    auto store = open_or_fail(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->create("/r/a", R"({"a":1})").ok());  // 1
    ASSERT_TRUE(store->create("/r/b", R"({"b":1})").ok());  // 2
    ASSERT_TRUE(store->update("/r/a", R"({"a":2})", 1).ok());  // 3
    ASSERT_TRUE(store->create("/r/c", R"({"c":1})").ok());  // 4
    ASSERT_TRUE(store->remove("/r/b", 2).ok());  // 5
    ASSERT_TRUE(store->compact(2).ok());
  }
  auto store = open_or_fail(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->current_revision(), 5);
  EXPECT_EQ(store->compacted_revision(), 2);
  auto a = store->get("/r/a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->value, R"({"a":2})");
  EXPECT_EQ(a->create_revision, 1);
  EXPECT_EQ(a->mod_revision, 3);
  EXPECT_EQ(store->get("/r/b").error().code, 404);
  EXPECT_EQ(store->list({.prefix = "/r/"})->items.size(), 2u);

  EXPECT_EQ(store->watch("/r/", 1, [](const std::vector<Event>&) {}).error().code, 410);
  EventLog log;
  auto watch = store->watch("/r/", 2, log.callback());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(store->create("/r/d", "{}").ok());
  ASSERT_TRUE(log.wait_for(4));
  auto events = log.events();
  EXPECT_EQ(revisions_of(events), (std::vector<int64_t>{3, 4, 5, 6}));
  EXPECT_EQ(events[2].type, EventType::kDeleted);
  EXPECT_EQ(events[2].record.value, R"({"b":1})");
  EXPECT_EQ(events[2].record.create_revision, 2);
}

TEST(SqliteStoreTest, HistoryOlderThanMemoryIsReadFromDisk) {
  TempDir dir;
  StoreOptions options;
  options.memory_history_limit = 4;
  auto store = open_or_fail(dir.path(), options);
  ASSERT_NE(store, nullptr);
  for (int i = 1; i <= 30; ++i) {
    std::string prefix = i % 3 == 0 ? "/three/" : "/other/";
    ASSERT_TRUE(store->create(prefix + std::to_string(i), "{}").ok());
  }
  EXPECT_EQ(store->compacted_revision(), 0);  // memory overflow is not compaction on disk

  EventLog log;
  auto watch = store->watch("/three/", 0, log.callback());
  ASSERT_TRUE(watch.ok()) << watch.error().message;
  ASSERT_TRUE(store->create("/three/live", "{}").ok());  // 31
  ASSERT_TRUE(log.wait_for(11));
  std::vector<int64_t> expected;
  for (int i = 3; i <= 30; i += 3) expected.push_back(i);
  expected.push_back(31);
  EXPECT_EQ(revisions_of(log.events()), expected);

  // The same after a restart, where only the newest events are loaded into memory.
  watch->reset();
  store.reset();
  store = open_or_fail(dir.path(), options);
  ASSERT_NE(store, nullptr);
  EventLog after_restart;
  auto again = store->watch("/other/", 20, after_restart.callback());
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(after_restart.wait_for(6));
  EXPECT_EQ(revisions_of(after_restart.events()), (std::vector<int64_t>{22, 23, 25, 26, 28, 29}));
}

TEST(SqliteStoreTest, DatabaseIsWalWithFullSync) {
  TempDir dir;
  auto store = open_or_fail(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create("/k", "{}").ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir.path() + "/store.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = 'current_revision'", -1,
                               &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(stmt, 0), 1);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST(SqliteStoreTest, SecondOpenOfTheSameDirectoryIsRefused) {
  TempDir dir;
  auto first = open_or_fail(dir.path());
  ASSERT_NE(first, nullptr);
  auto second = SqliteStore::open(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("in use by another process"), std::string::npos)
      << second.error().message;
  first.reset();
  EXPECT_TRUE(SqliteStore::open(dir.path()).ok());
}

TEST(SqliteStoreTest, CorruptDatabaseIsAClearStartupError) {
  TempDir dir;
  {
    std::ofstream garbage(dir.path() + "/store.db", std::ios::binary);
    for (int i = 0; i < 512; ++i) garbage << "this is not an sqlite database ";
  }
  auto store = open_sqlite_store(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, 500);
  EXPECT_NE(store.error().message.find("store.db"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("not a database"), std::string::npos)
      << store.error().message;
}

TEST(SqliteStoreTest, UnusableDataDirectoryIsAClearStartupError) {
  TempDir dir;
  const std::string file = dir.path() + "/a-file";
  std::ofstream(file) << "x";
  auto store = open_sqlite_store(file + "/data");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("cannot create data directory"), std::string::npos)
      << store.error().message;
  EXPECT_FALSE(open_sqlite_store("").ok());
}

TEST(MemoryStoreTest, HistoryBeyondTheMemoryLimitIsCompacted) {
  StoreOptions options;
  options.memory_history_limit = 3;
  MemoryStore store(options);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store.create("/m/" + std::to_string(i), "{}").ok());
  EXPECT_EQ(store.compacted_revision(), 7);
  EXPECT_EQ(store.watch("", 6, [](const std::vector<Event>&) {}).error().code, 410);
  EventLog log;
  auto watch = store.watch("", 7, log.callback());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(log.wait_for(3));
  EXPECT_EQ(revisions_of(log.events()), (std::vector<int64_t>{8, 9, 10}));
}

// Reads the child's acknowledged keys line by line until `count` arrived (or EOF).
class AckReader {
 public:
  explicit AckReader(int fd) : fd_(fd) {}
  bool read_until(std::size_t count) {
    while (keys_.size() < count) {
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      pending_.append(chunk, static_cast<std::size_t>(n));
      std::size_t newline;
      while ((newline = pending_.find('\n')) != std::string::npos) {
        keys_.push_back(pending_.substr(0, newline));
        pending_.erase(0, newline + 1);
      }
    }
    return true;
  }
  void read_to_end() { read_until(static_cast<std::size_t>(-1)); }
  const std::vector<std::string>& keys() const { return keys_; }

 private:
  int fd_;
  std::string pending_;
  std::vector<std::string> keys_;
};

// A child process creates keys from several threads and prints each key once create() returned
// ok; it is SIGKILLed mid-burst. Every printed key must be in the reopened store, and every
// stored value must be whole (valid JSON, exactly what was written).
TEST(SqliteStoreDurabilityTest, KillNineLosesNoAcknowledgedWrite) {
  TempDir dir;
  std::set<std::string> acknowledged;
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    std::string env_dir = std::string(kCrashChildEnv) + "=" + dir.path();
    std::string env_round = std::string(kCrashRoundEnv) + "=" + std::to_string(round);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      std::vector<std::string> env_strings{env_dir, env_round};
      for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
      std::vector<char*> envp;
      for (auto& s : env_strings) envp.push_back(s.data());
      envp.push_back(nullptr);
      char* argv[] = {self.data(), nullptr};
      ::execve(self.c_str(), argv, envp.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    AckReader reader(fds[0]);
    const std::size_t burst = 40 + 60 * static_cast<std::size_t>(round);
    bool got = reader.read_until(burst);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    reader.read_to_end();
    ::close(fds[0]);
    ASSERT_TRUE(got) << "child stopped early in round " << round;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    acknowledged.insert(reader.keys().begin(), reader.keys().end());

    auto store = open_or_fail(dir.path());
    ASSERT_NE(store, nullptr);
    for (const std::string& key : acknowledged) {
      auto record = store->get(key);
      ASSERT_TRUE(record.ok()) << "acknowledged key lost: " << key;
    }
    auto all = store->list({});
    ASSERT_TRUE(all.ok());
    for (const Record& record : all->items) {
      EXPECT_EQ(record.value, crash_child_value(record.key)) << record.key;
      EXPECT_TRUE(nlohmann::json::accept(record.value)) << record.key;
      EXPECT_EQ(record.create_revision, record.mod_revision);
    }
    // Creates only: one revision per key, and nothing acknowledged missing.
    EXPECT_EQ(static_cast<int64_t>(all->items.size()), store->current_revision());
    EXPECT_GE(all->items.size(), acknowledged.size());
  }
}

}  // namespace
}  // namespace dpa::storage
