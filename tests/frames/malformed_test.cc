// The Arrow reader on hostile input (it is fed bytes from plugin processes): truncations, bit
// flips, bad magic, lying lengths and decompression bombs must all give a 502, never a crash, an
// over-read or a huge allocation. CI runs this under ASan and UBSan. Hand-crafted files also
// cover what our writer never produces (Utf8View, several record batches).
#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>

#include "aggregator/frames/arrow_codec.h"
#include "aggregator/frames/arrow_format.h"
#include "aggregator/frames/json_codec.h"
#include "frames_test_util.h"

namespace dpa::frames {
namespace {

using flatbuffers::FieldIndexToOffset;
using testing::read_testdata;
using Ref = flatbuffers::Offset<void>;

void expect_rejected(std::string_view bytes, const std::string& context) {
  auto frame = read_arrow(bytes);
  ASSERT_FALSE(frame.ok()) << context;
  EXPECT_EQ(frame.error().code, 502) << context;
  EXPECT_EQ(frame.error().reason, "BadGateway") << context;
  EXPECT_EQ(frame.error().message.rfind("invalid Arrow frame from plugin: ", 0), 0u)
      << frame.error().message;
}

// Whatever the reader accepts must be usable: both JSON encoders and the writer run on it.
void exercise(const api::Expected<Frame>& frame) {
  if (!frame.ok()) return;
  std::string text;
  append_json(*frame, text);
  EXPECT_FALSE(to_json(*frame).is_discarded());
  EXPECT_TRUE(read_arrow(write_arrow(*frame)).ok());
}

template <class T>
void put(std::string& bytes, std::size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof v);
}

// ---- a tiny Arrow file crafter (one schema, one record batch message, N footer blocks) ----

struct CraftField {
  std::string name = "f";
  bool nullable = false;
  std::uint8_t tag = arrow::kTypeInt;
  int bit_width = 64;
  bool is_signed = true;
};

struct CraftBatch {
  std::int64_t length = 0;
  std::vector<arrow::FieldNode> nodes;
  std::vector<arrow::Buffer> buffers;
  std::vector<std::int64_t> variadic_counts;
  std::string body;
};

Ref craft_schema(flatbuffers::FlatBufferBuilder& b, const std::vector<CraftField>& fields) {
  std::vector<Ref> refs;
  for (const CraftField& f : fields) {
    const auto name = b.CreateString(f.name);
    auto start = b.StartTable();
    if (f.tag == arrow::kTypeInt) {
      b.AddElement<std::int32_t>(FieldIndexToOffset(arrow::int_type::kBitWidth), f.bit_width, 0);
      b.AddElement<std::uint8_t>(FieldIndexToOffset(arrow::int_type::kIsSigned), f.is_signed, 0);
    }
    const Ref type(b.EndTable(start));
    start = b.StartTable();
    b.AddOffset(FieldIndexToOffset(arrow::field::kName), name);
    b.AddElement<std::uint8_t>(FieldIndexToOffset(arrow::field::kNullable), f.nullable, 0);
    b.AddElement<std::uint8_t>(FieldIndexToOffset(arrow::field::kTypeType), f.tag, 0);
    b.AddOffset(FieldIndexToOffset(arrow::field::kType), type);
    refs.push_back(Ref(b.EndTable(start)));
  }
  const auto vec = b.CreateVector(refs);
  const auto start = b.StartTable();
  b.AddOffset(FieldIndexToOffset(arrow::schema::kFields), vec);
  return Ref(b.EndTable(start));
}

std::string craft_file(const std::vector<CraftField>& fields,
                       const std::vector<CraftBatch>& batches, int copies_of_each_block = 1) {
  std::string out("ARROW1\0\0", 8);
  std::vector<arrow::Block> blocks;
  for (const CraftBatch& batch : batches) {
    flatbuffers::FlatBufferBuilder b;
    const auto nodes = b.CreateVectorOfStructs(batch.nodes.data(), batch.nodes.size());
    const auto buffers = b.CreateVectorOfStructs(batch.buffers.data(), batch.buffers.size());
    const auto variadic = b.CreateVector(batch.variadic_counts);
    auto start = b.StartTable();
    b.AddElement<std::int64_t>(FieldIndexToOffset(arrow::record_batch::kLength), batch.length, -1);
    b.AddOffset(FieldIndexToOffset(arrow::record_batch::kNodes), nodes);
    b.AddOffset(FieldIndexToOffset(arrow::record_batch::kBuffers), buffers);
    if (!batch.variadic_counts.empty()) {
      b.AddOffset(FieldIndexToOffset(arrow::record_batch::kVariadicBufferCounts), variadic);
    }
    const Ref rb(b.EndTable(start));
    start = b.StartTable();
    b.AddElement<std::int16_t>(FieldIndexToOffset(arrow::message::kVersion), arrow::kMetadataV5, 0);
    b.AddElement<std::uint8_t>(FieldIndexToOffset(arrow::message::kHeaderType),
                               arrow::kHeaderRecordBatch, 0);
    b.AddOffset(FieldIndexToOffset(arrow::message::kHeader), rb);
    b.AddElement<std::int64_t>(FieldIndexToOffset(arrow::message::kBodyLength),
                               static_cast<std::int64_t>(batch.body.size()), 0);
    b.Finish(Ref(b.EndTable(start)));
    const std::size_t padded = (b.GetSize() + 7) / 8 * 8;
    arrow::Block block{};
    block.offset = static_cast<std::int64_t>(out.size());
    block.meta_data_length = static_cast<std::int32_t>(8 + padded);
    block.body_length = static_cast<std::int64_t>(batch.body.size());
    out.append("\xff\xff\xff\xff", 4);
    const auto len = static_cast<std::int32_t>(padded);
    out.append(reinterpret_cast<const char*>(&len), 4);
    out.append(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
    out.append(padded - b.GetSize(), '\0');
    out.append(batch.body);
    out.append((8 - out.size() % 8) % 8, '\0');
    for (int c = 0; c < copies_of_each_block; ++c) blocks.push_back(block);
  }
  flatbuffers::FlatBufferBuilder f;
  const Ref schema = craft_schema(f, fields);
  const auto block_vec = f.CreateVectorOfStructs(blocks.data(), blocks.size());
  const auto start = f.StartTable();
  f.AddElement<std::int16_t>(FieldIndexToOffset(arrow::footer::kVersion), arrow::kMetadataV5, 0);
  f.AddOffset(FieldIndexToOffset(arrow::footer::kSchema), schema);
  f.AddOffset(FieldIndexToOffset(arrow::footer::kRecordBatches), block_vec);
  f.Finish(Ref(f.EndTable(start)));
  out.append(reinterpret_cast<const char*>(f.GetBufferPointer()), f.GetSize());
  const auto footer_len = static_cast<std::int32_t>(f.GetSize());
  out.append(reinterpret_cast<const char*>(&footer_len), 4);
  out.append("ARROW1");
  return out;
}

// One int64 column of `rows` values 0..rows-1.
CraftBatch int64_batch(std::int64_t rows, std::int64_t first = 0) {
  CraftBatch batch;
  batch.length = rows;
  batch.nodes = {{rows, 0}};
  batch.buffers = {{0, 0}, {0, rows * 8}};
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t v = first + i;
    batch.body.append(reinterpret_cast<const char*>(&v), 8);
  }
  return batch;
}

TEST(ArrowCrafted, SeveralRecordBatchesAreConcatenated) {
  const std::string file = craft_file({CraftField{}}, {int64_batch(3), int64_batch(2, 100)});
  auto frame = read_arrow(file);
  ASSERT_TRUE(frame.ok()) << frame.error().message;
  EXPECT_EQ(frame->fields[0].ints, (std::vector<std::int64_t>{0, 1, 2, 100, 101}));
}

TEST(ArrowCrafted, Utf8ViewStringsInlineAndInBuffers) {
  CraftField field;
  field.tag = arrow::kTypeUtf8View;
  field.nullable = true;
  CraftBatch batch;
  batch.length = 3;
  batch.nodes = {{3, 1}};
  std::string views(48, '\0');
  put<std::int32_t>(views, 0, 5);
  std::memcpy(views.data() + 4, "short", 5);
  put<std::int32_t>(views, 32, 20);  // row 2: 20 bytes in data buffer 0 at offset 4
  std::memcpy(views.data() + 36, "a lo", 4);
  put<std::int32_t>(views, 40, 0);
  put<std::int32_t>(views, 44, 4);
  const std::string data = "xxxxa longer string!!!!x";
  batch.body = std::string("\x05\0\0\0\0\0\0\0", 8) + views + data;  // validity 0b101
  batch.buffers = {{0, 1}, {8, 48}, {56, static_cast<std::int64_t>(data.size())}};
  batch.variadic_counts = {1};
  auto frame = read_arrow(craft_file({field}, {batch}));
  ASSERT_TRUE(frame.ok()) << frame.error().message;
  const Field& f = frame->fields[0];
  EXPECT_EQ(f.type, FieldType::kString);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f.strings[0], "short");
  EXPECT_TRUE(f.is_null(1));
  EXPECT_EQ(f.strings[2], "a longer string!!!!x");
}

