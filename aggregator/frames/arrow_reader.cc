// Arrow IPC file reader for plugin frames. The file is read the way Go's ipc.FileReader reads it:
// footer -> schema -> record batch blocks; the leading stream copy of the schema is ignored.
// Nothing here trusts the input: every position is checked before use, and every allocation is
// charged against a budget proportional to the input size, so overlapping buffers or repeated
// blocks cannot turn a small file into a huge frame.
#include <bit>
#include <cstddef>
#include <cstring>
#include <optional>
#include <vector>

#include "aggregator/frames/arrow_codec.h"
#include "aggregator/frames/arrow_format.h"
#include "aggregator/frames/flatbuffer_view.h"
#include "aggregator/frames/frame_error.h"
#include "aggregator/frames/json_text.h"

namespace dpa::frames {
namespace {

static_assert(std::endian::native == std::endian::little, "Arrow buffers are read in place");

using detail::FbTable;
using detail::FbVector;
using detail::FbView;

// Decoded frames may use this many bytes per input byte (plus the slack): honest files expand at
// most ~8x (an int8 becomes an int64, an empty string a std::string), metadata JSON ~16x.
constexpr std::uint64_t kBudgetPerInputByte = 32;
constexpr std::uint64_t kBudgetSlack = 1 << 20;
constexpr std::uint64_t kJsonCostPerByte = 16;
// Loops over footer entries are charged too: columns x blocks or fields x metadata entries, all
// pointing at the same few bytes, would otherwise cost quadratic time without allocating. An
// honest column visit reads at least a FieldNode and two Buffers (48 input bytes, 1,536 units of
// budget), so 256 per visit never bites an honest file and caps a crafted one at budget/256.
constexpr std::uint64_t kVisitCost = 256;

// How one Arrow column is laid out and which frame type it becomes.
struct Column {
  FieldType type = FieldType::kFloat64;
  std::uint8_t tag = 0;  // arrow::TypeTag
  int byte_width = 0;    // fixed-width types
  bool is_signed = false;
};

class ArrowReader {
 public:
  explicit ArrowReader(std::string_view file)
      : file_(file), budget_(kBudgetPerInputByte * file.size() + kBudgetSlack) {}

  api::Expected<Frame> read() {
    constexpr std::size_t kMinSize = 8 + 4 + 6;  // magic+padding, footer length, magic
    if (file_.size() < kMinSize || file_.substr(0, 6) != arrow::kMagic) {
      return invalid("not an Arrow IPC file (missing leading ARROW1 magic)");
    }
    if (file_.substr(file_.size() - 6) != arrow::kMagic) {
      return invalid("missing trailing ARROW1 magic (stream format or truncated file)");
    }
    const std::int32_t footer_length = load<std::int32_t>(file_.size() - 10);
    if (footer_length <= 0 || static_cast<std::uint64_t>(footer_length) > file_.size() - kMinSize) {
      return invalid("footer length out of range");
    }
    const std::uint64_t footer_start =
        file_.size() - 10 - static_cast<std::uint64_t>(footer_length);
    const FbView footer(file_.substr(footer_start, static_cast<std::size_t>(footer_length)));
    const FbTable root = footer.root();
    const auto version = root.scalar<std::int16_t>(arrow::footer::kVersion, 0);
    const FbTable schema = root.table(arrow::footer::kSchema);
    const FbVector dictionaries = root.vector(arrow::footer::kDictionaries, sizeof(arrow::Block));
    const FbVector batches = root.vector(arrow::footer::kRecordBatches, sizeof(arrow::Block));
    if (!footer.ok()) return invalid(std::string("footer: ") + footer.error());
    if (version < arrow::kMetadataV4) return invalid("unsupported metadata version (before V4)");
    if (!schema) return invalid("footer has no schema");
    if (dictionaries.size > 0) return invalid("dictionary-encoded fields are not supported");

    if (auto ok = read_schema(schema); !ok) return std::move(ok).error();
    if (!footer.ok()) return invalid(std::string("schema: ") + footer.error());

    for (std::uint32_t i = 0; i < batches.size; ++i) {
      if (!charge(kVisitCost)) return invalid("frame larger than allowed");
      arrow::Block block{};
      block.offset = batches.struct_member<std::int64_t>(i, offsetof(arrow::Block, offset));
      block.meta_data_length =
          batches.struct_member<std::int32_t>(i, offsetof(arrow::Block, meta_data_length));
      block.body_length =
          batches.struct_member<std::int64_t>(i, offsetof(arrow::Block, body_length));
      if (auto ok = read_batch(block); !ok) return std::move(ok).error();
    }
    return std::move(frame_);
  }

