#include "aggregator/plugin/handshake.h"
#include "aggregator/plugin/plugin_client.h"
#include "aggregator/plugin/plugin_log.h"
#include "aggregator/plugin/plugin_process.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

namespace dpa::plugin {
namespace {

TEST(Handshake, AcceptsGoPluginLines) {
  auto h = parse_handshake("1|2|unix|/tmp/plugin2917388231|grpc|\n");
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_EQ(h->core_version, 1);
  EXPECT_EQ(h->app_version, 2);
  EXPECT_EQ(h->network, "unix");
  EXPECT_EQ(h->address, "/tmp/plugin2917388231");
  EXPECT_EQ(h->protocol, "grpc");

  auto tcp = parse_handshake("1|2|tcp|127.0.0.1:10000|grpc");  // the SDK's 5-field form
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(grpc_target(tcp->network, tcp->address), "ipv4:127.0.0.1:10000");
  EXPECT_TRUE(parse_handshake("1|2|tcp|127.0.0.1:1|grpc||true\r\n").ok());
}

TEST(Handshake, RejectsBadLinesQuotingThem) {
  struct Case {
    const char* line;
    const char* why;
  } cases[] = {
      {"hello world", "fewer than 4 parts"},
      {"1|2|unix", "fewer than 4 parts"},
      {"", "fewer than 4 parts"},
      {"2|2|unix|/tmp/x|grpc", "incompatible core API version"},
      {"x|2|unix|/tmp/x|grpc", "core protocol version is not a number"},
      {"1|1|unix|/tmp/x|grpc", "unsupported plugin protocol version"},
      {"1|3|unix|/tmp/x|grpc", "unsupported plugin protocol version"},
      {"1|2|udp|/tmp/x|grpc", "unsupported network type"},
      {"1|2|unix|/tmp/x|netrpc", "unsupported protocol"},
      {"1|2|unix|/tmp/x", "unsupported protocol \"netrpc\""},  // missing defaults to netrpc
      {"1|2|unix||grpc", "empty network address"},
  };
  for (const auto& c : cases) {
    auto h = parse_handshake(c.line);
    ASSERT_FALSE(h.ok()) << c.line;
    EXPECT_NE(h.error().message.find(c.why), std::string::npos) << h.error().message;
    EXPECT_NE(h.error().message.find("\"" + std::string(c.line) + "\""), std::string::npos)
        << h.error().message;
    EXPECT_EQ(h.error().code, 502);
  }
}

TEST(Handshake, GrpcTargets) {
  EXPECT_EQ(grpc_target("unix", "/tmp/p1"), "unix:/tmp/p1");
  EXPECT_EQ(grpc_target("tcp", "127.0.0.1:9"), "ipv4:127.0.0.1:9");
  EXPECT_EQ(grpc_target("tcp", "[::1]:9"), "ipv6:[::1]:9");
  EXPECT_EQ(grpc_target("tcp", "localhost:9"), "dns:///localhost:9");
}

TEST(PluginLog, ParsesHclogJsonPrefixesAndPanics) {
  PluginLogParser p;
  auto j = p.parse(R"({"@level":"warn","@message":"slow query","@module":"plugin.x","@timestamp":"t","msg":"x","rows":3})");
  EXPECT_EQ(j.level, obs::Level::kWarn);
  EXPECT_EQ(j.message, "slow query");
  EXPECT_EQ(j.fields["rows"], 3);
  EXPECT_EQ(j.fields["plugin_module"], "plugin.x");
  EXPECT_EQ(j.fields["plugin_msg"], "x");  // never overwrites our own keys
  EXPECT_FALSE(j.fields.contains("msg"));

  auto e = p.parse("[ERROR] cannot connect");
  EXPECT_EQ(e.level, obs::Level::kError);
  EXPECT_EQ(e.message, "cannot connect");
  auto i = p.parse("[INFO]  ready");
  EXPECT_EQ(i.level, obs::Level::kInfo);
  EXPECT_EQ(i.message, "ready");
  auto plain = p.parse("some text");
  EXPECT_EQ(plain.level, obs::Level::kDebug);
  auto trace = p.parse(R"({"@level":"trace","@message":"t"})");
  EXPECT_EQ(trace.level, obs::Level::kDebug);

  auto panic = p.parse("panic: runtime error: index out of range");
  EXPECT_EQ(panic.level, obs::Level::kError);
  auto after = p.parse("goroutine 1 [running]:");
  EXPECT_EQ(after.level, obs::Level::kError);  // the rest of a panic is errors too
}

TEST(PluginEnv, GoPluginEnvironment) {
  const char* host[] = {"PATH=/usr/bin", "PLUGIN_CLIENT_CERT=pem", "PLUGIN_MULTIPLEX_GRPC=true",
                        "GF_PLUGIN_FROM_ENV=env wins", "PLUGIN_MIN_PORT=1", nullptr};
  EnvOptions opts;
  opts.grafana_version = "11.2.0";
  opts.extra = {{"EXTRA", "1"}};
  opts.plugin_settings = {{"custom_setting", "v"}, {"from_env", "ini"}, {"path", "skip"}};
  auto env = build_plugin_env(opts, host);
  auto has = [&](const std::string& kv) {
    return std::find(env.begin(), env.end(), kv) != env.end();
  };
  auto has_key = [&](const std::string& k) {
    return std::any_of(env.begin(), env.end(), [&](const std::string& e) { return e.starts_with(k + "="); });
  };
  EXPECT_TRUE(has("PATH=/usr/bin"));
  EXPECT_FALSE(has_key("PLUGIN_CLIENT_CERT"));
  EXPECT_FALSE(has_key("PLUGIN_MULTIPLEX_GRPC"));
  EXPECT_TRUE(has("GF_VERSION=11.2.0"));
  EXPECT_TRUE(has("GF_PLUGIN_CUSTOM_SETTING=v"));
  EXPECT_TRUE(has("GF_PLUGIN_FROM_ENV=env wins"));
  EXPECT_FALSE(has_key("GF_PLUGIN_PATH"));
  EXPECT_TRUE(has("EXTRA=1"));
  EXPECT_TRUE(has("grafana_plugin_type=datasource"));
  EXPECT_TRUE(has("PLUGIN_MIN_PORT=10000"));
  EXPECT_TRUE(has("PLUGIN_MAX_PORT=25000"));
  EXPECT_TRUE(has("PLUGIN_PROTOCOL_VERSIONS=2"));
}

TEST(GrpcErrors, MapToKubernetesStatus) {
  auto e = map_grpc_error(grpc::Status(grpc::StatusCode::UNAVAILABLE, "conn refused"), "p", "QueryData");
  EXPECT_EQ(e.code, 503);
  EXPECT_EQ(e.reason, "ServiceUnavailable");
  EXPECT_EQ(e.message, "plugin p unavailable: conn refused");
  e = map_grpc_error(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"), "p", "QueryData");
  EXPECT_EQ(e.code, 504);
  EXPECT_EQ(e.reason, "Timeout");
  e = map_grpc_error(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""), "p", "ConvertObjects");
  EXPECT_EQ(e.code, 501);
  EXPECT_EQ(e.reason, "NotImplemented");
  EXPECT_EQ(e.message, "plugin p does not implement ConvertObjects");
  e = map_grpc_error(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  "grpc: received message larger than max (20000000 vs. 16777216)"),
                     "p", "QueryData");
  EXPECT_EQ(e.code, 413);
  e = map_grpc_error(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "quota"), "p", "QueryData");
  EXPECT_EQ(e.code, 502);
  e = map_grpc_error(grpc::Status(grpc::StatusCode::CANCELLED, "gone"), "p", "RunStream");
  EXPECT_EQ(e.code, 503);
  e = map_grpc_error(grpc::Status(grpc::StatusCode::UNKNOWN, "boom"), "p", "QueryData");
  EXPECT_EQ(e.code, 502);
  EXPECT_EQ(e.reason, "BadGateway");
  EXPECT_EQ(e.message, "plugin p failed: boom");
}

}  // namespace
}  // namespace dpa::plugin
