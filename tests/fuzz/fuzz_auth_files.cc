// The operator's authentication files, read at start: the token file (kube's CSV), the ABAC
// policy (JSON lines) and a webhook's kubeconfig. The input is written to a file and loaded as
// each; a bad file is an error naming it, never a crash.
#include "aggregator/auth/auth.h"
#include "aggregator/auth/webhook.h"

#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dpa;
  static const std::string path = "/tmp/dpa-fuzz-auth-files-" + std::to_string(getpid());
  static boost::asio::io_context io;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)auth::load_token_file(path);
  (void)auth::load_abac_policy(path);
  auth::WebhookOptions options;
  options.config_file = path;
  (void)auth::make_token_webhook(options, io.get_executor());
  return 0;
}