 private:
  // Every error names what was being read ("field 3: ...", "column 2: ...").
  api::ApiError invalid(const std::string& why) const {
    return detail::bad_gateway("invalid Arrow frame from plugin: " + where_ + why);
  }

  template <class T>
  T load(std::uint64_t pos) const {
    T v;
    std::memcpy(&v, file_.data() + pos, sizeof v);
    return v;
  }

  bool charge(std::uint64_t bytes) {
    if (bytes > budget_) return false;
    budget_ -= bytes;
    return true;
  }

  // JSON metadata (meta, config) must be a JSON object; `null` means "not set".
  api::Expected<std::optional<nlohmann::ordered_json>> parse_object(std::string_view text,
                                                                    const std::string& what) {
    if (!charge(kJsonCostPerByte * text.size())) return invalid("frame larger than allowed");
    auto parsed = detail::parse_limited(text);
    if (!parsed || !(parsed->is_object() || parsed->is_null())) {
      return invalid(what + " is not a JSON object");
    }
    if (parsed->is_null()) return std::optional<nlohmann::ordered_json>();
    return std::optional<nlohmann::ordered_json>(std::move(*parsed));
  }

  api::Outcome read_schema(const FbTable& schema) {
    if (schema.scalar<std::int16_t>(arrow::schema::kEndianness, 0) != 0) {
      return invalid("big-endian data is not supported");
    }
    bool have_name = false, have_ref = false, have_meta = false;
    const FbVector metadata = schema.vector(arrow::schema::kCustomMetadata, 4);
    for (std::uint32_t k = 0; k < metadata.size; ++k) {
      if (!charge(kVisitCost)) return invalid("frame larger than allowed");
      const FbTable kv = metadata.table_at(k);
      const std::string_view key = kv.string(arrow::key_value::kKey);
      const std::string_view value = kv.string(arrow::key_value::kValue);
      // Go's getMDKey takes the first match of a key.
      if (key == "name" && !have_name) {
        if (!charge(value.size())) return invalid("frame larger than allowed");
        frame_.name = value;
        have_name = true;
      } else if (key == "refId" && !have_ref) {
        if (!charge(value.size())) return invalid("frame larger than allowed");
        frame_.ref_id = value;
        have_ref = true;
      } else if (key == "meta" && !have_meta) {
        auto meta = parse_object(value, "frame meta");
        if (!meta) return std::move(meta).error();
        frame_.meta = std::move(*meta);
        have_meta = true;
      }
    }

    const FbVector fields = schema.vector(arrow::schema::kFields, 4);
    for (std::uint32_t i = 0; i < fields.size; ++i) {
      const FbTable fb = fields.table_at(i);
      if (!fb) return invalid("schema field " + std::to_string(i) + " is malformed");
      if (!charge(sizeof(Field) + sizeof(Column))) return invalid("frame larger than allowed");
      if (auto ok = read_field(fb, i); !ok) return ok;
    }
    return api::Ok{};
  }

