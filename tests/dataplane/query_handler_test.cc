#include "aggregator/dataplane/query_handler.h"

#include "aggregator/frames/arrow_codec.h"
#include "tests/dataplane/handler_test_util.h"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace dpa::dataplane {
namespace {

using boost::beast::http::verb;
using json = nlohmann::json;
using testing::DataPlaneFixture;

constexpr int64_t kNow = 1710498030456;  // 2024-03-15T10:20:30.456Z
const std::string kQueryPath = "/apis/testds.example.com/v1/namespaces/default/datasources/123/query";

std::string body_with(const std::string& ds) {
  return R"({"queries":[{"refId":"1","datasource":)" + ds + R"(,"timeRange":{},"resultAssertions":{}}]})";
}

TEST(QueryParseTest, DefaultsAndJsonShape) {
  auto parsed = parse_query_request(R"({
    "from": "1700000000000", "to": "now",
    "queries": [{
      "refId": "A", "datasource": {"type": "prometheus", "uid": "example"}, "datasourceId": 2,
      "expr": "up", "maxDataPoints": 969, "intervalMs": 15000, "editorMode": "code",
      "adhocFilters": [], "range": true, "instant": false
    }, {
      "refId": "B", "maxDataPoints": "50", "intervalMs": 0, "hide": true, "queryType": "range",
      "timeRange": {"from": "now-1h", "to": "now"}
    }]})", kNow);
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->queries.size(), 2u);
  ASSERT_TRUE(parsed->reference);
  EXPECT_EQ(parsed->reference->type, "prometheus");
  EXPECT_EQ(parsed->reference->uid, "example");
  const auto& a = parsed->queries[0];
  EXPECT_EQ(a.refid(), "A");
  EXPECT_EQ(a.maxdatapoints(), 969);
  EXPECT_EQ(a.intervalms(), 15000);
  EXPECT_EQ(a.timerange().fromepochms(), 1700000000000);
  EXPECT_EQ(a.timerange().toepochms(), kNow);
  EXPECT_EQ(a.json(),
            R"({"refId":"A","datasource":{"type":"prometheus","uid":"example"},"datasourceId":2,)"
            R"("maxDataPoints":969,"intervalMs":15000,"adhocFilters":[],"editorMode":"code",)"
            R"("expr":"up","instant":false,"range":true})");
  const auto& b = parsed->queries[1];
  EXPECT_EQ(b.maxdatapoints(), 50);
  EXPECT_EQ(b.intervalms(), 1000);
  EXPECT_EQ(b.querytype(), "range");
  EXPECT_EQ(b.timerange().fromepochms(), kNow - 3600000);
  EXPECT_EQ(b.timerange().toepochms(), kNow);
  EXPECT_EQ(b.json(), R"({"refId":"B","queryType":"range","maxDataPoints":50,"hide":true})");
}

TEST(QueryParseTest, NoFromMeansZeroRangeAndDefaults) {
  auto parsed = parse_query_request(R"({"queries":[{"refId":"A","datasource":"abc"}]} trailing)", kNow);
  ASSERT_TRUE(parsed) << parsed.error().message;
  const auto& q = parsed->queries[0];
  EXPECT_EQ(q.timerange().fromepochms(), 0);
  EXPECT_EQ(q.timerange().toepochms(), 0);
  EXPECT_EQ(q.maxdatapoints(), 100);
  EXPECT_EQ(q.intervalms(), 1000);
  EXPECT_EQ(parsed->reference->uid, "abc");  // bare string = uid
  EXPECT_EQ(parsed->reference->type, "");
}

