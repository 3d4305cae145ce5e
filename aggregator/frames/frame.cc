// Field sizes and the type-name tables of reference grafana-plugin-protocol.md §3.1.
#include "aggregator/frames/frame.h"

namespace dpa::frames {

std::size_t Field::size() const {
  switch (type) {
    case FieldType::kInt8:
    case FieldType::kInt16:
    case FieldType::kInt32:
    case FieldType::kInt64:
    case FieldType::kTime:
      return ints.size();
    case FieldType::kUint8:
    case FieldType::kUint16:
    case FieldType::kUint32:
    case FieldType::kUint64:
    case FieldType::kEnum:
      return uints.size();
    case FieldType::kFloat32:
    case FieldType::kFloat64:
      return floats.size();
    case FieldType::kString:
    case FieldType::kJson:
      return strings.size();
    case FieldType::kBool:
      return bools.size();
  }
  return 0;
}

const char* frame_type_name(FieldType type) {
  switch (type) {
    case FieldType::kInt8:
      return "int8";
    case FieldType::kInt16:
      return "int16";
    case FieldType::kInt32:
      return "int32";
    case FieldType::kInt64:
      return "int64";
    case FieldType::kUint8:
      return "uint8";
    case FieldType::kUint16:
      return "uint16";
    case FieldType::kUint32:
      return "uint32";
    case FieldType::kUint64:
      return "uint64";
    case FieldType::kFloat32:
      return "float32";
    case FieldType::kFloat64:
      return "float64";
    case FieldType::kString:
      return "string";
    case FieldType::kBool:
      return "bool";
    case FieldType::kTime:
      return "time.Time";
    case FieldType::kJson:
      return "json.RawMessage";
    case FieldType::kEnum:
      return "enum";
  }
  return "";
}

const char* json_type_name(FieldType type) {
  switch (type) {
    case FieldType::kString:
      return "string";
    case FieldType::kBool:
      return "boolean";
    case FieldType::kTime:
      return "time";
    case FieldType::kJson:
      return "other";
    case FieldType::kEnum:
      return "enum";
    default:
      return "number";
  }
}

}  // namespace dpa::frames
