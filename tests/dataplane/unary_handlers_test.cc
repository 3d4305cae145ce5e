// Health, metrics, admission and conversion handlers against the fake plugin.
#include "aggregator/dataplane/admission_handler.h"
#include "aggregator/dataplane/conversion_handler.h"
#include "aggregator/dataplane/health_handler.h"
#include "tests/dataplane/handler_test_util.h"

#include <gtest/gtest.h>

namespace dpa::dataplane {
namespace {

using boost::beast::http::verb;
using json = nlohmann::json;
using testing::DataPlaneFixture;

const std::string kBase = "/apis/testds.example.com/v1";
const std::string kHealth = kBase + "/namespaces/default/datasources/123/health";

std::string base64_decode(const std::string& in) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int bits = 0;
  uint32_t acc = 0;
  for (char c : in) {
    if (c == '=') break;
    acc = (acc << 6) | static_cast<uint32_t>(kAlphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

TEST(HealthHandlerTest, OkErrorAndNotImplemented) {
  DataPlaneFixture f;
  f.plugin->on_check_health = [](const pluginv2::CheckHealthRequest&) {
    pluginv2::CheckHealthResponse r;
    r.set_status(pluginv2::CheckHealthResponse::OK);
    r.set_message("Data source is working");
    r.set_jsondetails(R"({"verboseMessage":"all <good>"})");
    return r;
  };
  auto ok = f.run(verb::get, kHealth);
  EXPECT_EQ(ok->status(), 200);
  EXPECT_EQ(ok->body(),
            R"({"details":{"verboseMessage":"all \u003cgood\u003e"},"message":"Data source is working","status":"OK"})");
  EXPECT_EQ(f.plugin->health_requests()[0].plugincontext().datasourceinstancesettings().uid(), "123");

  f.plugin->on_check_health = [](const pluginv2::CheckHealthRequest&) {
    pluginv2::CheckHealthResponse r;
    r.set_status(pluginv2::CheckHealthResponse::ERROR);
    r.set_message("connection refused");
    return r;
  };
  auto bad = f.run(verb::get, kHealth);
  EXPECT_EQ(bad->status(), 400);
  EXPECT_EQ(bad->body(), R"({"message":"connection refused","status":"ERROR"})");

  f.plugin->on_check_health = nullptr;  // the fake answers 501 Unimplemented
  auto unimplemented = f.run(verb::get, kHealth);
  EXPECT_EQ(unimplemented->status(), 400);
  EXPECT_EQ(unimplemented->body(), R"({"message":"Health check not implemented","status":"UNKNOWN"})");

  f.plugin->on_check_health = [](const pluginv2::CheckHealthRequest&) {
    pluginv2::CheckHealthResponse r;
    r.set_status(pluginv2::CheckHealthResponse::OK);
    r.set_jsondetails("not json");
    return r;
  };
  EXPECT_EQ(f.run(verb::get, kHealth)->status(), 502);
  EXPECT_EQ(f.run(verb::post, kHealth)->status(), 405);
  EXPECT_EQ(f.run(verb::get, kBase + "/namespaces/default/datasources/nope/health")->status(), 404);
}

TEST(MetricsHandlerTest, PrometheusText) {
  DataPlaneFixture f;
  f.plugin->on_collect_metrics = [](const pluginv2::CollectMetricsRequest&) {
    pluginv2::CollectMetricsResponse r;
    r.mutable_metrics()->set_prometheus("# TYPE up gauge\nup 1\n");
    return r;
  };
  auto ex = f.run(verb::get, kBase + "/metrics");
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(ex->body(), "# TYPE up gauge\nup 1\n");
  EXPECT_EQ(ex->response_header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(f.plugin->metrics_requests()[0].plugincontext().pluginid(), "testds");
  f.plugin->on_collect_metrics = nullptr;
  auto none = f.run(verb::get, kBase + "/metrics");
  EXPECT_EQ(none->status(), 200);
  EXPECT_EQ(none->body(), "");
  f.host.set_status("testds", plugin::PluginState::kStarting);
  EXPECT_EQ(f.run(verb::get, kBase + "/metrics")->status(), 503);
}

// reference grafana-aggregator-behaviour.md §10, plugin/admission_test.go.
constexpr const char* kReview = R"({
  "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
  "request": {"uid": "1234", "operation": "UPDATE",
              "kind": {"group": "example.k8s.io", "version": "v1", "kind": "Pod"},
              "resource": {"group": "", "version": "v1", "resource": "pods"},
              "object": {"foo": "bar"}, "oldObject": {"bar": "foo"}}})";

TEST(AdmissionHandlerTest, MutateReturnsPatch) {
  DataPlaneFixture f;
  f.plugin->on_mutate_admission = [](const pluginv2::AdmissionRequest&) {
    pluginv2::MutationResponse r;
    r.set_allowed(true);
    r.set_object_bytes(R"({"foo": "foo"})");
    return r;
  };
  auto ex = f.run(verb::post, kBase + "/admission/mutate", kReview,
                  {{"Content-Type", "application/json; charset=utf-8"}});
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(ex->body(),
            R"({"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":"1234","allowed":true,)"
            R"("patch":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9mb28iLCJ2YWx1ZSI6ImZvbyJ9XQ==","patchType":"JSONPatch"}})");
  auto patch = base64_decode(json::parse(ex->body())["response"]["patch"]);
  EXPECT_EQ(patch, R"([{"op":"replace","path":"/foo","value":"foo"}])");
  auto req = f.plugin->admission_requests()[0];
  EXPECT_EQ(req.operation(), pluginv2::AdmissionRequest::UPDATE);
  EXPECT_EQ(req.kind().group(), "example.k8s.io");
  EXPECT_EQ(req.kind().kind(), "Pod");
  EXPECT_EQ(json::parse(req.object_bytes()), json::parse(R"({"foo":"bar"})"));
  EXPECT_EQ(json::parse(req.old_object_bytes()), json::parse(R"({"bar":"foo"})"));
  EXPECT_EQ(req.plugincontext().pluginid(), "testds");
}

TEST(AdmissionHandlerTest, ValidateNotAllowedCopiesResult) {
  DataPlaneFixture f;
  f.plugin->on_validate_admission = [](const pluginv2::AdmissionRequest&) {
    pluginv2::ValidationResponse r;
    r.set_allowed(false);
    auto* s = r.mutable_result();
    s->set_status("Failure");
    s->set_message("message");
    s->set_reason("NotFound");
    s->set_code(404);
    r.add_warnings("warning 1");
    r.add_warnings("warning 2");
    return r;
  };
  auto ex = f.run(verb::post, kBase + "/admission/validate", kReview,
                  {{"Content-Type", "application/json"}});
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(json::parse(ex->body())["response"].dump(),
            json::parse(R"({"uid":"1234","allowed":false,"status":{"metadata":{},"status":"Failure","message":"message","reason":"NotFound","code":404},"warnings":["warning 1","warning 2"]})").dump());
  EXPECT_NE(ex->body().find(R"("status":{"metadata":{},"status":"Failure","message":"message","reason":"NotFound","code":404})"),
            std::string::npos);
}

TEST(AdmissionHandlerTest, ResultDefaultsAndAllowedDropsResult) {
  ParsedAdmissionReview review;
  review.api_version = "admission.k8s.io/v1";
  review.uid = "u";
  pluginv2::ValidationResponse denied;  // not allowed, nil Result
  EXPECT_EQ(*validation_review(review, denied),
            R"({"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":"u","allowed":false,)"
            R"("status":{"metadata":{},"status":"Failure","message":"Internal error","reason":"InternalError","code":500}}})");
  pluginv2::ValidationResponse allowed;
  allowed.set_allowed(true);
  allowed.mutable_result()->set_message("ignored");
  allowed.add_warnings("w");
  EXPECT_EQ(*validation_review(review, allowed),
            R"({"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":"u","allowed":true,"warnings":["w"]}})");
  pluginv2::MutationResponse plugin_failure;  // Result with a plugin status string stays Failure
  plugin_failure.mutable_result()->set_status("Success");
  plugin_failure.mutable_result()->set_code(403);
  EXPECT_NE(mutation_review(review, plugin_failure)->find(R"("status":{"metadata":{},"status":"Failure","code":403})"),
            std::string::npos);
  // Allowed mutation with no bytes: the plugin broke the protocol -> 502.
  review.object = json::parse(R"({"a":1})");
  pluginv2::MutationResponse empty;
  empty.set_allowed(true);
  EXPECT_EQ(mutation_review(review, empty).error().code, 502);
  pluginv2::MutationResponse same;
  same.set_allowed(true);
  same.set_object_bytes(R"({"a":1})");
  auto out = json::parse(*mutation_review(review, same));
  EXPECT_EQ(base64_decode(out["response"]["patch"]), "[]");
}

TEST(AdmissionHandlerTest, BadRequestsAre4xx) {
  DataPlaneFixture f;
  const std::string path = kBase + "/admission/validate";
  auto ct = std::vector<std::pair<std::string, std::string>>{{"Content-Type", "application/json"}};
  EXPECT_EQ(f.run(verb::post, path, kReview, {{"Content-Type", "text/plain"}})->status(), 415);
  EXPECT_EQ(f.run(verb::post, path, "{", ct)->status(), 400);
  EXPECT_EQ(f.run(verb::post, path, R"({"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}})", ct)->status(), 400);
  auto nil = f.run(verb::post, path, R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"})", ct);
  EXPECT_EQ(nil->status(), 400);
  EXPECT_EQ(json::parse(nil->body())["message"],
            "unable to convert admission request: admission review request is nil");
  auto op = f.run(verb::post, path, R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","operation":"PATCH"}})", ct);
  EXPECT_EQ(op->status(), 400);
  EXPECT_EQ(json::parse(op->body())["message"],
            "unable to convert admission request: unknown admission review operation");
  EXPECT_EQ(f.run(verb::get, path)->status(), 405);
  EXPECT_TRUE(f.plugin->admission_requests().empty());
}

