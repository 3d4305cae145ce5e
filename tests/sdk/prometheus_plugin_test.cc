// Starts the real gpx_prometheus binary against a fake Prometheus HTTP API in the test.
#include "aggregator/frames/arrow_codec.h"
#include "plugins/prometheus/convert.h"
#include "plugins/prometheus/datasource.h"
#include "plugins/prometheus/http_client.h"
#include "plugins/proto/backend.grpc.pb.h"
#include "tests/sdk/fake_http_server.h"
#include "tests/sdk/plugin_process.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

namespace dpa::sdk::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kMatrix = R"({"status":"success","data":{"resultType":"matrix","result":[
  {"metric":{"__name__":"up","job":"prometheus","instance":"localhost:9090"},
   "values":[[1700000000,"1"],[1700000015,"0"],[1700000030.5,"NaN"]]},
  {"metric":{"__name__":"up","job":"node","instance":"localhost:9100"},
   "values":[[1700000000,"+Inf"],[1700000015,"-Inf"]]}]}})";

class PrometheusPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    plugin_ = PluginProcess::start(PROMETHEUS_BINARY);
    ASSERT_FALSE(plugin_->handshake().empty()) << plugin_->stderr_text();
    server_.set_reply("/api/v1/query_range", {200, kMatrix});
    server_.set_reply("/api/v1/query", {200, R"({"status":"success","data":{"resultType":"vector",
        "result":[{"metric":{"job":"x"},"value":[1700003600,"42"]}]}})"});
    server_.set_reply("/-/ready", {200, "Prometheus Server is Ready.\n", "text/plain"});
  }

  pluginv2::PluginContext context() {
    pluginv2::PluginContext ctx;
    ctx.set_pluginid("prometheus");
    auto* ds = ctx.mutable_datasourceinstancesettings();
    ds->set_uid("prom1");
    ds->set_url(server_.url());
    ds->set_basicauthenabled(true);
    ds->set_basicauthuser("admin");
    (*ds->mutable_decryptedsecurejsondata())["basicAuthPassword"] = "secret";
    ds->set_jsondata("{}");
    return ctx;
  }

  pluginv2::QueryDataResponse query(const nlohmann::json& json) {
    auto stub = pluginv2::Data::NewStub(plugin_->channel());
    pluginv2::QueryDataRequest request;
    *request.mutable_plugincontext() = context();
    auto* q = request.add_queries();
    q->set_refid("A");
    q->set_maxdatapoints(100);
    q->set_intervalms(15000);
    q->mutable_timerange()->set_fromepochms(1700000000000);
    q->mutable_timerange()->set_toepochms(1700003600000);
    q->set_json(json.dump());
    pluginv2::QueryDataResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    EXPECT_TRUE(stub->QueryData(&ctx, request, &response).ok());
    return response;
  }

  FakeHttpServer server_;
  std::unique_ptr<PluginProcess> plugin_;
};