TEST(QueryParseTest, Errors) {
  auto code_and_message = [](std::string_view body) {
    auto r = parse_query_request(body, kNow);
    EXPECT_FALSE(r) << body;
    return r ? std::make_pair(0, std::string()) : std::make_pair(r.error().code, r.error().message);
  };
  EXPECT_EQ(code_and_message("").first, 400);
  EXPECT_EQ(code_and_message("{").first, 400);
  EXPECT_EQ(code_and_message("[]").first, 400);
  EXPECT_EQ(code_and_message(R"({"queries":{}})").first, 400);
  EXPECT_EQ(code_and_message(R"({"from":5,"queries":[]})").first, 400);
  EXPECT_EQ(code_and_message(R"({"queries":[{"refId":1}]})").first, 400);
  EXPECT_EQ(code_and_message(R"({"queries":[{"maxDataPoints":"x"}]})").first, 400);
  EXPECT_EQ(code_and_message(R"({"queries":[{"datasource":{"type":"a","uid":"u"}},{"datasource":{"type":"b","uid":"u"}}]})"),
            std::make_pair(400, std::string("expect same datasource types")));
  EXPECT_EQ(code_and_message(R"({"queries":[{"datasource":{"type":"a","uid":"u"}},{"datasource":{"type":"a","uid":"v"}}]})"),
            std::make_pair(400, std::string("expect same datasource UID")));
  std::string deep(100000, '[');
  EXPECT_EQ(code_and_message(deep).first, 400);
}

TEST(QueryParseTest, ReferenceChecks) {
  auto none = parse_query_request(R"({"queries":[{"refId":"A"}]})", kNow);
  EXPECT_EQ(check_reference(*none, "testds", "123").error().message, "missing datasource reference");
  auto empty = parse_query_request(R"({"queries":[]})", kNow);
  EXPECT_EQ(check_reference(*empty, "testds", "123").error().message, "missing datasource reference");
  auto wrong = parse_query_request(body_with(R"({"type":"wrongds","uid":"123"})"), kNow);
  EXPECT_EQ(check_reference(*wrong, "testds", "123").error().message, "invalid datasource type");
  auto uid = parse_query_request(body_with(R"({"type":"testds","uid":"abc"})"), kNow);
  EXPECT_EQ(check_reference(*uid, "testds", "123").error().message, "invalid datasource UID");
  EXPECT_TRUE(check_reference(*uid, "testds", "abc"));
}

TEST(QueryEncodeTest, IndentAndEscapes) {
  EXPECT_EQ(indent_json(R"({"a":[],"b":{},"c":[1,{"d":"x:,{"}]})"),
            "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": \"x:,{\"\n    }\n  ]\n}");
  std::string s;
  append_go_string(s, std::string("<a&b>\"\\\n\x01\xff\xe2\x80\xa8", 13));
  EXPECT_EQ(s, "\"\\u003ca\\u0026b\\u003e\\\"\\\\\\n\\u0001\xEF\xBF\xBD\\u2028\"");
}

pluginv2::QueryDataResponse one_empty_frame() {
  frames::Frame frame;
  frame.name = "test-frame";
  pluginv2::QueryDataResponse response;
  auto& dr = (*response.mutable_responses())["A"];
  dr.set_status(200);
  dr.add_frames(frames::write_arrow(frame));
  return response;
}

// reference grafana-aggregator-behaviour.md §3.5: the exact body of Grafana's unit test.
constexpr const char* kGrafanaBody = R"({
  "results": {
    "A": {
      "status": 200,
      "frames": [
        {
          "schema": {
            "name": "test-frame",
            "fields": []
          },
          "data": {
            "values": []
          }
        }
      ]
    }
  }
})";

TEST(QueryEncodeTest, GrafanaExactBody) {
  auto body = encode_query_response(one_empty_frame());
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ(*body, kGrafanaBody);
}

