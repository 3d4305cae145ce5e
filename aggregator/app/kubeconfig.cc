#include "aggregator/app/kubeconfig.h"

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace dpa::app {

void write_kubeconfig(const std::string& path, const std::string& server,
                      const std::string& ca_file) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
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
           "- name: dataplane-aggregator\n"
           "  user: {}\n";
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
}

}  // namespace dpa::app
