// Starts the real gpx_testdata binary as a host would and exercises every service over gRPC.
#include "aggregator/frames/arrow_codec.h"
#include "plugins/proto/backend.grpc.pb.h"
#include "plugins/proto/grpc_controller.grpc.pb.h"
#include "plugins/proto/health.grpc.pb.h"
#include "tests/sdk/plugin_process.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

namespace dpa::sdk::testing {
namespace {

using namespace std::chrono_literals;

bool file_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::chrono::system_clock::time_point in(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

class TestdataPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    plugin_ = PluginProcess::start(TESTDATA_BINARY);
    ASSERT_FALSE(plugin_->handshake().empty()) << "no handshake; stderr:\n" << plugin_->stderr_text();
  }

  pluginv2::PluginContext context(const std::string& json_data = "{}") {
    pluginv2::PluginContext ctx;
    ctx.set_orgid(1);
    ctx.set_pluginid("grafana-testdata-datasource");
    auto* ds = ctx.mutable_datasourceinstancesettings();
    ds->set_uid("td1");
    ds->set_name("TestData");
    ds->set_jsondata(json_data);
    return ctx;
  }

  pluginv2::DataQuery query(const std::string& ref_id, const nlohmann::json& json) {
    pluginv2::DataQuery q;
    q.set_refid(ref_id);
    q.set_maxdatapoints(50);
    q.set_intervalms(1000);
    q.mutable_timerange()->set_fromepochms(1700000000000);
    q.mutable_timerange()->set_toepochms(1700003600000);
    q.set_json(json.dump());
    return q;
  }

  pluginv2::QueryDataResponse query_data(const std::vector<pluginv2::DataQuery>& queries,
                                         grpc::Status* status_out = nullptr,
                                         std::chrono::milliseconds deadline = 10s) {
    auto stub = pluginv2::Data::NewStub(plugin_->channel());
    pluginv2::QueryDataRequest request;
    *request.mutable_plugincontext() = context();
    for (const auto& q : queries) *request.add_queries() = q;
    pluginv2::QueryDataResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(deadline));
    const grpc::Status status = stub->QueryData(&ctx, request, &response);
    if (status_out != nullptr) {
      *status_out = status;
    } else {
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    return response;
  }

  std::string metrics_text() {
    auto stub = pluginv2::Diagnostics::NewStub(plugin_->channel());
    pluginv2::CollectMetricsRequest request;
    pluginv2::CollectMetricsResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(5s));
    EXPECT_TRUE(stub->CollectMetrics(&ctx, request, &response).ok());
    return response.metrics().prometheus();
  }

  std::unique_ptr<PluginProcess> plugin_;
};