TEST(ArrowCrafted, Utf8ViewOutsideItsBufferIsRejected) {
  CraftField field;
  field.tag = arrow::kTypeUtf8View;
  CraftBatch batch;
  batch.length = 1;
  batch.nodes = {{1, 0}};
  std::string views(16, '\0');
  put<std::int32_t>(views, 0, 100);
  put<std::int32_t>(views, 8, 0);
  put<std::int32_t>(views, 12, 0);
  batch.body = views + std::string(16, 'x');
  batch.buffers = {{0, 0}, {0, 16}, {16, 16}};
  batch.variadic_counts = {1};
  expect_rejected(craft_file({field}, {batch}), "view past its buffer");
  batch.variadic_counts = {5};
  expect_rejected(craft_file({field}, {batch}), "variadic count past the buffer list");
  batch.variadic_counts = {};
  expect_rejected(craft_file({field}, {batch}), "no variadic counts");
}

TEST(ArrowCrafted, RepeatedBlocksCannotBlowUpMemory) {
  // 60,000 footer blocks pointing at one 1,000-row batch: ~1.5 MB of input that would decode to
  // 480 MB. The budget refuses it.
  const std::string file = craft_file({CraftField{}}, {int64_batch(1000)}, 60000);
  EXPECT_LT(file.size(), 2u << 20);
  expect_rejected(file, "block bomb");
  auto frame = read_arrow(file);
  EXPECT_NE(frame.error().message.find("larger than allowed"), std::string::npos);
}

