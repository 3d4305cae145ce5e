#include "aggregator/app/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace dpa::app {

api::Outcome write_file_atomically(const std::string& path, const std::string& content,
                                   mode_t mode) {
  const std::string tmp = path + ".tmp";
  auto failed = [&](const std::string& what) {
    const std::string cause = std::strerror(errno);
    ::unlink(tmp.c_str());
    return api::ApiError::internal("cannot " + what + " " + path + ": " + cause);
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return failed("write");
  ::fchmod(fd, mode);  // an existing temporary file keeps its old mode through O_CREAT
  for (std::size_t done = 0; done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return failed("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return failed("sync");
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return failed("rename over");
  return api::Ok{};
}

}  // namespace dpa::app
