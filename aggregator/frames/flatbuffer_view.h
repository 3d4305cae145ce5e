// Bounds-checked reading of a FlatBuffer held in untrusted bytes (the Arrow metadata of plugin
// frames). Every offset, vtable, vector and string is checked against the buffer; a failed check
// marks the view bad (sticky, like a stream's failbit) and yields an absent or zero value, so a
// parser can run to a checkpoint and then test ok() once. Internal to frames/.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace dpa::frames::detail {

class FbView;
struct FbVector;

// One table. A default-constructed (or failed) table is "absent": every accessor gives defaults.
struct FbTable {
  const FbView* view = nullptr;
  std::uint64_t pos = 0;
  std::uint64_t vtable = 0;
  std::uint16_t vtable_size = 0;
  std::uint16_t table_size = 0;

  explicit operator bool() const { return view != nullptr; }
  bool has(int field) const { return field_pos(field, 1) != 0; }
  template <class T>
  T scalar(int field, T fallback) const;
  FbTable table(int field) const;
  FbVector vector(int field, std::uint32_t element_size) const;
  std::string_view string(int field) const;

 private:
  // Absolute position of the field's inline bytes, or 0 when absent (or out of bounds).
  std::uint64_t field_pos(int field, std::uint32_t width) const;
  std::uint64_t follow(int field) const;
};

// A vector of `size` elements of `element_size` bytes starting at `data`.
struct FbVector {
  const FbView* view = nullptr;
  std::uint64_t data = 0;
  std::uint32_t size = 0;
  std::uint32_t element_size = 0;

  FbTable table_at(std::uint32_t i) const;
  std::string_view string_at(std::uint32_t i) const;
  // A member of the i-th struct; offset + sizeof(T) <= element_size is the caller's constant.
  template <class T>
  T struct_member(std::uint32_t i, std::uint32_t offset) const;
};

class FbView {
 public:
  explicit FbView(std::string_view bytes) : bytes_(bytes) {}

  FbTable root() const {
    if (!fits(0, 4)) return fail("flatbuffer shorter than its root offset"), FbTable{};
    return table_at(load<std::uint32_t>(0));
  }
  bool ok() const { return error_ == nullptr; }
  const char* error() const { return error_ == nullptr ? "" : error_; }

  bool fits(std::uint64_t pos, std::uint64_t len) const {
    return pos <= bytes_.size() && len <= bytes_.size() - pos;
  }
  template <class T>
  T load(std::uint64_t pos) const {  // little-endian host; bounds checked by the caller
    T v;
    std::memcpy(&v, bytes_.data() + pos, sizeof v);
    return v;
  }
  void fail(const char* why) const {
    if (error_ == nullptr) error_ = why;
  }

  FbTable table_at(std::uint64_t pos) const {
    if (!fits(pos, 4)) return fail("flatbuffer table out of bounds"), FbTable{};
    const std::int64_t vtable = static_cast<std::int64_t>(pos) - load<std::int32_t>(pos);
    if (vtable < 0 || !fits(static_cast<std::uint64_t>(vtable), 4)) {
      return fail("flatbuffer vtable out of bounds"), FbTable{};
    }
    const auto vt = static_cast<std::uint64_t>(vtable);
    const auto vt_size = load<std::uint16_t>(vt);
    const auto table_size = load<std::uint16_t>(vt + 2);
    if (vt_size < 4 || vt_size % 2 != 0 || !fits(vt, vt_size) || table_size < 4 ||
        !fits(pos, table_size)) {
      return fail("flatbuffer vtable malformed"), FbTable{};
    }
    return FbTable{this, pos, vt, vt_size, table_size};
  }

  FbVector vector_at(std::uint64_t pos, std::uint32_t element_size) const {
    if (!fits(pos, 4)) return fail("flatbuffer vector out of bounds"), FbVector{};
    const auto size = load<std::uint32_t>(pos);
    if (!fits(pos + 4, static_cast<std::uint64_t>(size) * element_size)) {
      return fail("flatbuffer vector longer than its buffer"), FbVector{};
    }
    return FbVector{this, pos + 4, size, element_size};
  }

  std::string_view string_at(std::uint64_t pos) const {
    const FbVector v = vector_at(pos, 1);
    if (v.view == nullptr) return {};
    return bytes_.substr(v.data, v.size);
  }

 private:
  std::string_view bytes_;
  mutable const char* error_ = nullptr;
};

inline std::uint64_t FbTable::field_pos(int field, std::uint32_t width) const {
  if (view == nullptr) return 0;
  const std::uint64_t slot = 4 + 2 * static_cast<std::uint64_t>(field);
  if (slot + 2 > vtable_size) return 0;
  const auto offset = view->load<std::uint16_t>(vtable + slot);
  if (offset == 0) return 0;
  if (offset < 4 || offset + static_cast<std::uint64_t>(width) > table_size) {
    view->fail("flatbuffer field outside its table");
    return 0;
  }
  return pos + offset;
}

inline std::uint64_t FbTable::follow(int field) const {
  const std::uint64_t at = field_pos(field, 4);
  if (at == 0) return 0;
  return at + view->load<std::uint32_t>(at);
}

template <class T>
T FbTable::scalar(int field, T fallback) const {
  const std::uint64_t at = field_pos(field, sizeof(T));
  return at == 0 ? fallback : view->load<T>(at);
}

inline FbTable FbTable::table(int field) const {
  const std::uint64_t target = follow(field);
  return target == 0 ? FbTable{} : view->table_at(target);
}

inline FbVector FbTable::vector(int field, std::uint32_t element_size) const {
  const std::uint64_t target = follow(field);
  return target == 0 ? FbVector{} : view->vector_at(target, element_size);
}

inline std::string_view FbTable::string(int field) const {
  const std::uint64_t target = follow(field);
  return target == 0 ? std::string_view{} : view->string_at(target);
}

inline FbTable FbVector::table_at(std::uint32_t i) const {
  if (view == nullptr || i >= size || element_size != 4) return FbTable{};
  const std::uint64_t at = data + 4 * static_cast<std::uint64_t>(i);
  return view->table_at(at + view->load<std::uint32_t>(at));
}

inline std::string_view FbVector::string_at(std::uint32_t i) const {
  if (view == nullptr || i >= size || element_size != 4) return {};
  const std::uint64_t at = data + 4 * static_cast<std::uint64_t>(i);
  return view->string_at(at + view->load<std::uint32_t>(at));
}

template <class T>
T FbVector::struct_member(std::uint32_t i, std::uint32_t offset) const {
  if (view == nullptr || i >= size || offset + sizeof(T) > element_size) return T{};
  return view->load<T>(data + static_cast<std::uint64_t>(i) * element_size + offset);
}

}  // namespace dpa::frames::detail