  api::Outcome read_field(const FbTable& fb, std::uint32_t index) {
    Field field;
    Column column;
    const std::string_view name = fb.string(arrow::field::kName);
    where_ = "field " + std::to_string(index) + ": ";
    if (!charge(name.size())) return invalid("frame larger than allowed");
    field.name = name;
    field.nullable = fb.scalar<std::uint8_t>(arrow::field::kNullable, 0) != 0;
    if (fb.has(arrow::field::kDictionary)) return invalid("dictionary encoding is not supported");
    if (fb.vector(arrow::field::kChildren, 4).size > 0) {
      return invalid("nested types are not supported");
    }
    column.tag = fb.scalar<std::uint8_t>(arrow::field::kTypeType, 0);
    const FbTable type = fb.table(arrow::field::kType);
    switch (column.tag) {
      case arrow::kTypeInt: {
        const auto bits = type.scalar<std::int32_t>(arrow::int_type::kBitWidth, 0);
        column.is_signed = type.scalar<std::uint8_t>(arrow::int_type::kIsSigned, 0) != 0;
        column.byte_width = bits / 8;
        static constexpr FieldType kSigned[] = {FieldType::kInt8, FieldType::kInt16,
                                                FieldType::kInt32, FieldType::kInt64};
        static constexpr FieldType kUnsigned[] = {FieldType::kUint8, FieldType::kUint16,
                                                  FieldType::kUint32, FieldType::kUint64};
        const int slot = bits == 8 ? 0 : bits == 16 ? 1 : bits == 32 ? 2 : bits == 64 ? 3 : -1;
        if (slot < 0) return invalid("unsupported integer width " + std::to_string(bits));
        column.type = column.is_signed ? kSigned[slot] : kUnsigned[slot];
        break;
      }
      case arrow::kTypeFloatingPoint: {
        const auto precision = type.scalar<std::int16_t>(arrow::floating_point::kPrecision, 0);
        if (precision == arrow::kPrecisionSingle) {
          column.type = FieldType::kFloat32;
          column.byte_width = 4;
        } else if (precision == arrow::kPrecisionDouble) {
          column.type = FieldType::kFloat64;
          column.byte_width = 8;
        } else {
          return invalid("half-precision floats are not supported");
        }
        break;
      }
      case arrow::kTypeTimestamp:  // the unit is ignored: Grafana always means nanoseconds
        column.type = FieldType::kTime;
        column.byte_width = 8;
        break;
      case arrow::kTypeUtf8:
      case arrow::kTypeUtf8View:
        column.type = FieldType::kString;
        break;
      case arrow::kTypeBinary:
        column.type = FieldType::kJson;
        break;
      case arrow::kTypeBool:
        column.type = FieldType::kBool;
        break;
      default:
        return invalid("unsupported Arrow type (union tag " + std::to_string(column.tag) + ")");
    }

    bool have_tstype = false, have_labels = false, have_config = false;
    const FbVector metadata = fb.vector(arrow::field::kCustomMetadata, 4);
    for (std::uint32_t k = 0; k < metadata.size; ++k) {
      if (!charge(kVisitCost)) return invalid("frame larger than allowed");
      const FbTable kv = metadata.table_at(k);
      const std::string_view key = kv.string(arrow::key_value::kKey);
      const std::string_view value = kv.string(arrow::key_value::kValue);
      if (key == "tstype" && !have_tstype) {
        have_tstype = true;
        if (value == "enum" && column.type == FieldType::kUint16) column.type = FieldType::kEnum;
      } else if (key == "labels" && !have_labels) {
        have_labels = true;
        if (!charge(kJsonCostPerByte * value.size())) return invalid("frame larger than allowed");
        auto labels = detail::parse_limited(value);
        if (!labels || !(labels->is_object() || labels->is_null())) {
          return invalid("labels are not a JSON object");
        }
        if (labels->is_object()) {
          for (auto& [label, label_value] : labels->items()) {
            if (!label_value.is_string()) return invalid("label values must be strings");
            field.labels.emplace(label, label_value.get<std::string>());
          }
        }
      } else if (key == "config" && !have_config) {
        have_config = true;
        auto config = parse_object(value, "config");
        if (!config) return std::move(config).error();
        field.config = std::move(*config);
      }
    }
    field.type = column.type;
    frame_.fields.push_back(std::move(field));
    columns_.push_back(column);
    where_.clear();
    return api::Ok{};
  }

