// The watcher behind certificate and token reloads: a change of content, a replacement by rename
// and a Kubernetes-style symlink swap each cause one reload; a failed reload is retried at the next
// change, not at every poll.
#include "aggregator/observability/file_watch.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

namespace dpa::obs {
namespace {

namespace fs = std::filesystem;

class FileWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "file_watch_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    return path;
  }

  // Counts reloads; wait_for(n) returns once n have happened (false after 10 s).
  struct Reloads {
    std::mutex mu;
    std::condition_variable cv;
    int count = 0;
    std::string fail_with;  // returned by the reload while set
    FileWatcher::Reload function() {
      return [this] {
        std::lock_guard<std::mutex> lock(mu);
        ++count;
        cv.notify_all();
        return fail_with;
      };
    }
    bool wait_for(int n) {
      std::unique_lock<std::mutex> lock(mu);
      return cv.wait_for(lock, std::chrono::seconds(10), [&] { return count >= n; });
    }
    int seen() {
      std::lock_guard<std::mutex> lock(mu);
      return count;
    }
  };

  fs::path dir_;
};

TEST_F(FileWatchTest, FingerprintSeesContentRenameAndSymlinkSwaps) {
  const std::string file = write("cert.pem", "one");
  const std::string before = file_fingerprint({file});
  EXPECT_EQ(file_fingerprint({file}), before);
  write("cert.pem", "two!");
  const std::string rewritten = file_fingerprint({file});
  EXPECT_NE(rewritten, before);
  write("new.pem", "two!");
  fs::rename(dir_ / "new.pem", file);  // same size, maybe the same second: a new inode
  EXPECT_NE(file_fingerprint({file}), rewritten);
  EXPECT_NE(file_fingerprint({(dir_ / "missing").string()}), before);
}

TEST_F(FileWatchTest, ReloadsOnEachChange) {
  // The layout of a Kubernetes secret volume: the file is a symlink through ..data, which is
  // swapped atomically to a new directory.
  fs::create_directory(dir_ / "v1");
  write("v1/tls.crt", "first");
  fs::create_directory_symlink("v1", dir_ / "..data");
  fs::create_symlink("..data/tls.crt", dir_ / "tls.crt");
  const std::string file = (dir_ / "tls.crt").string();

  Reloads reloads;
  FileWatcher watcher(std::chrono::milliseconds(20));
  watcher.add("test file", {file}, reloads.function());
  watcher.start();

  write("tls.crt", "second, longer");  // written through the symlink
  ASSERT_TRUE(reloads.wait_for(1));

  fs::create_directory(dir_ / "v2");
  write("v2/tls.crt", "third");
  fs::create_directory_symlink("v2", dir_ / "..data_tmp");
  fs::rename(dir_ / "..data_tmp", dir_ / "..data");
  ASSERT_TRUE(reloads.wait_for(2));
}

TEST_F(FileWatchTest, FailedReloadIsTriedAgainAtTheNextChangeOnly) {
  const std::string file = write("tokens.csv", "a,b,c\n");
  const std::string marker = write("marker", "0");
  Reloads failing, rounds;
  failing.fail_with = "bad file";
  FileWatcher watcher(std::chrono::seconds(3600));  // polls only when asked
  watcher.add("failing", {file}, failing.function());
  watcher.add("marker", {marker}, rounds.function());  // polled after "failing" in each round
  watcher.start();

  write("tokens.csv", "broken");
  write("marker", "1");
  watcher.check_now();
  ASSERT_TRUE(rounds.wait_for(1));
  EXPECT_EQ(failing.seen(), 1);

  write("marker", "22");  // a round in which only the marker changed
  watcher.check_now();
  ASSERT_TRUE(rounds.wait_for(2));
  EXPECT_EQ(failing.seen(), 1);

  write("tokens.csv", "fixed,x,y\n");
  write("marker", "333");
  watcher.check_now();
  ASSERT_TRUE(rounds.wait_for(3));
  EXPECT_EQ(failing.seen(), 2);
}

}  // namespace
}  // namespace dpa::obs