TEST(QueryEncodeTest, SortedRefIdsErrorsAndStatusDefaults) {
  pluginv2::QueryDataResponse response;
  auto& b = (*response.mutable_responses())["B"];
  b.set_error("timeout <5s>");
  b.set_errorsource("downstream");
  b.set_status(504);
  auto& a = (*response.mutable_responses())["A"];
  (void)a;  // status 0, no error -> 200
  auto& c = (*response.mutable_responses())["C"];
  c.set_error("boom");  // status 0 with error -> 500, errorSource written even if empty
  auto body = encode_query_response(response);
  ASSERT_TRUE(body);
  auto j = json::parse(*body);
  EXPECT_EQ(j["results"]["A"], json::parse(R"({"status":200,"frames":[]})"));
  EXPECT_EQ(j["results"]["C"]["status"], 500);
  EXPECT_EQ(j["results"]["C"]["errorSource"], "");
  EXPECT_NE(body->find("\"timeout \\u003c5s\\u003e\""), std::string::npos);
  // Order: A, B, C; and within B: error, errorSource, status, frames.
  EXPECT_LT(body->find("\"A\""), body->find("\"B\""));
  EXPECT_LT(body->find("\"B\""), body->find("\"C\""));
  const auto b_at = body->find("\"B\"");
  EXPECT_LT(body->find("\"error\"", b_at), body->find("\"errorSource\"", b_at));
  EXPECT_LT(body->find("\"errorSource\"", b_at), body->find("\"status\"", b_at));
}

TEST(QueryEncodeTest, MalformedArrowIs502AndJsonFramesPassThrough) {
  pluginv2::QueryDataResponse bad;
  (*bad.mutable_responses())["A"].add_frames("ARROW1 definitely not arrow");
  auto r = encode_query_response(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 502);

  pluginv2::QueryDataResponse js;
  auto& dr = (*js.mutable_responses())["A"];
  dr.set_format(pluginv2::JSON);
  dr.add_frames(R"({"schema":{"name":"j","fields":[{"name":"v","type":"number","typeInfo":{"frame":"float64"}}]},"data":{"values":[[1.5,2]]}})");
  auto ok = encode_query_response(js);
  ASSERT_TRUE(ok) << ok.error().message;
  auto j = json::parse(*ok);
  EXPECT_EQ(j["results"]["A"]["frames"][0]["schema"]["name"], "j");
  EXPECT_EQ(j["results"]["A"]["frames"][0]["data"]["values"][0][0], 1.5);
}

TEST(QueryHandlerTest, GrafanaTestOneExactBody) {
  DataPlaneFixture f;
  f.plugin->on_query_data = [](const pluginv2::QueryDataRequest&) { return one_empty_frame(); };
  // Identity headers a client sends are not who it is: PluginContext.user is the routed user.
  plugin::RequestUser alice;
  alice.login = "alice";
  alice.email = "a@example.com";
  auto ex = f.run(verb::post, kQueryPath, body_with(R"({"type":"testds","uid":"123","apiVersion":"v1"})"),
                  {{"X-Remote-User", "mallory"}, {"X-Grafana-Org-Role", "Admin"}}, alice);
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(ex->body(), kGrafanaBody);
  EXPECT_EQ(ex->response_header("Content-Type").rfind("application/json", 0), 0u);
  auto requests = f.plugin->query_requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& ctx = requests[0].plugincontext();
  EXPECT_EQ(ctx.pluginid(), "testds");
  EXPECT_EQ(ctx.datasourceinstancesettings().uid(), "123");
  EXPECT_EQ(ctx.user().login(), "alice");
  EXPECT_EQ(ctx.user().email(), "a@example.com");
  EXPECT_EQ(ctx.user().role(), "");
  EXPECT_EQ(ctx.namespace_(), "default");
  EXPECT_EQ(requests[0].queries(0).refid(), "1");
  EXPECT_EQ(f.plugin->timeouts()[0], std::chrono::milliseconds(60000));
  // The call carries the request's trace context (gRPC metadata in the real client).
  ASSERT_EQ(f.plugin->traces().size(), 1u);
  EXPECT_EQ(f.plugin->traces()[0].traceparent, ex->trace_context().traceparent);
}

