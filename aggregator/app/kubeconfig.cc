#include "aggregator/app/kubeconfig.h"

#include "aggregator/app/atomic_file.h"

#include <openssl/rand.h>

#include <fstream>
#include <stdexcept>

namespace dpa::app {

void write_kubeconfig(const std::string& path, const std::string& server,
                      const std::string& ca_file, const std::string& token) {
  std::string out =
      "apiVersion: v1\n"
      "kind: Config\n"
      "clusters:\n"
      "- name: dataplane-aggregator\n"
      "  cluster:\n"
      "    server: " + server + "\n";
  if (!ca_file.empty()) out += "    certificate-authority: " + ca_file + "\n";
  out +=
      "contexts:\n"
      "- name: dataplane-aggregator\n"
      "  context:\n"
      "    cluster: dataplane-aggregator\n"
      "    user: dataplane-aggregator\n"
      "current-context: dataplane-aggregator\n"
      "users:\n"
      "- name: dataplane-aggregator\n";
  out += token.empty() ? "  user: {}\n" : "  user:\n    token: " + token + "\n";
  // Private: it may hold a credential.
  auto written = write_file_atomically(path, out, 0600);
  if (!written.ok()) throw std::runtime_error(written.error().message);
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
  auto written = write_file_atomically(path, token + "\n", 0600);
  if (!written.ok()) throw std::runtime_error(written.error().message);
  return token;
}

}  // namespace dpa::app
