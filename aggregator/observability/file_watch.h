// Files the process reads at start and reads again when they change on disk, as kube-apiserver
// does for its certificates and CA bundles: a poll of each file's identity and stamp (device,
// inode, size, modification time, following symlinks) on one thread. A Kubernetes secret or
// configmap volume updates by swapping a symlink, which shows here as a new inode.
//
// A reload that fails (a half-written file, a key that does not match its certificate) keeps what
// was loaded before: the reload function must leave the old state in place on error. The failure
// is logged, and the files are read again at their next change.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dpa::obs {

// What a poll compares: one "path:device:inode:size:mtime;" entry per file ("path:missing;" for
// a file that cannot be stat'ed).
std::string file_fingerprint(const std::vector<std::string>& paths);

class FileWatcher {
 public:
  // Returns "" when reloaded, else why not.
  using Reload = std::function<std::string()>;

  explicit FileWatcher(std::chrono::milliseconds interval);
  ~FileWatcher();  // stops the thread
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

  // `what` names the reload in log lines ("serving certificate"). Call before start().
  void add(std::string what, std::vector<std::string> files, Reload reload);
  void start();
  // Ends the thread (waits for a reload in progress); the destructor does it too. Call it before
  // anything a reload function touches goes away.
  void stop();
  // Polls now instead of at the next tick (SIGHUP); returns at once.
  void check_now();

 private:
  struct Watch {
    std::string what;
    std::vector<std::string> files;
    Reload reload;
    std::string fingerprint;
  };
  void loop();
  void poll();

  const std::chrono::milliseconds interval_;
  std::vector<Watch> watches_;  // only the thread touches them once started
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;   // guarded by mu_
  bool check_ = false;  // guarded by mu_
};

}  // namespace dpa::obs