TEST(QueryHandlerTest, ValidationErrorsHaveRealCodes) {
  DataPlaneFixture f;
  f.plugin->on_query_data = [](const pluginv2::QueryDataRequest&) { return one_empty_frame(); };
  auto wrong_type = f.run(verb::post, kQueryPath, body_with(R"({"type":"wrongds","uid":"123"})"));
  EXPECT_EQ(wrong_type->status(), 400);
  auto status = json::parse(wrong_type->body());
  EXPECT_EQ(status["kind"], "Status");
  EXPECT_EQ(status["message"], "invalid datasource type");
  EXPECT_EQ(status["code"], 400);
  auto wrong_uid = f.run(verb::post,
                         "/apis/testds.example.com/v1/namespaces/default/datasources/abc/query",
                         body_with(R"({"type":"testds","uid":"123"})"));
  EXPECT_EQ(wrong_uid->status(), 400);
  EXPECT_EQ(json::parse(wrong_uid->body())["message"], "invalid datasource UID");
  auto bad_json = f.run(verb::post, kQueryPath, "{nope");
  EXPECT_EQ(bad_json->status(), 400);
  auto empty = f.run(verb::post, kQueryPath, "");
  EXPECT_EQ(empty->status(), 400);
  auto missing = f.run(verb::post, kQueryPath, R"({"queries":[{"refId":"A"}]})");
  EXPECT_EQ(json::parse(missing->body())["message"], "missing datasource reference");
  // Datasource unknown -> 404; of another plugin type -> 400; of another org -> 404.
  auto unknown = f.run(verb::post,
                       "/apis/testds.example.com/v1/namespaces/default/datasources/nope/query",
                       body_with(R"({"type":"testds","uid":"nope"})"));
  EXPECT_EQ(unknown->status(), 404);
  auto other_type = f.run(verb::post,
                          "/apis/testds.example.com/v1/namespaces/default/datasources/other/query",
                          body_with(R"({"type":"testds","uid":"other"})"));
  EXPECT_EQ(other_type->status(), 400);
  EXPECT_EQ(json::parse(other_type->body())["message"], "invalid datasource type");
  auto other_org = f.run(verb::post,
                         "/apis/testds.example.com/v1/namespaces/default/datasources/org2ds/query",
                         body_with(R"({"type":"testds","uid":"org2ds"})"));
  EXPECT_EQ(other_org->status(), 404);
  auto org2 = f.run(verb::post,
                    "/apis/testds.example.com/v1/namespaces/org-2/datasources/org2ds/query",
                    body_with(R"({"type":"testds","uid":"org2ds"})"));
  EXPECT_EQ(org2->status(), 200);
  EXPECT_EQ(f.plugin->query_requests().size(), 1u);  // only the valid one reached the plugin
}

TEST(QueryHandlerTest, PluginFailuresMapToGatewayCodes) {
  DataPlaneFixture f;
  const std::string body = body_with(R"({"type":"testds","uid":"123"})");
  f.plugin->on_query_data = [](const pluginv2::QueryDataRequest&) {
    return api::Expected<pluginv2::QueryDataResponse>(api::ApiError::bad_gateway("plugin testds failed: x"));
  };
  EXPECT_EQ(f.run(verb::post, kQueryPath, body)->status(), 502);
  f.plugin->on_query_data = [](const pluginv2::QueryDataRequest&) {
    return api::Expected<pluginv2::QueryDataResponse>(api::ApiError::timeout("deadline exceeded"));
  };
  EXPECT_EQ(f.run(verb::post, kQueryPath, body)->status(), 504);
  f.plugin->on_query_data = [](const pluginv2::QueryDataRequest&) {
    pluginv2::QueryDataResponse r;
    (*r.mutable_responses())["A"].add_frames("garbage");
    return r;
  };
  EXPECT_EQ(f.run(verb::post, kQueryPath, body)->status(), 502);
  f.host.set_status("testds", plugin::PluginState::kUnavailable, "restarting");
  auto down = f.run(verb::post, kQueryPath, body);
  EXPECT_EQ(down->status(), 503);
  EXPECT_NE(json::parse(down->body())["message"].get<std::string>().find("restarting"),
            std::string::npos);
}