  api::Outcome read_batch(const arrow::Block& block) {
    const std::uint64_t size = file_.size();
    if (block.offset < 8 || block.meta_data_length < 8 ||
        static_cast<std::uint64_t>(block.offset) > size ||
        static_cast<std::uint64_t>(block.meta_data_length) >
            size - static_cast<std::uint64_t>(block.offset)) {
      return invalid("record batch block out of bounds");
    }
    const auto offset = static_cast<std::uint64_t>(block.offset);
    const auto meta_length = static_cast<std::uint64_t>(block.meta_data_length);
    // Encapsulated message: 0xFFFFFFFF, int32 length, flatbuffer (pre-1.0 files omit the marker).
    std::uint64_t fb_start = offset + 8;
    std::int64_t fb_length = load<std::int32_t>(offset + 4);
    if (load<std::uint32_t>(offset) != arrow::kContinuation) {
      fb_start = offset + 4;
      fb_length = load<std::int32_t>(offset);
    }
    if (fb_length <= 0 || fb_start + static_cast<std::uint64_t>(fb_length) > offset + meta_length) {
      return invalid("record batch metadata length out of bounds");
    }
    const FbView view(file_.substr(fb_start, static_cast<std::size_t>(fb_length)));
    const FbTable message = view.root();
    const auto header_type = message.scalar<std::uint8_t>(arrow::message::kHeaderType, 0);
    const FbTable batch = message.table(arrow::message::kHeader);
    const auto body_length = message.scalar<std::int64_t>(arrow::message::kBodyLength, 0);
    const auto length = batch.scalar<std::int64_t>(arrow::record_batch::kLength, 0);
    const FbVector nodes = batch.vector(arrow::record_batch::kNodes, sizeof(arrow::FieldNode));
    const FbVector buffers = batch.vector(arrow::record_batch::kBuffers, sizeof(arrow::Buffer));
    const bool compressed = batch.has(arrow::record_batch::kCompression);
    const FbVector variadic = batch.vector(arrow::record_batch::kVariadicBufferCounts, 8);
    if (!view.ok()) return invalid(std::string("record batch: ") + view.error());
    if (header_type != arrow::kHeaderRecordBatch || !batch) {
      return invalid("block does not point at a record batch");
    }
    if (compressed) return invalid("compressed record batches are not supported");
    const std::uint64_t body_start = offset + meta_length;
    if (body_length < 0 || static_cast<std::uint64_t>(body_length) > size - body_start) {
      return invalid("record batch body out of bounds");
    }
    if (length < 0) return invalid("negative record batch length");
    if (nodes.size != columns_.size()) return invalid("record batch does not match the schema");

    Batch b{file_.substr(body_start, static_cast<std::size_t>(body_length)), buffers, variadic};
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      if (!charge(kVisitCost)) return invalid("frame larger than allowed");
      const auto node_length = nodes.struct_member<std::int64_t>(static_cast<std::uint32_t>(i), 0);
      const auto null_count = nodes.struct_member<std::int64_t>(static_cast<std::uint32_t>(i), 8);
      if (node_length != length) return invalid("column length differs from record batch length");
      if (null_count < 0 || null_count > length) return invalid("null count out of range");
      where_ = "column " + std::to_string(i) + ": ";
      if (auto ok = read_column(b, columns_[i], frame_.fields[i],
                                static_cast<std::uint64_t>(length), null_count > 0);
          !ok) {
        return ok;
      }
    }
    where_.clear();
    return api::Ok{};
  }

  // The body of one record batch and the cursors over its buffer and variadic-count lists.
  struct Batch {
    std::string_view body;
    FbVector buffers;
    FbVector variadic;
    std::uint32_t next_buffer = 0;
    std::uint32_t next_variadic = 0;
  };

  static std::optional<std::string_view> take_buffer(Batch& b) {
    if (b.next_buffer >= b.buffers.size) return std::nullopt;
    const auto offset = b.buffers.struct_member<std::int64_t>(b.next_buffer, 0);
    const auto length = b.buffers.struct_member<std::int64_t>(b.next_buffer, 8);
    ++b.next_buffer;
    if (offset < 0 || length < 0 || static_cast<std::uint64_t>(offset) > b.body.size() ||
        static_cast<std::uint64_t>(length) > b.body.size() - static_cast<std::uint64_t>(offset)) {
      return std::nullopt;
    }
    return b.body.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
  }

  static bool bit(std::string_view bits, std::uint64_t i) {
    return (static_cast<unsigned char>(bits[i / 8]) >> (i % 8)) & 1;
  }

