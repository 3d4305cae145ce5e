#include "aggregator/plugin/plugin_process.h"
#include "tests/plugin/test_util.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>

namespace dpa::plugin {
namespace {
using namespace std::chrono_literals;
using testing::TempDir;
using testing::write_script;
using Clock = std::chrono::steady_clock;

ProcessOptions script_options(const std::filesystem::path& script,
                              std::chrono::milliseconds timeout = 5s) {
  ProcessOptions o;
  o.plugin_id = "script";
  o.executable = script;
  o.env = build_plugin_env({.grafana_version = "12.0.0", .extra = {}, .plugin_settings = {}});
  o.start_timeout = timeout;
  return o;
}

ProcessOptions fake_options(std::map<std::string, std::string> extra = {}) {
  ProcessOptions o;
  o.plugin_id = "fake";
  o.executable = testing::self_exe();
  extra["DPA_TEST_FAKE_PLUGIN"] = "1";
  o.env = build_plugin_env({.grafana_version = "12.0.0", .extra = extra, .plugin_settings = {}});
  o.start_timeout = 20s;
  return o;
}

pid_t read_pid(const std::filesystem::path& file) {
  pid_t pid = -1;
  testing::wait_until([&] { return std::filesystem::exists(file); }, 2s);
  std::ifstream(file) >> pid;
  return pid;
}

TEST(PluginProcess, BadHandshakeLineIsAnErrorQuotingIt) {
  TempDir dir;
  write_script(dir.path() / "bad", "echo 'Starting my plugin v1.0'\nsleep 30\n");
  auto start = Clock::now();
  auto p = PluginProcess::start(script_options(dir.path() / "bad"));
  ASSERT_FALSE(p.ok());
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_NE(p.error().message.find("\"Starting my plugin v1.0\""), std::string::npos)
      << p.error().message;
  EXPECT_NE(p.error().message.find("plugin script:"), std::string::npos) << p.error().message;
}

TEST(PluginProcess, WrongProtocolVersionIsAnError) {
  TempDir dir;
  write_script(dir.path() / "v1", "echo '1|1|unix|/tmp/nothing|grpc|'\nsleep 30\n");
  auto p = PluginProcess::start(script_options(dir.path() / "v1"));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("unsupported plugin protocol version 1"), std::string::npos)
      << p.error().message;
}

TEST(PluginProcess, ExitWithoutHandshakeIsReportedWithStatusAndStderr) {
  TempDir dir;
  write_script(dir.path() / "dies", "echo 'missing config file' >&2\nexit 3\n");
  auto start = Clock::now();
  auto p = PluginProcess::start(script_options(dir.path() / "dies"));
  ASSERT_FALSE(p.ok());
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_EQ(p.error().code, 503);
  EXPECT_NE(p.error().message.find("exited before we could connect (exit code 3)"),
            std::string::npos)
      << p.error().message;
  EXPECT_NE(p.error().message.find("missing config file"), std::string::npos) << p.error().message;
}

TEST(PluginProcess, HangingPluginTimesOutAndIsKilled) {
  TempDir dir;
  auto pidfile = dir.path() / "pid";
  // The shell and its `sleep` child: both must be gone afterwards (process group kill).
  write_script(dir.path() / "hang", "echo $$ > " + pidfile.string() + "\nsleep 60\n");
  auto start = Clock::now();
  auto p = PluginProcess::start(script_options(dir.path() / "hang", 500ms));
  auto took = Clock::now() - start;
  ASSERT_FALSE(p.ok());
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 3s);
  EXPECT_NE(p.error().message.find("timed out after 500 ms"), std::string::npos)
      << p.error().message;
  pid_t pid = read_pid(pidfile);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(testing::process_gone(pid));
}

