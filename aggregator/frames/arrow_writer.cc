// Arrow IPC file writer, laid out as the Go SDK's writer lays it out: magic, schema message,
// one record batch message with its body, end-of-stream marker, footer, footer length, magic.
// Messages are 8-byte aligned and every body buffer starts on an 8-byte boundary.
#include <flatbuffers/flatbuffers.h>

#include <bit>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "aggregator/frames/arrow_codec.h"
#include "aggregator/frames/arrow_format.h"
#include "aggregator/frames/json_text.h"

namespace dpa::frames {
namespace {

static_assert(std::endian::native == std::endian::little, "Arrow buffers are written in place");

using flatbuffers::FieldIndexToOffset;
using Builder = flatbuffers::FlatBufferBuilder;
using Ref = flatbuffers::Offset<void>;

template <class T>
void append_raw(std::string& out, T v) {
  char bytes[sizeof v];
  std::memcpy(bytes, &v, sizeof v);
  out.append(bytes, sizeof v);
}

void pad_to_8(std::string& out) {
  out.append((8 - out.size() % 8) % 8, '\0');
}

Ref key_value(Builder& b, std::string_view key, std::string_view value) {
  const auto k = b.CreateString(key.data(), key.size());
  const auto v = b.CreateString(value.data(), value.size());
  const auto start = b.StartTable();
  b.AddOffset(FieldIndexToOffset(arrow::key_value::kKey), k);
  b.AddOffset(FieldIndexToOffset(arrow::key_value::kValue), v);
  return Ref(b.EndTable(start));
}

// The Arrow type table of a field and its union tag.
std::pair<std::uint8_t, Ref> arrow_type(Builder& b, FieldType type) {
  auto int_type = [&](int bits, bool is_signed) {
    const auto start = b.StartTable();
    b.AddElement<std::int32_t>(FieldIndexToOffset(arrow::int_type::kBitWidth), bits, 0);
    b.AddElement<std::uint8_t>(FieldIndexToOffset(arrow::int_type::kIsSigned), is_signed, 0);
    return std::make_pair(std::uint8_t{arrow::kTypeInt}, Ref(b.EndTable(start)));
  };
  auto float_type = [&](std::int16_t precision) {
    const auto start = b.StartTable();
    b.AddElement<std::int16_t>(FieldIndexToOffset(arrow::floating_point::kPrecision), precision, 0);
    return std::make_pair(std::uint8_t{arrow::kTypeFloatingPoint}, Ref(b.EndTable(start)));
  };
  auto empty_type = [&](std::uint8_t tag) {
    return std::make_pair(tag, Ref(b.EndTable(b.StartTable())));
  };
  switch (type) {
    case FieldType::kInt8:
      return int_type(8, true);
    case FieldType::kInt16:
      return int_type(16, true);
    case FieldType::kInt32:
      return int_type(32, true);
    case FieldType::kInt64:
      return int_type(64, true);
    case FieldType::kUint8:
      return int_type(8, false);
    case FieldType::kUint16:
    case FieldType::kEnum:
      return int_type(16, false);
    case FieldType::kUint32:
      return int_type(32, false);
    case FieldType::kUint64:
      return int_type(64, false);
    case FieldType::kFloat32:
      return float_type(arrow::kPrecisionSingle);
    case FieldType::kFloat64:
      return float_type(arrow::kPrecisionDouble);
    case FieldType::kString:
      return empty_type(arrow::kTypeUtf8);
    case FieldType::kJson:
      return empty_type(arrow::kTypeBinary);
    case FieldType::kBool:
      return empty_type(arrow::kTypeBool);
    case FieldType::kTime: {
      const auto start = b.StartTable();
      b.AddElement<std::int16_t>(FieldIndexToOffset(arrow::timestamp::kUnit),
                                 arrow::kTimeUnitNanosecond, 0);
      return std::make_pair(std::uint8_t{arrow::kTypeTimestamp}, Ref(b.EndTable(start)));
    }
  }
  return empty_type(arrow::kTypeNull);
}

Ref arrow_field(Builder& b, const Field& f) {
  std::vector<Ref> metadata;
  metadata.push_back(key_value(b, "tstype", json_type_name(f.type)));
  if (!f.labels.empty()) {
    std::string labels = "{";
    for (const auto& [key, value] : f.labels) {
      if (labels.size() > 1) labels.push_back(',');
      detail::append_string(labels, key);
      labels.push_back(':');
      detail::append_string(labels, value);
    }
    labels.push_back('}');
    metadata.push_back(key_value(b, "labels", labels));
  }
  if (f.config) {
    std::string config;
    detail::append_value(config, *f.config);
    metadata.push_back(key_value(b, "config", config));
  }
  const auto name = b.CreateString(f.name);
  const auto [tag, type] = arrow_type(b, f.type);
  // Arrow C++ rejects a Field without a children vector, so an empty one is always written.
  const auto children = b.CreateVector(std::vector<Ref>{});
  const auto custom = b.CreateVector(metadata);
  const auto start = b.StartTable();
  b.AddOffset(FieldIndexToOffset(arrow::field::kName), name);
  b.AddElement<std::uint8_t>(FieldIndexToOffset(arrow::field::kNullable), f.nullable, 0);
  b.AddElement<std::uint8_t>(FieldIndexToOffset(arrow::field::kTypeType), tag, 0);
  b.AddOffset(FieldIndexToOffset(arrow::field::kType), type);
  b.AddOffset(FieldIndexToOffset(arrow::field::kChildren), children);
  b.AddOffset(FieldIndexToOffset(arrow::field::kCustomMetadata), custom);
  return Ref(b.EndTable(start));
}

Ref arrow_schema(Builder& b, const Frame& frame) {
  std::vector<Ref> fields;
  fields.reserve(frame.fields.size());
  for (const Field& f : frame.fields) fields.push_back(arrow_field(b, f));
  std::vector<Ref> metadata;
  metadata.push_back(key_value(b, "name", frame.name));
  metadata.push_back(key_value(b, "refId", frame.ref_id));
  if (frame.meta) {
    std::string meta;
    detail::append_value(meta, *frame.meta);
    metadata.push_back(key_value(b, "meta", meta));
  }
  const auto fields_vec = b.CreateVector(fields);
  const auto metadata_vec = b.CreateVector(metadata);
  const auto start = b.StartTable();
  b.AddOffset(FieldIndexToOffset(arrow::schema::kFields), fields_vec);
  b.AddOffset(FieldIndexToOffset(arrow::schema::kCustomMetadata), metadata_vec);
  return Ref(b.EndTable(start));
}

// A finished Message flatbuffer.
void finish_message(Builder& b, std::uint8_t header_type, Ref header, std::int64_t body_length) {
  const auto start = b.StartTable();
  b.AddElement<std::int64_t>(FieldIndexToOffset(arrow::message::kBodyLength), body_length, 0);
  b.AddOffset(FieldIndexToOffset(arrow::message::kHeader), header);
  b.AddElement<std::int16_t>(FieldIndexToOffset(arrow::message::kVersion), arrow::kMetadataV5, 0);
  b.AddElement<std::uint8_t>(FieldIndexToOffset(arrow::message::kHeaderType), header_type, 0);
  b.Finish(flatbuffers::Offset<void>(b.EndTable(start)));
}

// Appends an encapsulated message (continuation marker, padded length, flatbuffer, padding) and
// returns the length of all of that, which File.fbs's Block calls metaDataLength.
std::int32_t append_message(std::string& out, const Builder& b) {
  const std::size_t start = out.size();
  const std::size_t padded = (b.GetSize() + 8 + 7) / 8 * 8 - 8;
  append_raw<std::uint32_t>(out, arrow::kContinuation);
  append_raw<std::int32_t>(out, static_cast<std::int32_t>(padded));
  out.append(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  out.append(padded - b.GetSize(), '\0');
  return static_cast<std::int32_t>(out.size() - start);
}

// Builds the record batch body: per field a validity buffer, then its data buffers.
class BodyWriter {
 public:
  explicit BodyWriter(std::size_t rows) : rows_(rows) {}

  void add(const Field& f) {
    const std::size_t n = f.size();
    std::int64_t nulls = 0;
    for (std::size_t r = 0; r < rows_; ++r) nulls += is_null(f, n, r) ? 1 : 0;
    nodes_.push_back({static_cast<std::int64_t>(rows_), nulls});
    if (nulls == 0) {
      buffer("", 0);
    } else {
      std::string bits((rows_ + 7) / 8, '\0');
      for (std::size_t r = 0; r < rows_; ++r) {
        if (!is_null(f, n, r)) bits[r / 8] = static_cast<char>(bits[r / 8] | (1 << (r % 8)));
      }
      buffer(bits.data(), bits.size());
    }
    switch (f.type) {
      case FieldType::kInt8:
        fixed<std::int8_t>(f.ints, n);
        break;
      case FieldType::kInt16:
        fixed<std::int16_t>(f.ints, n);
        break;
      case FieldType::kInt32:
        fixed<std::int32_t>(f.ints, n);
        break;
      case FieldType::kInt64:
      case FieldType::kTime:
        fixed<std::int64_t>(f.ints, n);
        break;
      case FieldType::kUint8:
        fixed<std::uint8_t>(f.uints, n);
        break;
      case FieldType::kUint16:
      case FieldType::kEnum:
        fixed<std::uint16_t>(f.uints, n);
        break;
      case FieldType::kUint32:
        fixed<std::uint32_t>(f.uints, n);
        break;
      case FieldType::kUint64:
        fixed<std::uint64_t>(f.uints, n);
        break;
      case FieldType::kFloat32:
        fixed<float>(f.floats, n);
        break;
      case FieldType::kFloat64:
        fixed<double>(f.floats, n);
        break;
      case FieldType::kBool: {
        std::string bits((rows_ + 7) / 8, '\0');
        for (std::size_t r = 0; r < rows_ && r < n; ++r) {
          if (f.bools[r]) bits[r / 8] = static_cast<char>(bits[r / 8] | (1 << (r % 8)));
        }
        buffer(bits.data(), bits.size());
        break;
      }
      case FieldType::kString:
      case FieldType::kJson: {
        std::string offsets;
        offsets.reserve(4 * (rows_ + 1));
        std::uint64_t total = 0;
        append_raw<std::int32_t>(offsets, 0);
        for (std::size_t r = 0; r < rows_; ++r) {
          if (r < n) total += f.strings[r].size();
          // Utf8/Binary offsets are int32; larger columns cannot be framed (gRPC caps messages at
          // 2 GiB anyway), so this is a programming error in the caller, not a data-path error.
          if (total > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()))
            std::abort();
          append_raw<std::int32_t>(offsets, static_cast<std::int32_t>(total));
        }
        buffer(offsets.data(), offsets.size());
        const std::size_t start = body_.size();
        for (std::size_t r = 0; r < rows_ && r < n; ++r) body_.append(f.strings[r]);
        buffers_.push_back(
            {static_cast<std::int64_t>(start), static_cast<std::int64_t>(body_.size() - start)});
        pad_to_8(body_);
        break;
      }
    }
  }

  const std::string& body() const { return body_; }
  const std::vector<arrow::FieldNode>& nodes() const { return nodes_; }
  const std::vector<arrow::Buffer>& buffers() const { return buffers_; }

 private:
  static bool is_null(const Field& f, std::size_t n, std::size_t r) {
    if (!f.nullable) return false;
    return r >= n || (r < f.valid.size() && !f.valid[r]);
  }

  void buffer(const char* data, std::size_t size) {
    buffers_.push_back({static_cast<std::int64_t>(body_.size()), static_cast<std::int64_t>(size)});
    body_.append(data, size);
    pad_to_8(body_);
  }

  template <class T, class V>
  void fixed(const std::vector<V>& values, std::size_t n) {
    const std::size_t start = body_.size();
    body_.resize(start + rows_ * sizeof(T), '\0');
    char* out = body_.data() + start;
    for (std::size_t r = 0; r < rows_ && r < n; ++r) {
      T v;
      if constexpr (std::is_same_v<T, float>) {
        v = detail::to_float32(values[r]);
      } else {
        v = static_cast<T>(values[r]);
      }
      std::memcpy(out + r * sizeof(T), &v, sizeof v);
    }
    buffers_.push_back(
        {static_cast<std::int64_t>(start), static_cast<std::int64_t>(rows_ * sizeof(T))});
    pad_to_8(body_);
  }

  std::size_t rows_;
  std::string body_;
  std::vector<arrow::FieldNode> nodes_;
  std::vector<arrow::Buffer> buffers_;
};

}  // namespace

std::string write_arrow(const Frame& frame) {
  const std::size_t rows = frame.rows();
  std::string out(arrow::kMagic);
  out.append(2, '\0');

  Builder schema_message;
  finish_message(schema_message, arrow::kHeaderSchema, arrow_schema(schema_message, frame), 0);
  append_message(out, schema_message);

  BodyWriter body(rows);
  for (const Field& f : frame.fields) body.add(f);
  Builder batch_message;
  {
    Builder& b = batch_message;
    const auto nodes = b.CreateVectorOfStructs(body.nodes().data(), body.nodes().size());
    const auto buffers = b.CreateVectorOfStructs(body.buffers().data(), body.buffers().size());
    const auto start = b.StartTable();
    b.AddElement<std::int64_t>(FieldIndexToOffset(arrow::record_batch::kLength),
                               static_cast<std::int64_t>(rows), 0);
    b.AddOffset(FieldIndexToOffset(arrow::record_batch::kNodes), nodes);
    b.AddOffset(FieldIndexToOffset(arrow::record_batch::kBuffers), buffers);
    const Ref batch(b.EndTable(start));
    finish_message(b, arrow::kHeaderRecordBatch, batch,
                   static_cast<std::int64_t>(body.body().size()));
  }
  arrow::Block block{};
  block.offset = static_cast<std::int64_t>(out.size());
  block.meta_data_length = append_message(out, batch_message);
  block.body_length = static_cast<std::int64_t>(body.body().size());
  out.append(body.body());

  append_raw<std::uint32_t>(out, arrow::kContinuation);  // end of stream
  append_raw<std::int32_t>(out, 0);

  Builder footer;
  {
    const Ref schema = arrow_schema(footer, frame);
    const auto dictionaries = footer.CreateVectorOfStructs<arrow::Block>(nullptr, 0);
    const auto batches = footer.CreateVectorOfStructs(&block, 1);
    const auto start = footer.StartTable();
    footer.AddElement<std::int16_t>(FieldIndexToOffset(arrow::footer::kVersion), arrow::kMetadataV5,
                                    0);
    footer.AddOffset(FieldIndexToOffset(arrow::footer::kSchema), schema);
    footer.AddOffset(FieldIndexToOffset(arrow::footer::kDictionaries), dictionaries);
    footer.AddOffset(FieldIndexToOffset(arrow::footer::kRecordBatches), batches);
    footer.Finish(Ref(footer.EndTable(start)));
  }
  out.append(reinterpret_cast<const char*>(footer.GetBufferPointer()), footer.GetSize());
  append_raw<std::int32_t>(out, static_cast<std::int32_t>(footer.GetSize()));
  out.append(arrow::kMagic);
  return out;
}

}  // namespace dpa::frames