TEST_F(TestdataPlugin, HandshakeLineAndHealthServiceServing) {
  const auto fields = plugin_->handshake_fields();
  ASSERT_EQ(fields.size(), 6u) << plugin_->handshake();
  EXPECT_EQ(fields[0], "1");
  EXPECT_EQ(fields[1], "2");
  EXPECT_EQ(fields[2], "unix");
  EXPECT_EQ(fields[3].front(), '/');
  EXPECT_NE(fields[3].find("/plugin"), std::string::npos);
  EXPECT_EQ(fields[4], "grpc");
  EXPECT_EQ(fields[5], "");
  EXPECT_TRUE(file_exists(plugin_->address()));

  auto health = grpc::health::v1::Health::NewStub(plugin_->channel());
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("plugin");
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(5s));
  ASSERT_TRUE(health->Check(&ctx, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Logs are hclog JSON lines on stderr.
  const std::string err = plugin_->stderr_text();
  const auto first_line = err.substr(0, err.find('\n'));
  const auto log = nlohmann::json::parse(first_line, nullptr, false);
  ASSERT_TRUE(log.is_object()) << err;
  EXPECT_EQ(log["@level"], "info");
  EXPECT_EQ(log["@message"], "plugin started");
  EXPECT_EQ(log["@module"], "plugin.grafana-testdata-datasource");
  EXPECT_TRUE(log.contains("@timestamp"));
}

TEST_F(TestdataPlugin, RandomWalkIsArrowWithRowsLabelsAndSeed) {
  const nlohmann::json json = {{"refId", "A"}, {"scenarioId", "random_walk"},
                               {"seed", 42},   {"labels", "host=a, dc=eu"}};
  auto response = query_data({query("A", json), query("B", json)});
  ASSERT_EQ(response.responses().count("A"), 1u);
  const auto& a = response.responses().at("A");
  EXPECT_EQ(a.status(), 200);
  EXPECT_EQ(a.error(), "");
  EXPECT_EQ(a.format(), pluginv2::ARROW);
  ASSERT_EQ(a.frames_size(), 1);
  const std::string& bytes = a.frames(0);
  ASSERT_GT(bytes.size(), 12u);
  EXPECT_EQ(bytes.substr(0, 6), "ARROW1");
  EXPECT_EQ(bytes.substr(bytes.size() - 6), "ARROW1");

  auto frame = frames::read_arrow(bytes);
  ASSERT_TRUE(frame.ok()) << frame.error().message;
  EXPECT_EQ(frame->ref_id, "A");
  ASSERT_EQ(frame->fields.size(), 2u);
  EXPECT_EQ(frame->fields[0].type, frames::FieldType::kTime);
  EXPECT_EQ(frame->fields[1].type, frames::FieldType::kFloat64);
  EXPECT_GT(frame->rows(), 10u);
  EXPECT_LE(frame->rows(), 50u);
  EXPECT_EQ(frame->fields[1].labels.at("host"), "a");
  EXPECT_EQ(frame->fields[1].labels.at("dc"), "eu");
  // Inside the query's time range, increasing.
  const auto& t = frame->fields[0].ints;
  EXPECT_GE(t.front(), int64_t{1700000000000} * 1000000);
  EXPECT_LE(t.back(), int64_t{1700003600000} * 1000000);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_GT(t[i], t[i - 1]);

  // Same seed, same walk.
  auto b = frames::read_arrow(response.responses().at("B").frames(0));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->fields[1].floats, frame->fields[1].floats);
}

TEST_F(TestdataPlugin, TableHasTypedAndNullableColumns) {
  auto response = query_data({query("T", {{"scenarioId", "table"}})});
  const auto& t = response.responses().at("T");
  ASSERT_EQ(t.status(), 200);
  ASSERT_EQ(t.frames_size(), 1);
  auto frame = frames::read_arrow(t.frames(0));
  ASSERT_TRUE(frame.ok()) << frame.error().message;
  EXPECT_EQ(frame->rows(), 3u);
  std::map<std::string, const frames::Field*> by_name;
  for (const auto& f : frame->fields) by_name[f.name] = &f;
  ASSERT_TRUE(by_name.count("name") && by_name.count("count") && by_name.count("up") &&
              by_name.count("comment"));
  EXPECT_EQ(by_name["name"]->type, frames::FieldType::kString);
  EXPECT_EQ(by_name["name"]->strings[1], "beta");
  EXPECT_EQ(by_name["count"]->type, frames::FieldType::kInt64);
  EXPECT_EQ(by_name["count"]->ints[2], 300);
  EXPECT_EQ(by_name["up"]->type, frames::FieldType::kBool);
  EXPECT_TRUE(by_name["comment"]->nullable);
  EXPECT_TRUE(by_name["comment"]->is_null(1));
  EXPECT_FALSE(by_name["comment"]->is_null(0));
}