  api::Outcome read_column(Batch& b, const Column& column, Field& field, std::uint64_t rows,
                           bool has_nulls) {
    const auto validity = take_buffer(b);
    if (!validity) return invalid("validity buffer missing or out of bounds");
    const std::uint64_t bitmap_bytes = (rows + 7) / 8;
    if (field.nullable) {
      if (validity->empty() && has_nulls) return invalid("nulls without a validity bitmap");
      if (!validity->empty() && validity->size() < bitmap_bytes) {
        return invalid("validity bitmap shorter than the column");
      }
      if (!charge(bitmap_bytes)) return invalid("frame larger than allowed");
      reserve_first(field.valid, rows);
      for (std::uint64_t r = 0; r < rows; ++r) {
        field.valid.push_back(validity->empty() || bit(*validity, r));
      }
    }

    switch (column.tag) {
      case arrow::kTypeInt:
      case arrow::kTypeFloatingPoint:
      case arrow::kTypeTimestamp:
        return read_fixed(b, column, field, rows);
      case arrow::kTypeBool: {
        const auto data = take_buffer(b);
        if (!data || data->size() < bitmap_bytes) return invalid("boolean buffer too short");
        if (!charge(bitmap_bytes)) return invalid("frame larger than allowed");
        reserve_first(field.bools, rows);
        for (std::uint64_t r = 0; r < rows; ++r) field.bools.push_back(bit(*data, r));
        return api::Ok{};
      }
      case arrow::kTypeUtf8:
      case arrow::kTypeBinary:
        return read_binary(b, field, rows);
      case arrow::kTypeUtf8View:
        return read_views(b, field, rows);
      default:
        return invalid("unsupported type");
    }
  }

  api::Outcome read_fixed(Batch& b, const Column& column, Field& field, std::uint64_t rows) {
    const auto data = take_buffer(b);
    const auto width = static_cast<std::uint64_t>(column.byte_width);
    if (!data || data->size() / width < rows) return invalid("data buffer shorter than the column");
    if (!charge(8 * rows)) return invalid("frame larger than allowed");
    const char* p = data->data();
    auto each = [&](auto&& get) {
      for (std::uint64_t r = 0; r < rows; ++r) get(p + r * width);
    };
    auto read_as = [](const char* at, auto sample) {
      decltype(sample) v;
      std::memcpy(&v, at, sizeof v);
      return v;
    };
    if (column.type == FieldType::kFloat32 || column.type == FieldType::kFloat64) {
      reserve_first(field.floats, rows);
      if (width == 4) {
        each([&](const char* at) { field.floats.push_back(read_as(at, float{})); });
      } else {
        each([&](const char* at) { field.floats.push_back(read_as(at, double{})); });
      }
      return api::Ok{};
    }
    const bool is_signed = column.is_signed || column.tag == arrow::kTypeTimestamp;
    if (is_signed) {
      reserve_first(field.ints, rows);
      switch (width) {
        case 1:
          each([&](const char* at) { field.ints.push_back(read_as(at, std::int8_t{})); });
          break;
        case 2:
          each([&](const char* at) { field.ints.push_back(read_as(at, std::int16_t{})); });
          break;
        case 4:
          each([&](const char* at) { field.ints.push_back(read_as(at, std::int32_t{})); });
          break;
        default:
          each([&](const char* at) { field.ints.push_back(read_as(at, std::int64_t{})); });
      }
    } else {
      reserve_first(field.uints, rows);
      switch (width) {
        case 1:
          each([&](const char* at) { field.uints.push_back(read_as(at, std::uint8_t{})); });
          break;
        case 2:
          each([&](const char* at) { field.uints.push_back(read_as(at, std::uint16_t{})); });
          break;
        case 4:
          each([&](const char* at) { field.uints.push_back(read_as(at, std::uint32_t{})); });
          break;
        default:
          each([&](const char* at) { field.uints.push_back(read_as(at, std::uint64_t{})); });
      }
    }
    return api::Ok{};
  }

