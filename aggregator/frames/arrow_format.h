// The subset of the Arrow columnar format (format/Schema.fbs, Message.fbs, File.fbs, metadata V5)
// that Grafana frames use: field ids of the FlatBuffers tables, union tags, and file framing.
// Shared by the reader and the writer; internal to frames/.
#pragma once

#include <cstdint>
#include <string_view>

namespace dpa::frames::arrow {

inline constexpr std::string_view kMagic{"ARROW1", 6};
inline constexpr std::uint32_t kContinuation = 0xFFFFFFFF;
inline constexpr std::int16_t kMetadataV4 = 3;
inline constexpr std::int16_t kMetadataV5 = 4;

// union Type (Schema.fbs); 1-based as FlatBuffers unions are, 0 = NONE.
enum TypeTag : std::uint8_t {
  kTypeNull = 1,
  kTypeInt = 2,
  kTypeFloatingPoint = 3,
  kTypeBinary = 4,
  kTypeUtf8 = 5,
  kTypeBool = 6,
  kTypeDecimal = 7,
  kTypeDate = 8,
  kTypeTime = 9,
  kTypeTimestamp = 10,
  kTypeInterval = 11,
  kTypeList = 12,
  kTypeStruct = 13,
  kTypeUnion = 14,
  kTypeFixedSizeBinary = 15,
  kTypeFixedSizeList = 16,
  kTypeMap = 17,
  kTypeDuration = 18,
  kTypeLargeBinary = 19,
  kTypeLargeUtf8 = 20,
  kTypeLargeList = 21,
  kTypeRunEndEncoded = 22,
  kTypeBinaryView = 23,
  kTypeUtf8View = 24,
  kTypeListView = 25,
  kTypeLargeListView = 26,
};

// union MessageHeader (Message.fbs).
inline constexpr std::uint8_t kHeaderSchema = 1;
inline constexpr std::uint8_t kHeaderDictionaryBatch = 2;
inline constexpr std::uint8_t kHeaderRecordBatch = 3;

inline constexpr std::int16_t kPrecisionSingle = 1;  // enum Precision { HALF, SINGLE, DOUBLE }
inline constexpr std::int16_t kPrecisionDouble = 2;
inline constexpr std::int16_t kTimeUnitNanosecond =
    3;  // enum TimeUnit { SECOND, MILLI, MICRO, NANO }

// Field ids (declaration order; a union takes two ids: its _type tag, then the value).
namespace footer {
enum : int { kVersion = 0, kSchema = 1, kDictionaries = 2, kRecordBatches = 3 };
}
namespace schema {
enum : int { kEndianness = 0, kFields = 1, kCustomMetadata = 2 };
}
namespace field {
enum : int {
  kName = 0,
  kNullable = 1,
  kTypeType = 2,
  kType = 3,
  kDictionary = 4,
  kChildren = 5,
  kCustomMetadata = 6
};
}
namespace key_value {
enum : int { kKey = 0, kValue = 1 };
}
namespace int_type {
enum : int { kBitWidth = 0, kIsSigned = 1 };
}
namespace floating_point {
enum : int { kPrecision = 0 };
}
namespace timestamp {
enum : int { kUnit = 0, kTimezone = 1 };
}
namespace message {
enum : int { kVersion = 0, kHeaderType = 1, kHeader = 2, kBodyLength = 3 };
}
namespace record_batch {
enum : int { kLength = 0, kNodes = 1, kBuffers = 2, kCompression = 3, kVariadicBufferCounts = 4 };
}

// Structs, little-endian, laid out exactly as in the flatbuffers.
struct Block {  // File.fbs: offset of the message, its metadata length (prefix included), body
  std::int64_t offset;
  std::int32_t meta_data_length;
  std::int32_t padding;
  std::int64_t body_length;
};
struct FieldNode {
  std::int64_t length;
  std::int64_t null_count;
};
struct Buffer {
  std::int64_t offset;
  std::int64_t length;
};
static_assert(sizeof(Block) == 24 && sizeof(FieldNode) == 16 && sizeof(Buffer) == 16);

}  // namespace dpa::frames::arrow