TEST(QueryHandlerTest, TimeoutParamMethodAndBodyLimit) {
  DataPlaneFixture f;
  f.plugin->on_query_data = [](const pluginv2::QueryDataRequest&) { return one_empty_frame(); };
  const std::string body = body_with(R"({"type":"testds","uid":"123"})");
  EXPECT_EQ(f.run(verb::post, kQueryPath + "?timeout=2s", body)->status(), 200);
  EXPECT_EQ(f.plugin->timeouts().back(), std::chrono::milliseconds(2000));
  EXPECT_EQ(f.run(verb::post, kQueryPath + "?timeout=1h", body)->status(), 200);
  EXPECT_EQ(f.plugin->timeouts().back(), std::chrono::milliseconds(300000));  // capped
  EXPECT_EQ(f.run(verb::post, kQueryPath + "?timeout=soon", body)->status(), 400);
  auto get = f.run(verb::get, kQueryPath);
  EXPECT_EQ(get->status(), 405);
  EXPECT_EQ(get->response_header("Allow"), "POST");
  std::string huge(dataplane::kDefaultMaxBodyBytes + 1, ' ');
  EXPECT_EQ(f.run(verb::post, kQueryPath, huge)->status(), 413);
}

TEST(QueryHandlerTest, PerRefIdErrorsStay200) {
  DataPlaneFixture f;
  f.plugin->on_query_data = [](const pluginv2::QueryDataRequest&) {
    pluginv2::QueryDataResponse r;
    auto& dr = (*r.mutable_responses())["A"];
    dr.set_error("bad query");
    dr.set_errorsource("plugin");
    dr.set_status(400);
    return r;
  };
  auto ex = f.run(verb::post, kQueryPath, body_with(R"({"type":"testds","uid":"123"})"));
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(json::parse(ex->body())["results"]["A"]["error"], "bad query");
}

TEST(QueryHandlerTest, LargeRepliesAreEncodedOnTheEncoder) {
  // The encoder is an io_context this test runs by hand: a large reply waits for it, a small one
  // does not.
  boost::asio::io_context encoder;
  testing::FakePluginHost host;
  auto plugin = host.add("testds");
  auto datasources = std::make_shared<const plugin::DatasourceSet>(
      std::vector<plugin::Datasource>{testing::datasource("123", "testds")});
  DataPlane data_plane{DataPlaneContext{host, [&] { return datasources; }, DataPlaneOptions{},
                                        encoder.get_executor()}};
  auto table = RouteTable::build({ServiceEntry{
      "v1.testds.example.com",
      {"testds", "datasource", "testds.example.com", "v1", {{"query", "", ""}}}}});
  const std::size_t rows = 20000;  // about 160 KB of float64 values
  plugin->on_query_data = [&](const pluginv2::QueryDataRequest& req) {
    const std::size_t n = req.queries(0).refid() == "big" ? rows : 3;
    frames::Frame frame;
    frame.name = "f";
    frames::Field field;
    field.name = "v";
    field.type = frames::FieldType::kFloat64;
    for (std::size_t i = 0; i < n; ++i) field.floats.push_back(static_cast<double>(i));
    frame.fields.push_back(std::move(field));
    pluginv2::QueryDataResponse r;
    auto& dr = (*r.mutable_responses())[req.queries(0).refid()];
    dr.add_frames(frames::write_arrow(frame));
    return r;
  };
  auto query = [&](const std::string& ref_id) {
    auto ex = testing::make_exchange(
        verb::post, kQueryPath,
        R"({"queries":[{"refId":")" + ref_id + R"(","datasource":{"type":"testds","uid":"123"}}]})");
    auto match = table->match("POST", std::string(ex->path()));
    EXPECT_TRUE(match.has_value());
    data_plane.handle(ex, std::move(*match));
    return ex;
  };
  auto small = query("small");
  ASSERT_TRUE(small->wait());
  EXPECT_EQ(small->status(), 200);

  auto big = query("big");
  // Parked on the encoder until it runs.
  EXPECT_FALSE(big->wait(std::chrono::milliseconds(300))) << big->status() << " " << big->body();
  EXPECT_GT(encoder.run_one_for(std::chrono::seconds(10)), 0u);
  ASSERT_TRUE(big->wait());
  EXPECT_EQ(big->status(), 200);
  auto values = json::parse(big->body())["results"]["big"]["frames"][0]["data"]["values"][0];
  ASSERT_EQ(values.size(), rows);
  EXPECT_EQ(values[rows - 1], static_cast<double>(rows - 1));
}

}  // namespace
}  // namespace dpa::dataplane
