// Grafana frame JSON: exact bytes for known frames, Go's number and string spellings, and the
// from_json inverse (including its refusals).
#include "aggregator/frames/json_codec.h"

#include <gtest/gtest.h>

#include <limits>

#include "aggregator/frames/json_text.h"
#include "frames_test_util.h"

namespace dpa::frames {
namespace {

using testing::every_type_frame;
using testing::expect_frames_equal;
using testing::make_field;

std::string json_text(const Frame& frame) {
  std::string out;
  append_json(frame, out);
  return out;
}

TEST(FrameJson, ReferenceTimeSeriesExampleByteForByte) {
  // The minimal example of reference grafana-plugin-protocol.md §3.3.
  Frame frame;
  frame.ref_id = "A";
  Field time = make_field("time", FieldType::kTime, false);
  time.ints = {1700000000000'000'000, 1700000001000'000'000};
  Field value = make_field("value", FieldType::kFloat64, true);
  value.floats = {1.5, std::numeric_limits<double>::quiet_NaN()};
  value.valid = {true, true};
  value.labels = {{"host", "a"}};
  frame.fields = {time, value};
  EXPECT_EQ(
      json_text(frame),
      R"({"schema":{"refId":"A","fields":[{"name":"time","type":"time","typeInfo":{"frame":"time.Time"}},{"name":"value","type":"number","typeInfo":{"frame":"float64","nullable":true},"labels":{"host":"a"}}]},"data":{"values":[[1700000000000,1700000001000],[1.5,null]],"entities":[null,{"NaN":[1]}]}})");
}

TEST(FrameJson, NanosEntitiesAndKeyOrder) {
  Frame frame;
  frame.name = "n";
  frame.meta = nlohmann::ordered_json::parse(R"({"typeVersion":[0,0],"custom":{"b":1,"a":2}})");
  Field t = make_field("", FieldType::kTime, true);
  t.ints = {1'000'001, -1, 5};
  t.valid = {true, true, false};
  Field f = make_field("f", FieldType::kFloat32, false);
  f.floats = {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
              std::numeric_limits<double>::quiet_NaN()};
  f.config = nlohmann::ordered_json::object();
  frame.fields = {t, f};
  EXPECT_EQ(
      json_text(frame),
      R"({"schema":{"name":"n","meta":{"typeVersion":[0,0],"custom":{"b":1,"a":2}},"fields":[)"
      R"({"type":"time","typeInfo":{"frame":"time.Time","nullable":true}},)"
      R"({"name":"f","type":"number","typeInfo":{"frame":"float32"},"config":{}}]},)"
      R"("data":{"values":[[1,-1,null],[null,null,null]],)"
      R"("entities":[null,{"NaN":[2],"Inf":[0],"NegInf":[1]}],"nanos":[[1,999999,0],null]}})");
}

TEST(FrameJson, GoFloatSpellings) {
  auto f64 = [](double v) {
    std::string out;
    detail::append_float64(out, v);
    return out;
  };
  auto f32 = [](float v) {
    std::string out;
    detail::append_float32(out, v);
    return out;
  };
  EXPECT_EQ(f64(0), "0");
  EXPECT_EQ(f64(-0.0), "-0");
  EXPECT_EQ(f64(1), "1");
  EXPECT_EQ(f64(-2.5), "-2.5");
  EXPECT_EQ(f64(0.1), "0.1");
  EXPECT_EQ(f64(1e-6), "0.000001");
  EXPECT_EQ(f64(1e-7), "1e-7");
  EXPECT_EQ(f64(1.5e-10), "1.5e-10");
  EXPECT_EQ(f64(123456789012), "123456789012");
  EXPECT_EQ(f64(1e20), "100000000000000000000");
  EXPECT_EQ(f64(1e21), "1e+21");
  EXPECT_EQ(f64(5e-324), "5e-324");
  EXPECT_EQ(f64(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(f64(9007199254740991), "9007199254740991");
  EXPECT_EQ(f32(3.4028235e38f), "3.4028235e+38");
  EXPECT_EQ(f32(1e-45f), "1e-45");
  EXPECT_EQ(f32(0.1f), "0.1");
  EXPECT_EQ(f32(16777216.0f), "16777216");
  EXPECT_DOUBLE_EQ(detail::float32_as_json_double(0.1f), 0.1);
  // Narrowing JSON doubles to float32 rounds like IEEE, without the UB of an out-of-range cast.
  EXPECT_EQ(detail::to_float32(3.4028235e38), std::numeric_limits<float>::max());
  EXPECT_EQ(detail::to_float32(-3.4028235e38), -std::numeric_limits<float>::max());
  EXPECT_EQ(detail::to_float32(1e39), std::numeric_limits<float>::infinity());
  EXPECT_EQ(detail::to_float32(-1e300), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(detail::to_float32(0.1), 0.1f);
}

TEST(FrameJson, GoStringEscaping) {
  auto s = [](std::string_view v) {
    std::string out;
    detail::append_string(out, v);
    return out;
  };
  EXPECT_EQ(s("plain ❤️"), "\"plain ❤️\"");
  EXPECT_EQ(s("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(s("\n\r\t\b\x01\x1f"), R"("\n\r\t\u0008\u0001\u001f")");
  EXPECT_EQ(s("<a href='x'>&</a>"), R"("\u003ca href='x'\u003e\u0026\u003c/a\u003e")");
  EXPECT_EQ(s("\xE2\x80\xA8\xE2\x80\xA9"), R"("\u2028\u2029")");
  EXPECT_EQ(s("bad\xff\xc3"), R"("bad\ufffd\ufffd")");
  EXPECT_EQ(s("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a UTF-16 surrogate
  EXPECT_EQ(s(std::string_view("nul\0", 4)), R"("nul\u0000")");
}

TEST(FrameJson, InvalidUtf8AndBadRawJsonStillGiveValidJson) {
  Frame frame;
  Field s = make_field("s\xff", FieldType::kString, false);
  s.strings = {"ok", "\xc0\xaf"};
  Field j = make_field("j", FieldType::kJson, false);
  j.strings = {"{not json", std::string(1000, '[') + std::string(1000, ']')};
  frame.fields = {s, j};
  const auto doc = to_json(frame);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(doc["schema"]["fields"][0]["name"], "s\xEF\xBF\xBD");
  EXPECT_EQ(doc["data"]["values"][1], nlohmann::ordered_json::parse("[null,null]"));
  EXPECT_NO_THROW((void)doc.dump());
}

TEST(FrameJson, FromJsonRoundTripEveryType) {
  const Frame frame = every_type_frame();
  const auto doc = to_json(frame);
  auto back = from_json(doc);
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_frames_equal(frame, *back);
  EXPECT_EQ(back->meta->dump(), frame.meta->dump());  // ordered_json keeps meta's key order
  EXPECT_EQ(to_json(*back), doc);

  auto unordered = from_json(nlohmann::json::parse(doc.dump()));
  ASSERT_TRUE(unordered.ok()) << unordered.error().message;
  expect_frames_equal(frame, *unordered);
}

TEST(FrameJson, FromJsonEmptyAndSchemaOnly) {
  auto empty = from_json(nlohmann::json::parse(R"({"schema":{"fields":[]},"data":{"values":[]}})"));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->fields.empty());

  auto schema_only = from_json(nlohmann::json::parse(
      R"({"schema":{"fields":[{"name":"v","type":"number","typeInfo":{"frame":"int32"}}]}})"));
  ASSERT_TRUE(schema_only.ok());
  ASSERT_EQ(schema_only->fields.size(), 1u);
  EXPECT_EQ(schema_only->fields[0].type, FieldType::kInt32);
  EXPECT_EQ(schema_only->rows(), 0u);

  // Hand-written JSON without typeInfo still gets a column type from `type`.
  auto coarse = from_json(nlohmann::json::parse(
      R"({"schema":{"fields":[{"name":"t","type":"time"},{"name":"v","type":"number"}]},)"
      R"("data":{"values":[[1000,2000],[1,2.5]]}})"));
  ASSERT_TRUE(coarse.ok()) << coarse.error().message;
  EXPECT_EQ(coarse->fields[0].ints, (std::vector<std::int64_t>{1'000'000'000, 2'000'000'000}));
  EXPECT_EQ(coarse->fields[1].type, FieldType::kFloat64);
}

TEST(FrameJson, FromJsonAcceptsNumericStringsFor64BitInts) {
  auto frame = from_json(nlohmann::json::parse(
      R"({"schema":{"fields":[{"type":"number","typeInfo":{"frame":"int64"}},{"type":"number","typeInfo":{"frame":"uint64"}}]},)"
      R"("data":{"values":[["-9223372036854775808"],["18446744073709551615"]]}})"));
  ASSERT_TRUE(frame.ok()) << frame.error().message;
  EXPECT_EQ(frame->fields[0].ints[0], INT64_MIN);
  EXPECT_EQ(frame->fields[1].uints[0], UINT64_MAX);
}

TEST(FrameJson, FromJsonRejectsMalformedFrames) {
  const char* bad[] = {
      R"([])",
      R"({"schema":[]})",
      R"({"schema":{"fields":{}}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"complex128"}}]}})",
      R"({"schema":{"fields":[{"name":"x"}]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"int8"}}]},"data":{"values":[[128]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"uint8"}}]},"data":{"values":[[-1]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"int32"}}]},"data":{"values":[[1.5]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"bool"}}]},"data":{"values":[["true"]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"string"}}]},"data":{"values":[[1]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"int8"}},{"typeInfo":{"frame":"int8"}}]},"data":{"values":[[1],[1,2]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"int8"}}]},"data":{"values":[[1],[2]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"float64"}}]},"data":{"values":[[null]],"entities":[{"NaN":[1]}]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"int64"}}]},"data":{"values":[[null]],"entities":[{"NaN":[0]}]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"time.Time"}}]},"data":{"values":[[1]],"nanos":[[1000000]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"time.Time"}}]},"data":{"values":[[9223372036854]],"nanos":[[999999]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"time.Time"}}]},"data":{"values":[[1e300]]}})",
      R"({"schema":{"fields":[{"typeInfo":{"frame":"string"},"labels":{"a":1}}]}})",
      R"({"schema":{"meta":"x","fields":[]}})",
  };
  for (const char* text : bad) {
    auto frame = from_json(nlohmann::json::parse(text));
    ASSERT_FALSE(frame.ok()) << text;
    EXPECT_EQ(frame.error().code, 502) << text;
    EXPECT_EQ(frame.error().message.rfind("invalid JSON frame from plugin: ", 0), 0u)
        << frame.error().message;
  }
}

TEST(FrameJson, FromJsonRejectsDeeplyNestedValues) {
  nlohmann::json deep = nlohmann::json::array();
  for (int i = 0; i < 300; ++i) deep = nlohmann::json::array({std::move(deep)});
  nlohmann::json doc = {{"schema", {{"fields", {{{"typeInfo", {{"frame", "json.RawMessage"}}}}}}}},
                        {"data", {{"values", {{deep}}}}}};
  auto frame = from_json(doc);
  EXPECT_FALSE(frame.ok());
}

}  // namespace
}  // namespace dpa::frames