TEST(ConversionHandlerTest, ConvertsObjects) {
  DataPlaneFixture f;
  f.plugin->on_convert_objects = [](const pluginv2::ConversionRequest& req) {
    pluginv2::ConversionResponse r;
    r.set_uid(req.uid());
    r.mutable_result()->set_status("Success");
    for (const auto& o : req.objects()) {
      auto obj = json::parse(o.raw());
      obj["apiVersion"] = req.target_version().group() + "/" + req.target_version().version();
      auto* out = r.add_objects();
      out->set_raw(obj.dump());
      out->set_content_type("application/json");
    }
    return r;
  };
  const std::string review = R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview",
    "request":{"uid":"705ab4f5","desiredAPIVersion":"example.com/v2",
               "objects":[{"apiVersion":"example.com/v1","kind":"Foo","metadata":{"name":"a"}},
                          {"apiVersion":"example.com/v1","kind":"Foo","metadata":{"name":"b"}}]}})";
  auto ex = f.run(verb::post, kBase + "/conversion", review, {{"Content-Type", "application/json"}});
  EXPECT_EQ(ex->status(), 200);
  auto out = json::parse(ex->body());
  EXPECT_EQ(out["kind"], "ConversionReview");
  EXPECT_EQ(out["apiVersion"], "apiextensions.k8s.io/v1");
  EXPECT_EQ(out["response"]["uid"], "705ab4f5");
  EXPECT_EQ(out["response"]["result"]["status"], "Success");
  ASSERT_EQ(out["response"]["convertedObjects"].size(), 2u);
  EXPECT_EQ(out["response"]["convertedObjects"][1]["apiVersion"], "example.com/v2");
  EXPECT_EQ(out["response"]["convertedObjects"][1]["metadata"]["name"], "b");
  auto req = f.plugin->conversion_requests()[0];
  EXPECT_EQ(req.target_version().group(), "example.com");
  EXPECT_EQ(req.target_version().version(), "v2");
  EXPECT_EQ(req.objects(0).content_type(), "application/json");

  f.plugin->on_convert_objects = [](const pluginv2::ConversionRequest& req) {
    pluginv2::ConversionResponse r;
    r.set_uid(req.uid());
    r.mutable_result()->set_status("Failure");
    r.mutable_result()->set_message("cannot convert Foo to v2");
    return r;
  };
  auto failed = json::parse(
      f.run(verb::post, kBase + "/conversion", review, {{"Content-Type", "application/json"}})->body());
  EXPECT_EQ(failed["response"]["result"]["status"], "Failure");
  EXPECT_EQ(failed["response"]["result"]["message"], "cannot convert Foo to v2");
  EXPECT_EQ(failed["response"]["convertedObjects"], json::array());

  EXPECT_EQ(f.run(verb::post, kBase + "/conversion", R"({"kind":"ConversionReview"})",
                  {{"Content-Type", "application/json"}})->status(), 400);
}

TEST(DispatcherTest, MissingStreamingHandlerIs501) {
  testing::FakePluginHost host;
  DataPlane dp(DataPlaneContext{host, nullptr, {}});
  auto table = RouteTable::build(
      {ServiceEntry{"v1.x.example.com", {"x", "datasource", "x.example.com", "v1", {{"route", "", ""}}}}});
  auto ex = testing::make_exchange(verb::get, "/apis/x.example.com/v1/namespaces/d/datasources/u/resources/a");
  auto m = table->match("GET", std::string(ex->path()));
  ASSERT_TRUE(m);
  dp.handle(ex, *m);
  ASSERT_TRUE(ex->wait());
  EXPECT_EQ(ex->status(), 501);
  bool called = false;
  dp.set_handler(Endpoint::kResource, [&](std::shared_ptr<http::Exchange> e, RouteMatch) {
    called = true;
    e->respond(http::Response::text(200, "ok"));
  });
  auto ex2 = testing::make_exchange(verb::get, "/apis/x.example.com/v1/namespaces/d/datasources/u/resources/a");
  dp.handle(ex2, *m);
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace dpa::dataplane