TEST(ArrowCrafted, ManyColumnsTimesManyBlocksCannotBurnCpu) {
  // 10,000 empty columns x 100,000 blocks of the same batch: a billion column visits for ~4 MB.
  std::vector<CraftField> fields(10000);
  CraftBatch batch;
  batch.nodes.assign(fields.size(), {0, 0});
  batch.buffers.assign(2 * fields.size(), {0, 0});
  const std::string file = craft_file(fields, {batch}, 100000);
  const auto started = std::chrono::steady_clock::now();
  expect_rejected(file, "visit bomb");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
  // The same batch once is a legitimate empty frame.
  auto once = read_arrow(craft_file(fields, {batch}, 1));
  ASSERT_TRUE(once.ok()) << once.error().message;
  EXPECT_EQ(once->fields.size(), 10000u);
}

TEST(ArrowCrafted, LyingLengthsAreRejected) {
  CraftBatch huge = int64_batch(4);
  huge.length = huge.nodes[0].length = std::int64_t{1} << 62;
  expect_rejected(craft_file({CraftField{}}, {huge}), "2^62 rows");

  CraftBatch negative = int64_batch(4);
  negative.length = negative.nodes[0].length = -1;
  expect_rejected(craft_file({CraftField{}}, {negative}), "negative rows");

  CraftBatch mismatch = int64_batch(4);
  mismatch.nodes[0].length = 3;
  expect_rejected(craft_file({CraftField{}}, {mismatch}), "node length differs");

  CraftBatch past_body = int64_batch(4);
  past_body.buffers[1] = {8, 32};
  expect_rejected(craft_file({CraftField{}}, {past_body}), "buffer past the body");

  CraftBatch wrapping = int64_batch(4);
  wrapping.buffers[1] = {INT64_MAX, INT64_MAX};
  expect_rejected(craft_file({CraftField{}}, {wrapping}), "buffer offset overflow");

  CraftBatch missing = int64_batch(4);
  missing.buffers.pop_back();
  expect_rejected(craft_file({CraftField{}}, {missing}), "missing buffer");

  CraftBatch nulls_without_bitmap = int64_batch(4);
  nulls_without_bitmap.nodes[0].null_count = 2;
  CraftField nullable;
  nullable.nullable = true;
  expect_rejected(craft_file({nullable}, {nulls_without_bitmap}), "nulls without bitmap");

  CraftBatch too_many_nulls = int64_batch(4);
  too_many_nulls.nodes[0].null_count = 5;
  expect_rejected(craft_file({CraftField{}}, {too_many_nulls}), "null count > length");
}