TEST_F(TestdataPlugin, ErrorSlowRawAndStreamingScenarios) {
  auto response = query_data({
      query("E", {{"scenarioId", "error"}, {"errorStatus", 400}, {"errorMessage", "boom"}}),
      query("F", {{"scenarioId", "error"}}),
      query("R", {{"scenarioId", "raw_frame"}, {"frameBase64", "bm90IGFycm93"}}),
      query("S", {{"scenarioId", "streaming"}}),
      query("U", {{"scenarioId", "no_such_thing"}}),
  });
  const auto& e = response.responses().at("E");
  EXPECT_EQ(e.status(), 400);
  EXPECT_EQ(e.error(), "boom");
  EXPECT_EQ(response.responses().at("F").status(), 500);
  EXPECT_FALSE(response.responses().at("F").error().empty());
  const auto& r = response.responses().at("R");
  EXPECT_EQ(r.status(), 200);
  ASSERT_EQ(r.frames_size(), 1);
  EXPECT_EQ(r.frames(0), "not arrow");
  const auto& s = response.responses().at("S");
  ASSERT_EQ(s.frames_size(), 1);
  auto stream_frame = frames::read_arrow(s.frames(0));
  ASSERT_TRUE(stream_frame.ok());
  ASSERT_TRUE(stream_frame->meta.has_value());
  EXPECT_EQ((*stream_frame->meta)["channel"], "ds/td1/counter");
  EXPECT_EQ(response.responses().at("U").status(), 400);

  // slow: a deadline shorter than delayMs fails the call.
  grpc::Status status;
  const auto started = std::chrono::steady_clock::now();
  query_data({query("W", {{"scenarioId", "slow"}, {"delayMs", 5000}})}, &status, 300ms);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  // and one within the deadline answers data after the delay.
  const auto slow_start = std::chrono::steady_clock::now();
  auto slow = query_data({query("W", {{"scenarioId", "slow"}, {"delayMs", 200}})});
  EXPECT_GE(std::chrono::steady_clock::now() - slow_start, 200ms);
  EXPECT_EQ(slow.responses().at("W").status(), 200);
  EXPECT_EQ(slow.responses().at("W").frames_size(), 1);
}

TEST_F(TestdataPlugin, CheckHealthOkAndFailing) {
  auto stub = pluginv2::Diagnostics::NewStub(plugin_->channel());
  for (const bool fail : {false, true}) {
    pluginv2::CheckHealthRequest request;
    *request.mutable_plugincontext() = context(fail ? R"({"failHealth":true})" : "{}");
    pluginv2::CheckHealthResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(5s));
    ASSERT_TRUE(stub->CheckHealth(&ctx, request, &response).ok());
    if (fail) {
      EXPECT_EQ(response.status(), pluginv2::CheckHealthResponse::ERROR);
    } else {
      EXPECT_EQ(response.status(), pluginv2::CheckHealthResponse::OK);
      EXPECT_EQ(response.message(), "Data source is working");
    }
    const auto details = nlohmann::json::parse(response.jsondetails(), nullptr, false);
    ASSERT_TRUE(details.is_object());
    EXPECT_EQ(details["uid"], "td1");
  }
}

std::vector<pluginv2::CallResourceResponse> call_resource(PluginProcess& plugin,
                                                          const std::string& method,
                                                          const std::string& path,
                                                          const std::string& url,
                                                          const std::string& body = "") {
  auto stub = pluginv2::Resource::NewStub(plugin.channel());
  pluginv2::CallResourceRequest request;
  request.set_method(method);
  request.set_path(path);
  request.set_url(url);
  request.set_body(body);
  (*request.mutable_headers())["X-Test"].add_values("yes");
  grpc::ClientContext ctx;
  ctx.set_deadline(in(10s));
  auto reader = stub->CallResource(&ctx, request);
  std::vector<pluginv2::CallResourceResponse> messages;
  pluginv2::CallResourceResponse message;
  while (reader->Read(&message)) messages.push_back(message);
  EXPECT_TRUE(reader->Finish().ok());
  return messages;
}