TEST_F(PrometheusPlugin, RangeQueryMatrixBecomesOneFramePerSeries) {
  auto response = query({{"refId", "A"}, {"expr", "up"}, {"range", true}});
  const auto& a = response.responses().at("A");
  ASSERT_EQ(a.status(), 200) << a.error();
  ASSERT_EQ(a.frames_size(), 2);

  auto first = frames::read_arrow(a.frames(0));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->name, "up");
  EXPECT_EQ(first->ref_id, "A");
  ASSERT_TRUE(first->meta.has_value());
  EXPECT_EQ((*first->meta)["type"], "timeseries-multi");
  ASSERT_EQ(first->fields.size(), 2u);
  EXPECT_EQ(first->fields[0].type, frames::FieldType::kTime);
  EXPECT_EQ(first->fields[0].ints.at(2), int64_t{1700000030500} * 1000000);
  const auto& value = first->fields[1];
  EXPECT_EQ(value.type, frames::FieldType::kFloat64);
  EXPECT_EQ(value.labels.at("job"), "prometheus");
  EXPECT_EQ(value.labels.at("instance"), "localhost:9090");
  ASSERT_EQ(value.floats.size(), 3u);
  EXPECT_EQ(value.floats[0], 1.0);
  EXPECT_TRUE(std::isnan(value.floats[2]));

  auto second = frames::read_arrow(a.frames(1));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->fields[1].labels.at("job"), "node");
  EXPECT_TRUE(std::isinf(second->fields[1].floats[0]) && second->fields[1].floats[0] > 0);
  EXPECT_TRUE(std::isinf(second->fields[1].floats[1]) && second->fields[1].floats[1] < 0);

  // The plugin asked for the query's range with a step and basic auth.
  const auto requests = server_.requests();
  ASSERT_FALSE(requests.empty());
  const std::string& head = requests.back();
  EXPECT_EQ(head.rfind("GET /api/v1/query_range?query=up&start=1700000000.000&end=1700003600.000&step=", 0), 0u)
      << head;
  EXPECT_NE(head.find("Authorization: Basic YWRtaW46c2VjcmV0"), std::string::npos) << head;
}

TEST_F(PrometheusPlugin, InstantQueryUsesQueryEndpoint) {
  auto response = query({{"refId", "A"}, {"expr", "sum(rate(x[5m]))"}, {"instant", true}});
  const auto& a = response.responses().at("A");
  ASSERT_EQ(a.status(), 200) << a.error();
  ASSERT_EQ(a.frames_size(), 1);
  auto frame = frames::read_arrow(a.frames(0));
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(frame->name, "sum(rate(x[5m]))");  // no __name__: the expression names the frame
  EXPECT_EQ(frame->fields[1].floats.at(0), 42.0);
  const std::string head = server_.requests().back();
  EXPECT_EQ(head.rfind("GET /api/v1/query?query=sum%28rate%28x%5B5m%5D%29%29&time=1700003600.000 ", 0), 0u)
      << head;
}

TEST_F(PrometheusPlugin, PrometheusErrorBecomesDataResponseError) {
  server_.set_reply("/api/v1/query_range",
                    {400, R"({"status":"error","errorType":"bad_data","error":"parse error at char 4"})"});
  auto response = query({{"refId", "A"}, {"expr", "bad("}});
  const auto& a = response.responses().at("A");
  EXPECT_EQ(a.status(), 400);
  EXPECT_NE(a.error().find("parse error at char 4"), std::string::npos) << a.error();
  EXPECT_EQ(a.errorsource(), "downstream");
  EXPECT_EQ(a.frames_size(), 0);
}

TEST_F(PrometheusPlugin, CheckHealthProbesReady) {
  auto stub = pluginv2::Diagnostics::NewStub(plugin_->channel());
  pluginv2::CheckHealthRequest request;
  *request.mutable_plugincontext() = context();
  pluginv2::CheckHealthResponse response;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->CheckHealth(&ctx, request, &response).ok());
  EXPECT_EQ(response.status(), pluginv2::CheckHealthResponse::OK) << response.message();

  server_.set_reply("/-/ready", {503, "not ready", "text/plain"});
  server_.set_reply("/api/v1/status/buildinfo", {503, "not ready", "text/plain"});
  pluginv2::CheckHealthResponse failing;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub->CheckHealth(&ctx2, request, &failing).ok());
  EXPECT_EQ(failing.status(), pluginv2::CheckHealthResponse::ERROR);
  EXPECT_NE(failing.message().find("503"), std::string::npos) << failing.message();
}

