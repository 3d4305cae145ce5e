#include "aggregator/app/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace dpa::app {
namespace {

Config parse(std::vector<std::string> args, bool* help_out = nullptr) {
  std::vector<char*> argv;
  static std::string program = "dataplane-aggregator";
  argv.push_back(program.data());
  for (auto& a : args) argv.push_back(a.data());
  bool help = false;
  Config c = parse_config(static_cast<int>(argv.size()), argv.data(), help);
  if (help_out) *help_out = help;
  return c;
}

TEST(ConfigTest, DefaultsMatchTheDesign) {
  Config c = parse({});
  EXPECT_EQ(c.bind_address, "127.0.0.1");
  EXPECT_EQ(c.port, 8080);
  // HTTPS by default: kubectl sends the generated admin token only over TLS.
  EXPECT_EQ(c.secure_port, 8443);
  EXPECT_TRUE(c.plugins_dirs.empty());
  EXPECT_FALSE(c.authentication_configured());
  EXPECT_EQ(c.authorization_modes, (std::vector<std::string>{"AlwaysAllow"}));
}

TEST(ConfigTest, AuthenticationFlags) {
  Config c = parse({"--token-auth-file", "t.csv", "--authorization-mode", "ABAC,Webhook",
                    "--authorization-policy-file", "p.jsonl", "--authorization-webhook-config-file",
                    "w.yaml", "--requestheader-allowed-names", "front-proxy,aggregator",
                    "--webhook-timeout", "3s"});
  EXPECT_TRUE(c.authentication_configured());
  EXPECT_EQ(c.authorization_modes, (std::vector<std::string>{"ABAC", "Webhook"}));
  EXPECT_EQ(c.requestheader_allowed_names,
            (std::vector<std::string>{"front-proxy", "aggregator"}));
  EXPECT_EQ(c.webhook_timeout, std::chrono::seconds(3));
  EXPECT_THROW(parse({"--authorization-mode", "RBAC"}), ConfigError);
  EXPECT_THROW(parse({"--authorization-mode", "ABAC"}), ConfigError);
  EXPECT_THROW(parse({"--proxy-client-cert-file", "c.crt"}), ConfigError);
}

TEST(ConfigTest, FlagsInBothForms) {
  Config c = parse({"--port=0", "--data-dir", "/tmp/x", "--plugins-dir", "a", "--plugins-dir=b",
                    "--access-log=false", "--request-timeout", "2m"});
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.data_dir, "/tmp/x");
  EXPECT_EQ(c.plugins_dirs, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(c.access_log);
  EXPECT_EQ(c.request_timeout, std::chrono::seconds(120));
}

TEST(ConfigTest, BadFlagsAreReportedByName) {
  EXPECT_THROW(parse({"--no-such-flag", "1"}), ConfigError);
  EXPECT_THROW(parse({"--port", "eighty"}), ConfigError);
  EXPECT_THROW(parse({"--port"}), ConfigError);
  EXPECT_THROW(parse({"--port", "70000"}), ConfigError);
  EXPECT_THROW(parse({"--tls-cert-file", "c.pem"}), ConfigError);
  EXPECT_THROW(parse({"--port", "-1", "--secure-port", "-1"}), ConfigError);
  try {
    parse({"--threads", "x"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--threads"), std::string::npos);
  }
}

TEST(ConfigTest, YamlFileWithCommandLineOverride) {
  std::string path = ::testing::TempDir() + "/dpa-config.yaml";
  {
    std::ofstream out(path);
    out << "port: 9000\nbind-address: 0.0.0.0\nplugins-dir: [x, y]\ndelegate-url: http://d\n";
  }
  Config c = parse({"--config", path, "--port", "9001"});
  EXPECT_EQ(c.port, 9001);
  EXPECT_EQ(c.bind_address, "0.0.0.0");
  EXPECT_EQ(c.plugins_dirs, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(c.delegate_url, "http://d");
  {
    std::ofstream out(path);
    out << "nonsense: [\n";
  }
  EXPECT_THROW(parse({"--config", path}), ConfigError);
  // Malformed files yaml-cpp 0.7 never returned from: an error, at once (libyaml reads them now).
  for (const char* text : {"!!str, y", "\"\"t\n?\n", "port: [[1], 2]\n", "port:\n"}) {
    {
      std::ofstream out(path);
      out << text;
    }
    EXPECT_THROW(parse({"--config", path}), ConfigError) << text;
  }
  std::remove(path.c_str());
}

TEST(ConfigTest, HelpListsEveryDeploymentFlag) {
  bool help = false;
  parse({"--help"}, &help);
  EXPECT_TRUE(help);
  std::string text = usage();
  for (const char* flag : {"--bind-address", "--port", "--secure-port", "--tls-cert-file",
                           "--tls-private-key-file", "--data-dir", "--plugins-dir",
                           "--datasources", "--delegate-url", "--delegate-ca-file",
                           "--delegate-client-cert-file", "--delegate-client-key-file"}) {
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace dpa::app