TEST_F(TestdataPlugin, CallResourceEchoStreamStatusAndNotFound) {
  auto echo = call_resource(*plugin_, "POST", "echo", "echo?x=1", R"({"hello":"world"})");
  ASSERT_EQ(echo.size(), 1u);
  EXPECT_EQ(echo[0].code(), 200);
  EXPECT_EQ(echo[0].headers().at("Content-Type").values(0), "application/json");
  const auto body = nlohmann::json::parse(echo[0].body());
  EXPECT_EQ(body["method"], "POST");
  EXPECT_EQ(body["url"], "echo?x=1");
  EXPECT_EQ(body["body"], R"({"hello":"world"})");
  EXPECT_EQ(body["headers"]["X-Test"][0], "yes");

  auto chunks = call_resource(*plugin_, "GET", "stream", "stream?chunks=4");
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0].code(), 200);
  EXPECT_EQ(chunks[0].headers().count("Content-Type"), 1u);
  EXPECT_EQ(chunks[1].code(), 0);
  EXPECT_TRUE(chunks[1].headers().empty());
  std::string all;
  for (const auto& c : chunks) all += c.body();
  EXPECT_EQ(all, "chunk 1\nchunk 2\nchunk 3\nchunk 4\n");

  auto teapot = call_resource(*plugin_, "GET", "status/418", "status/418");
  ASSERT_EQ(teapot.size(), 1u);
  EXPECT_EQ(teapot[0].code(), 418);

  auto missing = call_resource(*plugin_, "GET", "nope", "nope");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0].code(), 404);
}

TEST_F(TestdataPlugin, SubscribeAndRunCounterStreamThenCancel) {
  auto stub = pluginv2::Stream::NewStub(plugin_->channel());
  auto subscribe = [&](const std::string& path) {
    pluginv2::SubscribeStreamRequest request;
    *request.mutable_plugincontext() = context();
    request.set_path(path);
    pluginv2::SubscribeStreamResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(5s));
    EXPECT_TRUE(stub->SubscribeStream(&ctx, request, &response).ok());
    return response;
  };
  auto counter = subscribe("counter");
  EXPECT_EQ(counter.status(), pluginv2::SubscribeStreamResponse::OK);
  EXPECT_TRUE(nlohmann::json::parse(counter.data(), nullptr, false).contains("schema"));
  EXPECT_EQ(subscribe("echo").status(), pluginv2::SubscribeStreamResponse::OK);
  EXPECT_EQ(subscribe("other").status(), pluginv2::SubscribeStreamResponse::NOT_FOUND);
  EXPECT_EQ(subscribe("denied").status(), pluginv2::SubscribeStreamResponse::PERMISSION_DENIED);

  pluginv2::RunStreamRequest request;
  *request.mutable_plugincontext() = context();
  request.set_path("counter");
  request.set_data(R"({"intervalMs":20})");
  grpc::ClientContext ctx;
  auto reader = stub->RunStream(&ctx, request);
  pluginv2::StreamPacket packet;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(reader->Read(&packet));
    const auto frame = nlohmann::json::parse(packet.data(), nullptr, false);
    ASSERT_TRUE(frame.is_object()) << packet.data();
    ASSERT_TRUE(frame.contains("schema"));
    EXPECT_EQ(frame["data"]["values"][1][0], i) << packet.data();
  }
  EXPECT_NE(metrics_text().find("testdata_streams_running 1"), std::string::npos);
  ctx.TryCancel();
  while (reader->Read(&packet)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The plugin notices the cancellation and the stream stops.
  bool stopped = false;
  for (int i = 0; i < 100 && !stopped; ++i) {
    stopped = metrics_text().find("testdata_streams_running 0") != std::string::npos;
    if (!stopped) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(stopped);
}

TEST_F(TestdataPlugin, PublishIsEchoedIntoRunStream) {
  auto stub = pluginv2::Stream::NewStub(plugin_->channel());
  pluginv2::RunStreamRequest run;
  run.set_path("echo");
  grpc::ClientContext run_ctx;
  auto reader = stub->RunStream(&run_ctx, run);

  // RunStream subscribes asynchronously: publish until the first echo arrives.
  std::atomic<bool> received{false};
  std::string got;
  std::thread read_thread([&] {
    pluginv2::StreamPacket packet;
    if (reader->Read(&packet)) {
      got = packet.data();
      received = true;
    }
  });
  for (int i = 0; i < 100 && !received; ++i) {
    pluginv2::PublishStreamRequest request;
    request.set_path("echo");
    request.set_data(R"({"msg":"hi"})");
    pluginv2::PublishStreamResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(5s));
    ASSERT_TRUE(stub->PublishStream(&ctx, request, &response).ok());
    EXPECT_EQ(response.status(), pluginv2::PublishStreamResponse::OK);
    EXPECT_EQ(response.data(), R"({"msg":"hi"})");
    std::this_thread::sleep_for(20ms);
  }
  run_ctx.TryCancel();
  read_thread.join();
  EXPECT_TRUE(received);
  EXPECT_EQ(got, R"({"msg":"hi"})");
  reader->Finish();

  pluginv2::PublishStreamRequest denied;
  denied.set_path("counter");
  denied.set_data("{}");
  pluginv2::PublishStreamResponse response;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->PublishStream(&ctx, denied, &response).ok());
  EXPECT_EQ(response.status(), pluginv2::PublishStreamResponse::PERMISSION_DENIED);
}

