#include "aggregator/observability/file_watch.h"

#include "aggregator/observability/containment.h"
#include "aggregator/observability/log.h"

#include <sys/stat.h>

namespace dpa::obs {

std::string file_fingerprint(const std::vector<std::string>& paths) {
  std::string out;
  for (const auto& path : paths) {
    struct stat st {};
    out += path;
    if (::stat(path.c_str(), &st) != 0) {
      out += ":missing;";
      continue;
    }
    out += ":" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
           std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + ";";
  }
  return out;
}

FileWatcher::FileWatcher(std::chrono::milliseconds interval) : interval_(interval) {}

FileWatcher::~FileWatcher() { stop(); }

void FileWatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FileWatcher::add(std::string what, std::vector<std::string> files, Reload reload) {
  std::string fingerprint = file_fingerprint(files);
  watches_.push_back({std::move(what), std::move(files), std::move(reload), std::move(fingerprint)});
}

void FileWatcher::start() {
  if (watches_.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void FileWatcher::check_now() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    check_ = true;
  }
  wake_.notify_all();
}

void FileWatcher::loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, interval_, [this] { return stop_ || check_; });
      if (stop_) return;
      check_ = false;
    }
    poll();
  }
}

void FileWatcher::poll() {
  for (auto& watch : watches_) {
    std::string fingerprint = file_fingerprint(watch.files);
    if (fingerprint == watch.fingerprint) continue;
    watch.fingerprint = std::move(fingerprint);
    std::string error;
    contain("file reload", [&] { error = watch.reload(); });
    if (error.empty()) {
      info("reloaded " + watch.what, {{"files", watch.files}});
    } else {
      warn(watch.what + " not reloaded; still using what was loaded before",
           {{"files", watch.files}, {"error", error}});
    }
  }
}

}  // namespace dpa::obs