TEST(PluginProcess, ExitBeforeHandshakeEvenIfAGrandchildKeepsStdout) {
  TempDir dir;
  // The background sleep inherits stdout, so EOF never comes; the exit must still be noticed.
  write_script(dir.path() / "fork", "sleep 60 &\nexit 4\n");
  auto start = Clock::now();
  auto p = PluginProcess::start(script_options(dir.path() / "fork"));
  ASSERT_FALSE(p.ok());
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_NE(p.error().message.find("exit code 4"), std::string::npos) << p.error().message;
}

TEST(PluginProcess, MissingBinaryIsAnError) {
  auto p = PluginProcess::start(script_options("/nonexistent/gpx_linux_amd64"));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("exit code 127"), std::string::npos) << p.error().message;
}

TEST(PluginProcess, CancelledStartReturnsPromptly) {
  TempDir dir;
  write_script(dir.path() / "hang", "sleep 60\n");
  std::atomic<bool> cancel{false};
  std::thread t([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  auto start = Clock::now();
  auto p = PluginProcess::start(script_options(dir.path() / "hang", 30s), [&] { return cancel.load(); });
  t.join();
  ASSERT_FALSE(p.ok());
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_NE(p.error().message.find("cancelled"), std::string::npos);
}

TEST(PluginProcess, ShutdownStopsARealPlugin) {
  TempDir markers;
  auto p = PluginProcess::start(fake_options({{"DPA_TEST_MARKER_DIR", markers.path().string()}}));
  ASSERT_TRUE(p.ok()) << p.error().message;
  auto& proc = **p;
  EXPECT_EQ(proc.handshake().network, "unix");
  EXPECT_TRUE(proc.target().starts_with("unix:/"));
  pid_t pid = proc.pid();
  EXPECT_FALSE(proc.exited());
  auto start = Clock::now();
  proc.stop();
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_TRUE(proc.exited());
  EXPECT_EQ(proc.exit_description(), "exit code 0");  // it exited by itself after Shutdown
  EXPECT_TRUE(std::filesystem::exists(markers.path() / ("shutdown-" + std::to_string(pid))));
  EXPECT_TRUE(testing::process_gone(pid));
}

TEST(PluginProcess, PluginIgnoringShutdownIsKilledAfterTheGrace) {
  TempDir tmp;  // the killed plugin's socket file stays in here
  auto p = PluginProcess::start(
      fake_options({{"DPA_TEST_IGNORE_SHUTDOWN", "1"}, {"TMPDIR", tmp.path().string()}}));
  ASSERT_TRUE(p.ok()) << p.error().message;
  pid_t pid = (*p)->pid();
  auto start = Clock::now();
  (*p)->stop(300ms);
  auto took = Clock::now() - start;
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 2s);
  EXPECT_NE((*p)->exit_description().find("SIGKILL"), std::string::npos)
      << (*p)->exit_description();
  EXPECT_TRUE(testing::process_gone(pid));
}

TEST(PluginProcess, NoOrphanWhenTheHostDies) {
  // A "mini host" (this binary again) starts the fake plugin and prints its pid; we SIGKILL the
  // host and PR_SET_PDEATHSIG must take the plugin with it.
  TempDir tmp;
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  std::string self = testing::self_exe().string();
  // Built before fork: the child of a threaded process may only exec.
  std::vector<std::string> env = build_plugin_env(
      {.grafana_version = "",
       .extra = {{"DPA_TEST_MINI_HOST", self}, {"TMPDIR", tmp.path().string()}},
       .plugin_settings = {}});
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char* argv[] = {self.data(), nullptr};
  pid_t host = fork();
  if (host == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execve(self.c_str(), argv, envp.data());
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  close(out[0]);
  ASSERT_FALSE(line.empty()) << "mini host printed no pid";
  pid_t plugin = static_cast<pid_t>(std::stoi(line));
  ASSERT_FALSE(testing::process_gone(plugin));
  kill(host, SIGKILL);
  waitpid(host, nullptr, 0);
  EXPECT_TRUE(testing::wait_until([&] { return testing::process_gone(plugin); }, 3s));
}

}  // namespace
}  // namespace dpa::plugin