TEST_F(TestdataPlugin, CollectMetricsCountsQueries) {
  query_data({query("A", {{"scenarioId", "random_walk"}}), query("B", {{"scenarioId", "table"}})});
  const std::string text = metrics_text();
  EXPECT_NE(text.find("# TYPE testdata_queries_served_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("testdata_queries_served_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("testdata_streams_running 0\n"), std::string::npos) << text;
}

TEST_F(TestdataPlugin, ValidateAndMutateAdmission) {
  auto stub = pluginv2::AdmissionControl::NewStub(plugin_->channel());
  pluginv2::AdmissionRequest request;
  request.set_operation(pluginv2::AdmissionRequest::CREATE);
  request.mutable_kind()->set_group("testdata.grafana.app");
  request.mutable_kind()->set_version("v1");
  request.mutable_kind()->set_kind("Thing");

  request.set_object_bytes(R"({"apiVersion":"testdata.grafana.app/v1","kind":"Thing","metadata":{"name":"x"},"spec":{"deny":true}})");
  {
    pluginv2::ValidationResponse response;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->ValidateAdmission(&ctx, request, &response).ok());
    EXPECT_FALSE(response.allowed());
    EXPECT_EQ(response.result().status(), "Failure");
    EXPECT_EQ(response.result().reason(), "Forbidden");
    EXPECT_EQ(response.result().code(), 403);
    EXPECT_FALSE(response.result().message().empty());
    EXPECT_EQ(response.warnings_size(), 2);
  }
  request.set_object_bytes(R"({"apiVersion":"testdata.grafana.app/v1","kind":"Thing","metadata":{"name":"x","labels":{"a":"b"}},"spec":{"deny":false}})");
  {
    pluginv2::ValidationResponse response;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->ValidateAdmission(&ctx, request, &response).ok());
    EXPECT_TRUE(response.allowed());
  }
  {
    pluginv2::MutationResponse response;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->MutateAdmission(&ctx, request, &response).ok());
    EXPECT_TRUE(response.allowed());
    const auto object = nlohmann::json::parse(response.object_bytes());
    EXPECT_EQ(object["metadata"]["labels"]["testdata.grafana.app/mutated"], "true");
    EXPECT_EQ(object["metadata"]["labels"]["a"], "b");
    EXPECT_EQ(object["spec"]["deny"], false);
  }
}

TEST_F(TestdataPlugin, ConvertObjectsToTargetVersion) {
  auto stub = pluginv2::ResourceConversion::NewStub(plugin_->channel());
  pluginv2::ConversionRequest request;
  request.set_uid("conv-1");
  request.mutable_target_version()->set_group("testdata.grafana.app");
  request.mutable_target_version()->set_version("v2");
  auto* object = request.add_objects();
  object->set_raw(R"({"apiVersion":"testdata.grafana.app/v1","kind":"Thing","metadata":{"name":"x"},"spec":{"oldName":"n"}})");
  object->set_content_type("application/json");
  pluginv2::ConversionResponse response;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->ConvertObjects(&ctx, request, &response).ok());
  EXPECT_EQ(response.uid(), "conv-1");
  EXPECT_EQ(response.result().status(), "Success");
  ASSERT_EQ(response.objects_size(), 1);
  EXPECT_EQ(response.objects(0).content_type(), "application/json");
  const auto converted = nlohmann::json::parse(response.objects(0).raw());
  EXPECT_EQ(converted["apiVersion"], "testdata.grafana.app/v2");
  EXPECT_EQ(converted["spec"]["newName"], "n");
  EXPECT_FALSE(converted["spec"].contains("oldName"));
}