TEST(ArrowCrafted, StringOffsetsAreChecked) {
  CraftField field;
  field.tag = arrow::kTypeUtf8;
  auto batch_with_offsets = [](std::vector<std::int32_t> offsets, std::string data) {
    CraftBatch batch;
    batch.length = static_cast<std::int64_t>(offsets.size()) - 1;
    batch.nodes = {{batch.length, 0}};
    std::string off(reinterpret_cast<const char*>(offsets.data()), offsets.size() * 4);
    off.append((8 - off.size() % 8) % 8, '\0');
    batch.buffers = {
        {0, 0},
        {0, static_cast<std::int64_t>(offsets.size() * 4)},
        {static_cast<std::int64_t>(off.size()), static_cast<std::int64_t>(data.size())}};
    batch.body = off + data;
    return batch;
  };
  auto good = read_arrow(craft_file({field}, {batch_with_offsets({0, 2, 2, 5}, "abcde")}));
  ASSERT_TRUE(good.ok()) << good.error().message;
  EXPECT_EQ(good->fields[0].strings, (std::vector<std::string>{"ab", "", "cde"}));
  expect_rejected(craft_file({field}, {batch_with_offsets({0, 3, 2, 5}, "abcde")}),
                  "non-monotonic");
  expect_rejected(craft_file({field}, {batch_with_offsets({0, 2, 9}, "abcde")}), "past the data");
  expect_rejected(craft_file({field}, {batch_with_offsets({-1, 2, 5}, "abcde")}), "negative");
  expect_rejected(craft_file({field}, {batch_with_offsets({0, 2, 9, 3}, "abcde")}),
                  "middle offset past the end");
}

TEST(ArrowCrafted, UnsupportedTypesAreRejected) {
  const std::uint8_t kTags[] = {arrow::kTypeLargeUtf8,
                                arrow::kTypeLargeBinary,
                                arrow::kTypeDate,
                                arrow::kTypeDecimal,
                                arrow::kTypeList,
                                arrow::kTypeNull,
                                0,
                                200};
  for (const std::uint8_t tag : kTags) {
    CraftField field;
    field.tag = tag;
    expect_rejected(craft_file({field}, {}), "type tag " + std::to_string(tag));
  }
  CraftField odd_int;
  odd_int.bit_width = 12;
  expect_rejected(craft_file({odd_int}, {}), "12-bit int");
}

