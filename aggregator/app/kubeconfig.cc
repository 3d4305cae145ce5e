#include "aggregator/app/kubeconfig.h"

#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace dpa::app {

namespace {

// Creates (or truncates) `path` readable by its owner only, before any secret is written to it.
std::ofstream open_private(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);  // an existing file keeps its old mode through O_CREAT
  ::close(fd);
  return std::ofstream(path, std::ios::trunc);
}

}  // namespace

void write_kubeconfig(const std::string& path, const std::string& server,
                      const std::string& ca_file, const std::string& token) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out = open_private(tmp);
    if (!out) throw std::runtime_error("cannot write " + tmp);
    out << "apiVersion: v1\n"
           "kind: Config\n"
           "clusters:\n"
           "- name: dataplane-aggregator\n"
           "  cluster:\n"
           "    server: " << server << "\n";
    if (!ca_file.empty()) out << "    certificate-authority: " << ca_file << "\n";
    out << "contexts:\n"
           "- name: dataplane-aggregator\n"
           "  context:\n"
           "    cluster: dataplane-aggregator\n"
           "    user: dataplane-aggregator\n"
           "current-context: dataplane-aggregator\n"
           "users:\n"
           "- name: dataplane-aggregator\n";
    if (token.empty()) {
      out << "  user: {}\n";
    } else {
      out << "  user:\n    token: " << token << "\n";
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
}

std::string load_or_create_admin_token(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::string token;
    std::getline(in, token);
    if (token.size() >= 32) return token;
    throw std::runtime_error(path + " holds no usable token (expected at least 32 characters)");
  }
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1) throw std::runtime_error("no randomness for " + path);
  static const char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : random) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out = open_private(tmp);
    out << token << "\n";
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
  return token;
}

}  // namespace dpa::app