  // Utf8 / Binary: int32 offsets (rows + 1, monotonic, inside the data buffer) and the bytes.
  api::Outcome read_binary(Batch& b, Field& field, std::uint64_t rows) {
    const auto offsets = take_buffer(b);
    const auto data = take_buffer(b);
    if (!offsets || !data) return invalid("string buffers missing or out of bounds");
    if (rows == 0) return api::Ok{};
    if (offsets->size() / 4 < rows + 1) return invalid("offsets buffer shorter than the column");
    auto offset_at = [&](std::uint64_t r) { return load_from<std::int32_t>(*offsets, 4 * r); };
    const std::int32_t first = offset_at(0);
    const std::int32_t last = offset_at(rows);
    if (first < 0 || last < first || static_cast<std::uint64_t>(last) > data->size()) {
      return invalid("string offsets outside the data buffer");
    }
    if (!charge(rows * sizeof(std::string) + static_cast<std::uint64_t>(last - first))) {
      return invalid("frame larger than allowed");
    }
    reserve_first(field.strings, rows);
    std::int32_t begin = first;
    for (std::uint64_t r = 0; r < rows; ++r) {
      const std::int32_t end = offset_at(r + 1);
      if (end < begin || end > last) return invalid("string offsets are not monotonic");
      field.strings.emplace_back(
          data->substr(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin)));
      begin = end;
    }
    return api::Ok{};
  }

  // Utf8View: 16-byte views (length, then 12 inline bytes or prefix/buffer index/offset) over
  // the batch's variadic data buffers.
  api::Outcome read_views(Batch& b, Field& field, std::uint64_t rows) {
    const auto views = take_buffer(b);
    if (!views) return invalid("view buffer missing or out of bounds");
    if (b.next_variadic >= b.variadic.size) return invalid("missing variadic buffer count");
    const auto count = b.variadic.struct_member<std::int64_t>(b.next_variadic++, 0);
    if (count < 0 || static_cast<std::uint64_t>(count) > b.buffers.size - b.next_buffer) {
      return invalid("variadic buffer count out of range");
    }
    std::vector<std::string_view> data;
    for (std::int64_t k = 0; k < count; ++k) {
      const auto buffer = take_buffer(b);
      if (!buffer) return invalid("variadic buffer out of bounds");
      data.push_back(*buffer);
    }
    if (views->size() / 16 < rows) return invalid("view buffer shorter than the column");
    if (!charge(rows * sizeof(std::string))) return invalid("frame larger than allowed");
    reserve_first(field.strings, rows);
    for (std::uint64_t r = 0; r < rows; ++r) {
      const std::uint64_t at = 16 * r;
      const auto length = load_from<std::int32_t>(*views, at);
      if (length < 0) return invalid("negative string view length");
      if (!charge(static_cast<std::uint64_t>(length))) return invalid("frame larger than allowed");
      if (length <= 12) {
        field.strings.emplace_back(views->substr(at + 4, static_cast<std::size_t>(length)));
        continue;
      }
      const auto index = load_from<std::int32_t>(*views, at + 8);
      const auto offset = load_from<std::int32_t>(*views, at + 12);
      if (index < 0 || index >= count || offset < 0 ||
          static_cast<std::uint64_t>(offset) + static_cast<std::uint64_t>(length) >
              data[static_cast<std::size_t>(index)].size()) {
        return invalid("string view outside its data buffer");
      }
      field.strings.emplace_back(data[static_cast<std::size_t>(index)].substr(
          static_cast<std::size_t>(offset), static_cast<std::size_t>(length)));
    }
    return api::Ok{};
  }

  // Reserves for the first batch only: exact reserves on every append would copy the column
  // once per batch (quadratic in the number of batches).
  template <class V>
  static void reserve_first(V& values, std::uint64_t rows) {
    if (values.empty()) values.reserve(static_cast<std::size_t>(rows));
  }

  template <class T>
  static T load_from(std::string_view bytes, std::uint64_t pos) {
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof v);
    return v;
  }

  std::string_view file_;
  std::uint64_t budget_;
  Frame frame_;
  std::vector<Column> columns_;
  std::string where_;
};

}  // namespace

api::Expected<Frame> read_arrow(std::string_view bytes) {
  return ArrowReader(bytes).read();
}

}  // namespace dpa::frames
