// Shared helpers for the frames tests: fixture loading, a frame with every field type, and a
// NaN-aware frame comparison.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "aggregator/frames/frame.h"

namespace dpa::frames::testing {

inline std::string read_testdata(const std::string& name) {
  std::ifstream in(std::string(DPA_FRAMES_TESTDATA) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline Field make_field(std::string name, FieldType type, bool nullable) {
  Field f;
  f.name = std::move(name);
  f.type = type;
  f.nullable = nullable;
  return f;
}

// Four rows of every type, nullable and not; row 2 of every nullable field is null, float
// fields carry NaN/+Inf/-Inf, times carry sub-millisecond and negative values.
inline Frame every_type_frame() {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  Frame frame;
  frame.name = "every <type> & \"quote\"";
  frame.ref_id = "B";
  frame.meta = nlohmann::ordered_json::parse(
      R"({"typeVersion":[0,1],"type":"timeseries-wide","custom":{"z":1,"a":[true,null]},"executedQueryString":"up{job=\"x\"}"})");
  const FieldType kTypes[] = {FieldType::kInt8,    FieldType::kInt16,  FieldType::kInt32,
                              FieldType::kInt64,   FieldType::kUint8,  FieldType::kUint16,
                              FieldType::kUint32,  FieldType::kUint64, FieldType::kFloat32,
                              FieldType::kFloat64, FieldType::kString, FieldType::kBool,
                              FieldType::kTime,    FieldType::kJson,   FieldType::kEnum};
  for (const FieldType type : kTypes) {
    for (const bool nullable : {false, true}) {
      Field f = make_field(std::string(nullable ? "nullable_" : "") + frame_type_name(type), type,
                           nullable);
      switch (type) {
        case FieldType::kInt8:
          f.ints = {-128, 0, 5, 127};
          break;
        case FieldType::kInt16:
          f.ints = {-32768, 1, 0, 32767};
          break;
        case FieldType::kInt32:
          f.ints = {INT32_MIN, 2, 0, INT32_MAX};
          break;
        case FieldType::kInt64:
          f.ints = {INT64_MIN, -1, 0, INT64_MAX};
          break;
        case FieldType::kUint8:
          f.uints = {0, 1, 0, 255};
          break;
        case FieldType::kUint16:
          f.uints = {0, 1, 0, 65535};
          break;
        case FieldType::kUint32:
          f.uints = {0, 1, 0, UINT32_MAX};
          break;
        case FieldType::kUint64:
          f.uints = {0, 1, 0, UINT64_MAX};
          break;
        case FieldType::kEnum:
          f.uints = {0, 3, 0, 1};
          break;
        case FieldType::kFloat32:
          f.floats = {1.5, kNaN, 0, static_cast<double>(3.4028235e38f)};
          break;
        case FieldType::kFloat64:
          f.floats = {-kInf, 0.1, 0, kInf};
          break;
        case FieldType::kString:
          f.strings = {"", "héllo ❤️", "", "line\nbreak\t<tag>"};
          break;
        case FieldType::kBool:
          f.bools = {true, false, false, true};
          break;
        case FieldType::kTime:
          f.ints = {0, 1568039445000123456, 0, -1500001};  // sub-ms, and before the epoch
          break;
        case FieldType::kJson:
          f.strings = {R"({"a":1})", "[1,2,3]", "null", R"("text")"};
          break;
      }
      if (nullable) f.valid = {true, true, false, true};
      frame.fields.push_back(std::move(f));
    }
  }
  frame.fields[0].labels = {{"job", "node"}, {"instance", "a:9100"}};
  frame.fields[1].config =
      nlohmann::ordered_json::parse(R"({"displayName":"X","unit":"s","decimals":2})");
  frame.fields.back().config =
      nlohmann::ordered_json::parse(R"({"type":{"enum":{"text":["A","B","C","D"]}}})");
  return frame;
}

inline bool same_double(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

inline void expect_frames_equal(const Frame& a, const Frame& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.ref_id, b.ref_id);
  EXPECT_EQ(a.meta.has_value(), b.meta.has_value());
  if (a.meta && b.meta) {
    EXPECT_EQ(nlohmann::json(*a.meta), nlohmann::json(*b.meta));
  }
  ASSERT_EQ(a.fields.size(), b.fields.size());
  for (std::size_t i = 0; i < a.fields.size(); ++i) {
    const Field& x = a.fields[i];
    const Field& y = b.fields[i];
    SCOPED_TRACE("field " + std::to_string(i) + " " + x.name);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.nullable, y.nullable);
    EXPECT_EQ(x.labels, y.labels);
    EXPECT_EQ(x.config.has_value(), y.config.has_value());
    if (x.config && y.config) {
      EXPECT_EQ(nlohmann::json(*x.config), nlohmann::json(*y.config));
    }
    ASSERT_EQ(x.size(), y.size());
    for (std::size_t r = 0; r < x.size(); ++r) {
      const bool null_x = x.is_null(r);
      EXPECT_EQ(null_x, y.is_null(r)) << "row " << r;
      if (null_x) continue;  // the value slot of a null is unspecified
      switch (x.type) {
        case FieldType::kFloat32:
        case FieldType::kFloat64:
          EXPECT_TRUE(same_double(x.floats[r], y.floats[r]))
              << "row " << r << ": " << x.floats[r] << " vs " << y.floats[r];
          break;
        case FieldType::kString:
        case FieldType::kJson:
          EXPECT_EQ(x.strings[r], y.strings[r]) << "row " << r;
          break;
        case FieldType::kBool:
          EXPECT_EQ(x.bools[r], y.bools[r]) << "row " << r;
          break;
        case FieldType::kUint8:
        case FieldType::kUint16:
        case FieldType::kUint32:
        case FieldType::kUint64:
        case FieldType::kEnum:
          EXPECT_EQ(x.uints[r], y.uints[r]) << "row " << r;
          break;
        default:
          EXPECT_EQ(x.ints[r], y.ints[r]) << "row " << r;
      }
    }
  }
}

}  // namespace dpa::frames::testing