TEST(PrometheusConvert, ScalarVectorAndMalformed) {
  auto scalar = prometheus::convert_response(
      200, R"({"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"2.5"]}})",
      "1+1.5");
  ASSERT_TRUE(scalar.ok()) << scalar.error;
  ASSERT_EQ(scalar.frames.size(), 1u);
  EXPECT_EQ(scalar.frames[0].name, "1+1.5");
  EXPECT_EQ(scalar.frames[0].fields[0].ints[0], int64_t{1700000000123} * 1000000);
  EXPECT_EQ(scalar.frames[0].fields[1].floats[0], 2.5);

  auto empty = prometheus::convert_response(
      200, R"({"status":"success","data":{"resultType":"matrix","result":[]}})", "up");
  EXPECT_TRUE(empty.ok());
  EXPECT_TRUE(empty.frames.empty());

  auto html = prometheus::convert_response(502, "<html>bad gateway</html>", "up");
  EXPECT_FALSE(html.ok());
  EXPECT_EQ(html.status, 502);

  auto unavailable = prometheus::convert_response(
      503, R"({"status":"error","errorType":"unavailable","error":"too many queries"})", "up");
  EXPECT_EQ(unavailable.status, 503);
  EXPECT_EQ(unavailable.error, "unavailable: too many queries");

  auto bad_sample = prometheus::convert_response(
      200, R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,2]}]}})",
      "x");
  EXPECT_FALSE(bad_sample.ok());

  EXPECT_TRUE(std::isnan(prometheus::parse_sample_value("NaN")));
  EXPECT_EQ(prometheus::parse_sample_value("+Inf"), INFINITY);
  EXPECT_EQ(prometheus::parse_sample_value("-Inf"), -INFINITY);
  EXPECT_EQ(prometheus::parse_sample_value("1e3"), 1000.0);
  EXPECT_TRUE(std::isnan(prometheus::parse_sample_value("abc")));
}

TEST(PrometheusConvert, RangeStepRespectsIntervalAndMaxDataPoints) {
  // 1 h over 100 points: 36 s beats the 15 s interval.
  EXPECT_DOUBLE_EQ(prometheus::range_step_seconds(0, 3600000, 15000, 100, 0), 36.0);
  // Short range: the interval wins.
  EXPECT_DOUBLE_EQ(prometheus::range_step_seconds(0, 60000, 15000, 100, 0), 15.0);
  // An explicit larger step wins.
  EXPECT_DOUBLE_EQ(prometheus::range_step_seconds(0, 60000, 15000, 100, 60), 60.0);
  // Never more than 11000 points, never zero.
  EXPECT_GE(prometheus::range_step_seconds(0, 110000000, 1, 1000000, 0), 10.0);
  EXPECT_GT(prometheus::range_step_seconds(0, 0, 0, 0, 0), 0.0);
}

TEST(PrometheusHttp, ParseUrlAndEncoding) {
  auto [url, error] = prometheus::parse_url("http://prom.example:9091/prefix/");
  EXPECT_EQ(error, "");
  EXPECT_EQ(url.host, "prom.example");
  EXPECT_EQ(url.port, "9091");
  EXPECT_EQ(url.path, "/prefix");
  EXPECT_EQ(prometheus::parse_url("http://h").first.port, "80");
  EXPECT_NE(prometheus::parse_url("ftp://h").second, "");
  EXPECT_NE(prometheus::parse_url("nohost").second, "");
  EXPECT_EQ(prometheus::url_encode("a b/{c=\"d\"}"), "a%20b%2F%7Bc%3D%22d%22%7D");
  EXPECT_EQ(prometheus::base64_encode("admin:secret"), "YWRtaW46c2VjcmV0");
  EXPECT_EQ(prometheus::base64_encode("a"), "YQ==");
  EXPECT_EQ(prometheus::base64_encode("ab"), "YWI=");
}

TEST(PrometheusHttp, UnreachableServerIsATransportError) {
  // Bind and close a port so nothing listens there.
  int port;
  {
    FakeHttpServer probe;
    port = probe.port();
  }
  auto [url, error] = prometheus::parse_url("http://127.0.0.1:" + std::to_string(port));
  ASSERT_EQ(error, "");
  auto result = prometheus::http_get(url, "/-/ready", {}, 2s);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.status, 0);
}

}  // namespace
}  // namespace dpa::sdk::testing
