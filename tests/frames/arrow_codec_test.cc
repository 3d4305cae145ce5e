// Arrow IPC codec against the Go SDK's golden file, and write/read round trips of every type.
#include "aggregator/frames/arrow_codec.h"

#include <gtest/gtest.h>

#include "aggregator/frames/json_codec.h"
#include "frames_test_util.h"

namespace dpa::frames {
namespace {

using testing::every_type_frame;
using testing::expect_frames_equal;
using testing::make_field;
using testing::read_testdata;

TEST(ArrowGolden, DecodesToGrafanasJson) {
  const std::string arrow = read_testdata("all_types.golden.arrow");
  const auto golden = nlohmann::ordered_json::parse(read_testdata("all_types.golden.json"));
  auto frame = read_arrow(arrow);
  ASSERT_TRUE(frame.ok()) << frame.error().message;
  EXPECT_EQ(frame->name, "many_types");
  EXPECT_EQ(frame->ref_id, "A");
  EXPECT_EQ(frame->rows(), 5u);
  ASSERT_EQ(frame->fields.size(), 35u);
  // ordered_json compares objects key by key in order, so this also checks Grafana's key order.
  const nlohmann::ordered_json ours = to_json(*frame);
  EXPECT_EQ(ours["schema"], golden["schema"]);
  EXPECT_EQ(ours["data"], golden["data"]);
  EXPECT_EQ(ours, golden);
}

TEST(ArrowGolden, AppendJsonMatchesGoldenAndToJson) {
  auto frame = read_arrow(read_testdata("all_types.golden.arrow"));
  ASSERT_TRUE(frame.ok());
  std::string text = "prefix:";
  append_json(*frame, text);
  ASSERT_EQ(text.rfind("prefix:", 0), 0u);
  const auto parsed = nlohmann::ordered_json::parse(text.substr(7));
  EXPECT_EQ(parsed, nlohmann::ordered_json::parse(read_testdata("all_types.golden.json")));
  EXPECT_EQ(parsed, to_json(*frame));
  // Go's spellings of the extreme values (jsoniter: float32 at 32-bit precision, 'e' form).
  EXPECT_NE(text.find("[1e-45,1e-45,1,3.4028235e+38,3.4028235e+38]"), std::string::npos);
  EXPECT_NE(text.find("1.7976931348623157e+308"), std::string::npos);
  EXPECT_NE(text.find("[-9223372036854775808,-9007199254740991,1,9007199254740991,"
                      "9223372036854775807]"),
            std::string::npos);
  EXPECT_NE(text.find("\"nanos\":[null,"), std::string::npos);
}

TEST(ArrowGolden, RewriteReadsBackIdentically) {
  const std::string golden_bytes = read_testdata("all_types.golden.arrow");
  auto frame = read_arrow(golden_bytes);
  ASSERT_TRUE(frame.ok());
  const std::string written = write_arrow(*frame);
  EXPECT_EQ(written.substr(0, 8), std::string("ARROW1\0\0", 8));
  EXPECT_EQ(written.substr(written.size() - 6), "ARROW1");
  EXPECT_EQ(written.size() % 2, 0u);
  auto again = read_arrow(written);
  ASSERT_TRUE(again.ok()) << again.error().message;
  expect_frames_equal(*frame, *again);
  EXPECT_EQ(to_json(*again), nlohmann::ordered_json::parse(read_testdata("all_types.golden.json")));
  // Deterministic, and a fixed point after one round.
  EXPECT_EQ(write_arrow(*again), written);
}

TEST(ArrowGolden, GoldenJsonDecodesToTheSameFrame) {
  auto from_arrow = read_arrow(read_testdata("all_types.golden.arrow"));
  auto from_text = from_json(nlohmann::ordered_json::parse(read_testdata("all_types.golden.json")));
  ASSERT_TRUE(from_arrow.ok());
  ASSERT_TRUE(from_text.ok()) << from_text.error().message;
  expect_frames_equal(*from_arrow, *from_text);
}

TEST(ArrowRoundTrip, EveryTypeNullableAndNot) {
  const Frame frame = every_type_frame();
  auto back = read_arrow(write_arrow(frame));
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_frames_equal(frame, *back);
  // Metadata keeps its key order through Arrow (Grafana writes FrameMeta in struct order).
  EXPECT_EQ(back->meta->dump(), frame.meta->dump());
  EXPECT_EQ(back->fields[1].config->dump(), frame.fields[1].config->dump());
  EXPECT_EQ(back->fields.back().type, FieldType::kEnum);
}

TEST(ArrowRoundTrip, NullableWithoutNullsAndAllNulls) {
  Frame frame;
  Field a = make_field("no_nulls", FieldType::kFloat64, true);
  a.floats = {1, 2, 3};
  a.valid = {true, true, true};
  Field b = make_field("all_nulls", FieldType::kString, true);
  b.strings = {"", "", ""};
  b.valid = {false, false, false};
  frame.fields = {a, b};
  auto back = read_arrow(write_arrow(frame));
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_frames_equal(frame, *back);
}

TEST(ArrowRoundTrip, EmptyFrameAndZeroRows) {
  Frame empty;
  auto back = read_arrow(write_arrow(empty));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(back->fields.empty());
  EXPECT_EQ(back->name, "");
  EXPECT_FALSE(back->meta.has_value());
  EXPECT_EQ(to_json(*back).dump(), R"({"schema":{"fields":[]},"data":{"values":[]}})");

  Frame zero = every_type_frame();
  for (Field& f : zero.fields) {
    f.ints.clear();
    f.uints.clear();
    f.floats.clear();
    f.strings.clear();
    f.bools.clear();
    f.valid.clear();
  }
  auto zero_back = read_arrow(write_arrow(zero));
  ASSERT_TRUE(zero_back.ok()) << zero_back.error().message;
  EXPECT_EQ(zero_back->rows(), 0u);
  expect_frames_equal(zero, *zero_back);
}

TEST(ArrowRoundTrip, ShortFieldsArePaddedWithNulls) {
  Frame frame;
  Field a = make_field("a", FieldType::kInt64, false);
  a.ints = {1, 2, 3};
  Field b = make_field("b", FieldType::kInt64, true);
  b.ints = {7};
  b.valid = {true};
  frame.fields = {a, b};
  auto back = read_arrow(write_arrow(frame));
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->fields[1].size(), 3u);
  EXPECT_FALSE(back->fields[1].is_null(0));
  EXPECT_TRUE(back->fields[1].is_null(1));
  EXPECT_TRUE(back->fields[1].is_null(2));
}

TEST(ArrowRoundTrip, LargeColumns) {
  Frame frame;
  Field t = make_field("time", FieldType::kTime, false);
  Field v = make_field("value", FieldType::kFloat64, true);
  Field s = make_field("series", FieldType::kString, false);
  for (int i = 0; i < 20000; ++i) {
    t.ints.push_back(1'700'000'000'000'000'000 + i * 15'000'000'000LL);
    v.floats.push_back(i * 0.25);
    v.valid.push_back(i % 7 != 0);
    s.strings.push_back("series-" + std::to_string(i % 13));
  }
  frame.fields = {t, v, s};
  auto back = read_arrow(write_arrow(frame));
  ASSERT_TRUE(back.ok());
  expect_frames_equal(frame, *back);
}

}  // namespace
}  // namespace dpa::frames