TEST(ArrowMalformed, WrongMagicAndTooShort) {
  std::string file = write_arrow(testing::every_type_frame());
  ASSERT_TRUE(read_arrow(file).ok());
  expect_rejected("", "empty");
  expect_rejected("ARROW1", "magic only");
  expect_rejected(std::string("ARROW1\0\0ARROW1", 14), "two magics");
  std::string bad_head = file;
  bad_head[0] = 'X';
  expect_rejected(bad_head, "bad leading magic");
  std::string bad_tail = file;
  bad_tail[bad_tail.size() - 1] = 'X';
  expect_rejected(bad_tail, "bad trailing magic");
  expect_rejected(std::string(1000, '\0'), "zeros");
}

TEST(ArrowMalformed, HugeFooterLength) {
  const std::string file = write_arrow(testing::every_type_frame());
  for (const std::int32_t length :
       {INT32_MAX, INT32_MIN, -1, 0, static_cast<std::int32_t>(file.size())}) {
    std::string bad = file;
    put<std::int32_t>(bad, bad.size() - 10, length);
    expect_rejected(bad, "footer length " + std::to_string(length));
  }
}

TEST(ArrowMalformed, TruncationAtEveryOffsetOfTheGoldenFile) {
  const std::string golden = read_testdata("all_types.golden.arrow");
  ASSERT_TRUE(read_arrow(golden).ok());
  for (std::size_t n = 0; n < golden.size(); ++n) {
    expect_rejected(std::string_view(golden).substr(0, n), "truncated to " + std::to_string(n));
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(ArrowMalformed, TruncationKeepingTheTrailerIsRejectedOrSafe) {
  // Drop a middle slice but keep the last bytes, so the footer length and magic still look valid.
  const std::string golden = read_testdata("all_types.golden.arrow");
  for (std::size_t cut = 8; cut + 64 < golden.size(); cut += 37) {
    const std::string spliced = golden.substr(0, cut) + golden.substr(cut + 64);
    exercise(read_arrow(spliced));
  }
}

TEST(ArrowMalformed, SeededBitFlipsNeverCrash) {
  const std::string golden = read_testdata("all_types.golden.arrow");
  const std::string ours = write_arrow(testing::every_type_frame());
  std::mt19937_64 rng(20240611);
  int accepted = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string bytes = (i % 2 == 0) ? golden : ours;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const std::size_t at = rng() % bytes.size();
      if (rng() % 3 == 0) {
        bytes[at] = static_cast<char>(rng());  // a whole random byte: hits lengths and offsets
      } else {
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
      }
    }
    auto frame = read_arrow(bytes);
    if (frame.ok()) ++accepted;
    exercise(frame);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "mutation " << i;
      return;
    }
  }
  // Most single flips land in value bytes and still decode; the point is that nothing crashed.
  EXPECT_GT(accepted, 0);
}

TEST(ArrowMalformed, BitFlipsInTheMetadataRegionsOnly) {
  // Concentrate mutations on the footer and message headers, where offsets and vtables live.
  const std::string golden = read_testdata("all_types.golden.arrow");
  std::int32_t footer_length = 0;
  std::memcpy(&footer_length, golden.data() + golden.size() - 10, 4);
  const std::size_t footer_start = golden.size() - 10 - static_cast<std::size_t>(footer_length);
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = golden;
    const std::size_t region = (i % 2 == 0) ? footer_start : 8;
    const std::size_t span = (i % 2 == 0) ? static_cast<std::size_t>(footer_length) : 4096;
    bytes[region + rng() % span] = static_cast<char>(rng());
    exercise(read_arrow(bytes));
  }
}

}  // namespace
}  // namespace dpa::frames
