// Grafana data frames in memory: a named table of equal-length typed columns (fields), as the
// plugin SDK defines them (reference grafana-plugin-protocol.md §3). arrow_codec.h reads and
// writes them as Arrow IPC files; json_codec.h as Grafana's frame JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace dpa::frames {

// typeInfo.frame names: int8 ... uint64, float32, float64, string, bool, time.Time,
// json.RawMessage, enum.
enum class FieldType {
  kInt8, kInt16, kInt32, kInt64,
  kUint8, kUint16, kUint32, kUint64,
  kFloat32, kFloat64,
  kString, kBool,
  kTime,  // nanoseconds since the Unix epoch (Arrow Timestamp(ns), no time zone)
  kJson,  // json.RawMessage: the bytes of one JSON value (Arrow Binary)
  kEnum,  // uint16 index into config.type.enum.text
};

// One column. Exactly one vector matches `type` (time and int64 share `ints`):
//   kInt8..kInt64, kTime -> ints; kUint8..kUint64, kEnum -> uints; kFloat32/64 -> floats;
//   kString, kJson -> strings; kBool -> bools.
// For nullable fields `valid[i] == false` marks a null (the value slot holds a default);
// for non-nullable fields `valid` is empty.
struct Field {
  std::string name;
  FieldType type = FieldType::kFloat64;
  bool nullable = false;
  std::map<std::string, std::string> labels;  // empty = no labels
  std::optional<nlohmann::ordered_json> config;  // FieldConfig; nullopt = not set

  std::vector<int64_t> ints;
  std::vector<uint64_t> uints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<bool> bools;
  std::vector<bool> valid;

  std::size_t size() const;
  bool is_null(std::size_t row) const { return nullable && !valid[row]; }
};

struct Frame {
  std::string name;
  std::string ref_id;
  std::optional<nlohmann::ordered_json> meta;  // FrameMeta; nullopt = not set
  std::vector<Field> fields;

  std::size_t rows() const { return fields.empty() ? 0 : fields.front().size(); }
};

// "int8", ..., "time.Time", "json.RawMessage", "enum".
const char* frame_type_name(FieldType type);
// "number", "string", "boolean", "time", "other", "enum".
const char* json_type_name(FieldType type);

}  // namespace dpa::frames