TEST_F(TestdataPlugin, ShutdownStopsProcessAndRemovesSocket) {
  const std::string socket = plugin_->address();
  ASSERT_TRUE(file_exists(socket));
  // A running stream must not hold the shutdown up.
  auto streams = pluginv2::Stream::NewStub(plugin_->channel());
  pluginv2::RunStreamRequest run;
  run.set_path("counter");
  grpc::ClientContext run_ctx;
  auto reader = streams->RunStream(&run_ctx, run);
  pluginv2::StreamPacket packet;
  ASSERT_TRUE(reader->Read(&packet));

  auto controller = plugin::GRPCController::NewStub(plugin_->channel());
  plugin::Empty request;
  plugin::Empty response;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(5s));
  EXPECT_TRUE(controller->Shutdown(&ctx, request, &response).ok());
  const auto status = plugin_->wait_exit(5s);
  ASSERT_TRUE(status.has_value()) << "plugin still running after Shutdown";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_FALSE(file_exists(socket));
  while (reader->Read(&packet)) {
  }
  reader->Finish();
}

TEST_F(TestdataPlugin, IgnoresSigintAndExitsCleanlyOnSigterm) {
  const std::string socket = plugin_->address();
  plugin_->signal(SIGINT);
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(plugin_->running());
  plugin_->signal(SIGTERM);
  const auto status = plugin_->wait_exit(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_FALSE(file_exists(socket));
}

TEST(TestdataPluginStart, WithoutCookieExitsOneWithMessage) {
  PluginProcess::Options options;
  options.with_cookie = false;
  auto plugin = PluginProcess::start(TESTDATA_BINARY, options);
  const auto status = plugin->wait_exit(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  // Let the drainer collect stderr.
  std::this_thread::sleep_for(100ms);
  EXPECT_NE(plugin->stderr_text().find("This binary is a plugin"), std::string::npos);
}

TEST(TestdataPluginStart, RejectsHostWithoutVersion2) {
  PluginProcess::Options options;
  options.with_cookie = false;
  options.extra_env = {"grafana_plugin_type=datasource", "PLUGIN_PROTOCOL_VERSIONS=1"};
  auto plugin = PluginProcess::start(TESTDATA_BINARY, options);
  const auto status = plugin->wait_exit(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 1);
}

TEST(TestdataPluginStart, UsesPluginUnixSocketDir) {
  char dir_template[] = "/tmp/dpa-sdk-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  PluginProcess::Options options;
  options.extra_env = {"PLUGIN_UNIX_SOCKET_DIR=" + dir};
  auto plugin = PluginProcess::start(TESTDATA_BINARY, options);
  ASSERT_FALSE(plugin->handshake().empty());
  EXPECT_EQ(plugin->address().rfind(dir + "/plugin", 0), 0u) << plugin->address();
  plugin->signal(SIGTERM);
  ASSERT_TRUE(plugin->wait_exit(5s).has_value());
  EXPECT_EQ(::rmdir(dir.c_str()), 0) << "socket left behind in " << dir;
}

TEST(TestdataPluginStart, TcpHandshakeWhenAsked) {
  PluginProcess::Options options;
  options.extra_env = {"DPA_PLUGIN_NETWORK=tcp"};
  auto plugin = PluginProcess::start(TESTDATA_BINARY, options);
  ASSERT_FALSE(plugin->handshake().empty()) << plugin->stderr_text();
  EXPECT_EQ(plugin->network(), "tcp");
  EXPECT_EQ(plugin->address().rfind("127.0.0.1:", 0), 0u) << plugin->address();
  auto health = grpc::health::v1::Health::NewStub(plugin->channel());
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("plugin");
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(5s));
  ASSERT_TRUE(health->Check(&ctx, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace dpa::sdk::testing
