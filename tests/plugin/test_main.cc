// plugin_test's main: the same binary is the fake plugin (DPA_TEST_FAKE_PLUGIN=1) and the "mini
// host" of the orphan test (DPA_TEST_MINI_HOST=<plugin binary>), otherwise it runs the tests.
#include "aggregator/plugin/plugin_process.h"
#include "tests/plugin/fake_plugin.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace {

// Starts the plugin like the aggregator does, prints its pid, then waits to be killed.
int run_mini_host(const char* binary) {
  dpa::plugin::ProcessOptions opts;
  opts.plugin_id = "fake";
  opts.executable = binary;
  opts.env = dpa::plugin::build_plugin_env({.grafana_version = "12.0.0",
                                            .extra = {{"DPA_TEST_FAKE_PLUGIN", "1"}},
                                            .plugin_settings = {}});
  opts.start_timeout = std::chrono::seconds(20);
  auto proc = dpa::plugin::PluginProcess::start(opts);
  if (!proc) {
    std::fprintf(stderr, "%s\n", proc.error().message.c_str());
    return 3;
  }
  std::printf("%d\n", static_cast<int>((*proc)->pid()));
  std::fflush(stdout);
  while (true) pause();
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("DPA_TEST_FAKE_PLUGIN")) return dpa::plugin::testing::run_fake_plugin_process();
  if (const char* bin = std::getenv("DPA_TEST_MINI_HOST")) {
    unsetenv("DPA_TEST_MINI_HOST");
    return run_mini_host(bin);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
