// Unit tests of the SDK helpers (no plugin process).
#include "aggregator/frames/arrow_codec.h"
#include "plugins/sdk/data.h"
#include "plugins/sdk/log.h"
#include "plugins/testdata/query.h"

#include <gtest/gtest.h>

#include <cctype>

namespace dpa::sdk {
namespace {

TEST(SdkLog, HclogJsonLine) {
  set_log_module("plugin.test");
  const auto line = format_log_line(LogLevel::kWarn, "something \"odd\"", {{"refId", "A"}, {"n", 3}});
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["@level"], "warn");
  EXPECT_EQ(j["@message"], "something \"odd\"");
  EXPECT_EQ(j["@module"], "plugin.test");
  EXPECT_EQ(j["refId"], "A");
  EXPECT_EQ(j["n"], 3);
  const std::string ts = j["@timestamp"];
  // 2006-01-02T15:04:05.000000Z: digits everywhere except the separators.
  const std::string layout = "dddd-dd-ddTdd:dd:dd.ddddddZ";
  ASSERT_EQ(ts.size(), layout.size()) << ts;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (layout[i] == 'd') {
      EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(ts[i]))) << ts;
    } else {
      EXPECT_EQ(ts[i], layout[i]) << ts;
    }
  }
  EXPECT_EQ(line.find('\n'), std::string::npos);
  // Keys come in hclog's order, "@" keys first.
  EXPECT_EQ(line.rfind("{\"@level\":\"warn\",\"@message\"", 0), 0u) << line;
  // Invalid UTF-8 does not throw.
  EXPECT_NO_THROW(format_log_line(LogLevel::kInfo, "bad \xff byte", nullptr));
}

TEST(SdkData, FramesResponseIsArrowWithStatus200AndRefId) {
  frames::Frame frame;
  frame.fields.push_back(time_field("time", {1000000000, 2000000000}));
  frame.fields.push_back(float64_field("value", {1.5, 2.5}, {{"a", "b"}}));
  const auto response = frames_response({frame}, "Q");
  EXPECT_EQ(response.status(), 200);
  EXPECT_EQ(response.format(), pluginv2::ARROW);
  EXPECT_TRUE(response.error().empty());
  ASSERT_EQ(response.frames_size(), 1);
  auto decoded = frames::read_arrow(response.frames(0));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->ref_id, "Q");
  EXPECT_EQ(decoded->fields[1].labels.at("a"), "b");
  EXPECT_EQ(decoded->fields[1].floats, (std::vector<double>{1.5, 2.5}));
}

TEST(SdkData, ErrorResponseStatusAndSource) {
  auto e = error_response(404, "missing", ErrorSource::kDownstream);
  EXPECT_EQ(e.status(), 404);
  EXPECT_EQ(e.error(), "missing");
  EXPECT_EQ(e.errorsource(), "downstream");
  EXPECT_EQ(error_response(0, "x").status(), 500);
  EXPECT_EQ(error_response(200, "x").status(), 500);
  EXPECT_EQ(error_response(700, "x").status(), 500);
  EXPECT_EQ(error_response(503, "x").errorsource(), "plugin");
}

TEST(SdkData, QueryJsonAndSettings) {
  pluginv2::DataQuery q;
  q.set_refid("A");
  q.set_json(R"({"expr":"up"})");
  auto parsed = query_json(q);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed.value["expr"], "up");
  q.set_json("{not json");
  EXPECT_FALSE(query_json(q).ok());
  q.set_json("[1]");
  EXPECT_FALSE(query_json(q).ok());
  q.set_json("");
  EXPECT_TRUE(query_json(q).ok());

  pluginv2::PluginContext ctx;
  auto* ds = ctx.mutable_datasourceinstancesettings();
  ds->set_uid("u");
  ds->set_url("http://x");
  ds->set_basicauthenabled(true);
  ds->set_basicauthuser("bob");
  ds->set_jsondata(R"({"k":1})");
  (*ds->mutable_decryptedsecurejsondata())["basicAuthPassword"] = "pw";
  auto s = datasource_settings(ctx);
  EXPECT_EQ(s.uid, "u");
  EXPECT_EQ(s.url, "http://x");
  EXPECT_TRUE(s.basic_auth_enabled);
  EXPECT_EQ(s.json_data["k"], 1);
  EXPECT_EQ(s.secure_json_data.at("basicAuthPassword"), "pw");
  ds->set_jsondata("nope");
  EXPECT_FALSE(datasource_settings(ctx).json_data_error.empty());
}

TEST(SdkData, ForwardedHeaderAcceptsBothForms) {
  google::protobuf::Map<std::string, std::string> headers;
  headers["http_Authorization"] = "Bearer new";
  EXPECT_EQ(forwarded_header(headers, "authorization").value(), "Bearer new");
  google::protobuf::Map<std::string, std::string> old;
  old["Authorization"] = "Bearer old";
  EXPECT_EQ(forwarded_header(old, "Authorization").value(), "Bearer old");
  EXPECT_FALSE(forwarded_header(old, "Cookie").has_value());
}

TEST(SdkData, NullableFieldsAndFrameJson) {
  auto f = nullable_float64_field("v", {1.0, std::nullopt});
  EXPECT_TRUE(f.nullable);
  EXPECT_FALSE(f.is_null(0));
  EXPECT_TRUE(f.is_null(1));
  frames::Frame frame;
  frame.fields.push_back(time_field("time", {1700000000000000000}));
  frame.fields.push_back(float64_field("value", {7}));
  const auto j = nlohmann::json::parse(frame_json(frame));
  EXPECT_TRUE(j.contains("schema"));
  EXPECT_EQ(j["data"]["values"][0][0], 1700000000000);
  EXPECT_EQ(j["data"]["values"][1][0], 7);
}

TEST(TestdataBase64, Decodes) {
  EXPECT_EQ(testdata::decode_base64("bm90IGFycm93").value(), "not arrow");
  EXPECT_EQ(testdata::decode_base64("YQ==").value(), "a");
  EXPECT_EQ(testdata::decode_base64("YWI=").value(), "ab");
  EXPECT_EQ(testdata::decode_base64("").value(), "");
  EXPECT_FALSE(testdata::decode_base64("Y").has_value());
  EXPECT_FALSE(testdata::decode_base64("a*b").has_value());
}

}  // namespace
}  // namespace dpa::sdk
