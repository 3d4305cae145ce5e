// Frame JSON as Grafana's Go SDK writes it (data/frame_json.go): schema key order name, refId,
// meta, fields; field key order name, type, typeInfo, labels, config; data key order values,
// entities, nanos. Times are epoch milliseconds (floor) plus the sub-millisecond rest in `nanos`.
#include "aggregator/frames/json_codec.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "aggregator/frames/frame_error.h"
#include "aggregator/frames/json_text.h"

namespace dpa::frames {
namespace {

constexpr std::int64_t kNanosPerMilli = 1'000'000;

// Row indexes of the special float values of one field (FieldValueEntityLookup).
struct Entities {
  std::vector<std::size_t> nan;
  std::vector<std::size_t> inf;
  std::vector<std::size_t> neg_inf;
};

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_index_array(std::string& out, const std::vector<std::size_t>& rows) {
  out.push_back('[');
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_uint(out, rows[i]);
  }
  out.push_back(']');
}

// Go's json.RawMessage cell: empty and `null` print null; we also refuse to embed anything that
// is not one complete, reasonably nested JSON value, so the response always parses.
void append_raw_json(std::string& out, const std::string& raw) {
  if (raw.empty() || raw == "null" || !detail::depth_within(raw, detail::kMaxJsonDepth) ||
      !nlohmann::json::accept(raw)) {
    out.append("null");
    return;
  }
  out.append(raw);
}

void append_schema(const Frame& frame, std::string& out) {
  out.push_back('{');
  bool started = false;
  if (!frame.name.empty()) {
    out.append("\"name\":");
    detail::append_string(out, frame.name);
    started = true;
  }
  if (!frame.ref_id.empty()) {
    if (started) out.push_back(',');
    out.append("\"refId\":");
    detail::append_string(out, frame.ref_id);
    started = true;
  }
  if (frame.meta) {
    if (started) out.push_back(',');
    out.append("\"meta\":");
    detail::append_value(out, *frame.meta);
    started = true;
  }
  if (started) out.push_back(',');
  out.append("\"fields\":[");
  for (std::size_t i = 0; i < frame.fields.size(); ++i) {
    const Field& f = frame.fields[i];
    if (i > 0) out.push_back(',');
    out.push_back('{');
    if (!f.name.empty()) {
      out.append("\"name\":");
      detail::append_string(out, f.name);
      out.push_back(',');
    }
    out.append("\"type\":\"");
    out.append(json_type_name(f.type));
    out.append("\",\"typeInfo\":{\"frame\":\"");
    out.append(frame_type_name(f.type));
    out.append(f.nullable ? "\",\"nullable\":true}" : "\"}");
    if (!f.labels.empty()) {
      out.append(",\"labels\":{");
      bool first = true;
      for (const auto& [key, value] : f.labels) {  // std::map: sorted by key, as Go sorts
        if (!first) out.push_back(',');
        first = false;
        detail::append_string(out, key);
        out.push_back(':');
        detail::append_string(out, value);
      }
      out.push_back('}');
    }
    if (f.config) {
      out.append(",\"config\":");
      detail::append_value(out, *f.config);
    }
    out.push_back('}');
  }
  out.append("]}");
}

// Writes one column; fills `entities` for floats and `nanos` for times (both lazily).
void append_column(const Field& f, std::size_t rows, std::string& out,
                   std::unique_ptr<Entities>& entities, std::vector<std::int64_t>& nanos) {
  const std::size_t n = f.size();
  out.push_back('[');
  for (std::size_t i = 0; i < rows; ++i) {
    if (i > 0) out.push_back(',');
    if (i >= n || (f.nullable && i < f.valid.size() && !f.valid[i])) {
      out.append("null");
      continue;
    }
    switch (f.type) {
      case FieldType::kInt8:
        append_int(out, static_cast<std::int8_t>(f.ints[i]));
        break;
      case FieldType::kInt16:
        append_int(out, static_cast<std::int16_t>(f.ints[i]));
        break;
      case FieldType::kInt32:
        append_int(out, static_cast<std::int32_t>(f.ints[i]));
        break;
      case FieldType::kInt64:
        append_int(out, f.ints[i]);
        break;
      case FieldType::kUint8:
        append_uint(out, static_cast<std::uint8_t>(f.uints[i]));
        break;
      case FieldType::kUint16:
      case FieldType::kEnum:
        append_uint(out, static_cast<std::uint16_t>(f.uints[i]));
        break;
      case FieldType::kUint32:
        append_uint(out, static_cast<std::uint32_t>(f.uints[i]));
        break;
      case FieldType::kUint64:
        append_uint(out, f.uints[i]);
        break;
      case FieldType::kFloat32:
      case FieldType::kFloat64: {
        const bool single = f.type == FieldType::kFloat32;
        const double v =
            single ? static_cast<double>(detail::to_float32(f.floats[i])) : f.floats[i];
        if (std::isfinite(v)) {
          if (single) {
            detail::append_float32(out, static_cast<float>(v));
          } else {
            detail::append_float64(out, v);
          }
          break;
        }
        if (!entities) entities = std::make_unique<Entities>();
        (std::isnan(v) ? entities->nan : v > 0 ? entities->inf : entities->neg_inf).push_back(i);
        out.append("null");
        break;
      }
      case FieldType::kString:
        detail::append_string(out, f.strings[i]);
        break;
      case FieldType::kJson:
        append_raw_json(out, f.strings[i]);
        break;
      case FieldType::kBool:
        out.append(f.bools[i] ? "true" : "false");
        break;
      case FieldType::kTime: {
        const std::int64_t ns = f.ints[i];
        std::int64_t ms = ns / kNanosPerMilli;
        std::int64_t rest = ns % kNanosPerMilli;
        if (rest < 0) {  // floor, as Go's Time.UnixMilli and Truncate
          --ms;
          rest += kNanosPerMilli;
        }
        append_int(out, ms);
        if (rest != 0) {
          if (nanos.empty()) nanos.assign(rows, 0);
          nanos[i] = rest;
        }
        break;
      }
    }
  }
  out.push_back(']');
}

void append_data(const Frame& frame, std::string& out) {
  const std::size_t rows = frame.rows();
  const std::size_t count = frame.fields.size();
  std::vector<std::unique_ptr<Entities>> entities(count);
  std::vector<std::vector<std::int64_t>> nanos(count);
  bool any_entities = false;
  bool any_nanos = false;
  out.append("{\"values\":[");
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back(',');
    append_column(frame.fields[i], rows, out, entities[i], nanos[i]);
    any_entities = any_entities || entities[i];
    any_nanos = any_nanos || !nanos[i].empty();
  }
  out.push_back(']');
  if (any_entities) {
    out.append(",\"entities\":[");
    for (std::size_t i = 0; i < count; ++i) {
      if (i > 0) out.push_back(',');
      const Entities* e = entities[i].get();
      if (e == nullptr) {
        out.append("null");
        continue;
      }
      out.push_back('{');
      bool first = true;
      auto key = [&](const char* name, const std::vector<std::size_t>& rows_of) {
        if (rows_of.empty()) return;
        if (!first) out.push_back(',');
        first = false;
        out.append(name);
        append_index_array(out, rows_of);
      };
      key("\"NaN\":", e->nan);
      key("\"Inf\":", e->inf);
      key("\"NegInf\":", e->neg_inf);
      out.push_back('}');
    }
    out.push_back(']');
  }
  if (any_nanos) {
    out.append(",\"nanos\":[");
    for (std::size_t i = 0; i < count; ++i) {
      if (i > 0) out.push_back(',');
      if (nanos[i].empty()) {
        out.append("null");
        continue;
      }
      out.push_back('[');
      for (std::size_t r = 0; r < nanos[i].size(); ++r) {
        if (r > 0) out.push_back(',');
        append_int(out, nanos[i][r]);
      }
      out.push_back(']');
    }
    out.push_back(']');
  }
  out.push_back('}');
}

// ---- from_json ----

api::ApiError invalid(const std::string& why) {
  return detail::bad_gateway("invalid JSON frame from plugin: " + why);
}

std::optional<FieldType> type_from_frame_name(std::string_view name) {
  static constexpr FieldType kAll[] = {FieldType::kInt8,    FieldType::kInt16,  FieldType::kInt32,
                                       FieldType::kInt64,   FieldType::kUint8,  FieldType::kUint16,
                                       FieldType::kUint32,  FieldType::kUint64, FieldType::kFloat32,
                                       FieldType::kFloat64, FieldType::kString, FieldType::kBool,
                                       FieldType::kTime,    FieldType::kJson,   FieldType::kEnum};
  for (const FieldType t : kAll) {
    if (name == frame_type_name(t)) return t;
  }
  return std::nullopt;
}

// When typeInfo is missing (hand-written JSON), the coarse `type` still picks a sensible column.
std::optional<FieldType> type_from_json_type(std::string_view name) {
  if (name == "number") return FieldType::kFloat64;
  if (name == "string") return FieldType::kString;
  if (name == "boolean") return FieldType::kBool;
  if (name == "time") return FieldType::kTime;
  if (name == "other") return FieldType::kJson;
  if (name == "enum") return FieldType::kEnum;
  return std::nullopt;
}

template <class Json>
std::optional<std::int64_t> json_int(const Json& v, std::int64_t lo, std::int64_t hi) {
  std::int64_t out = 0;
  if (v.is_number_unsigned()) {
    const auto u = v.template get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return std::nullopt;
    out = static_cast<std::int64_t>(u);
  } else if (v.is_number_integer()) {
    out = v.template get<std::int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.template get<double>();
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != std::trunc(d)) {
      return std::nullopt;
    }
    out = static_cast<std::int64_t>(d);
  } else if (v.is_string()) {  // readers accept numeric strings for 64-bit ints (§3.3)
    const auto& s = v.template get_ref<const std::string&>();
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (out < lo || out > hi) return std::nullopt;
  return out;
}

template <class Json>
std::optional<std::uint64_t> json_uint(const Json& v, std::uint64_t hi) {
  std::uint64_t out = 0;
  if (v.is_number_unsigned()) {
    out = v.template get<std::uint64_t>();
  } else if (v.is_number_integer()) {
    const auto i = v.template get<std::int64_t>();
    if (i < 0) return std::nullopt;
    out = static_cast<std::uint64_t>(i);
  } else if (v.is_number_float()) {
    const double d = v.template get<double>();
    if (!(d >= 0 && d < 18446744073709551616.0) || d != std::trunc(d)) return std::nullopt;
    out = static_cast<std::uint64_t>(d);
  } else if (v.is_string()) {
    const auto& s = v.template get_ref<const std::string&>();
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (out > hi) return std::nullopt;
  return out;
}

template <class Json>
std::optional<nlohmann::ordered_json> json_object_value(const Json& v) {
  if (!v.is_object() || !detail::value_depth_within(v, detail::kMaxJsonDepth)) return std::nullopt;
  return nlohmann::ordered_json(v);
}

void resize_field(Field& f, std::size_t rows) {
  switch (f.type) {
    case FieldType::kInt8:
    case FieldType::kInt16:
    case FieldType::kInt32:
    case FieldType::kInt64:
    case FieldType::kTime:
      f.ints.assign(rows, 0);
      break;
    case FieldType::kUint8:
    case FieldType::kUint16:
    case FieldType::kUint32:
    case FieldType::kUint64:
    case FieldType::kEnum:
      f.uints.assign(rows, 0);
      break;
    case FieldType::kFloat32:
    case FieldType::kFloat64:
      f.floats.assign(rows, 0.0);
      break;
    case FieldType::kString:
    case FieldType::kJson:
      f.strings.assign(rows, std::string());
      break;
    case FieldType::kBool:
      f.bools.assign(rows, false);
      break;
  }
  if (f.nullable) f.valid.assign(rows, true);
}

// One cell; false when the value does not fit the column type.
template <class Json>
bool set_cell(Field& f, std::size_t row, const Json& v) {
  if (v.is_null()) {
    if (f.nullable) {
      f.valid[row] = false;
    } else if (f.type == FieldType::kJson) {
      f.strings[row] = "null";
    }
    return true;
  }
  auto set_int = [&](std::int64_t lo, std::int64_t hi) {
    const auto i = json_int(v, lo, hi);
    if (i) f.ints[row] = *i;
    return i.has_value();
  };
  auto set_uint = [&](std::uint64_t hi) {
    const auto u = json_uint(v, hi);
    if (u) f.uints[row] = *u;
    return u.has_value();
  };
  switch (f.type) {
    case FieldType::kInt8:
      return set_int(INT8_MIN, INT8_MAX);
    case FieldType::kInt16:
      return set_int(INT16_MIN, INT16_MAX);
    case FieldType::kInt32:
      return set_int(INT32_MIN, INT32_MAX);
    case FieldType::kInt64:
      return set_int(INT64_MIN, INT64_MAX);
    case FieldType::kUint8:
      return set_uint(UINT8_MAX);
    case FieldType::kUint16:
    case FieldType::kEnum:
      return set_uint(UINT16_MAX);
    case FieldType::kUint32:
      return set_uint(UINT32_MAX);
    case FieldType::kUint64:
      return set_uint(UINT64_MAX);
    case FieldType::kFloat32:
    case FieldType::kFloat64: {
      if (!v.is_number()) return false;
      const double d = v.template get<double>();
      f.floats[row] =
          f.type == FieldType::kFloat32 ? static_cast<double>(detail::to_float32(d)) : d;
      return true;
    }
    case FieldType::kTime: {
      // Epoch milliseconds; `nanos` adds the sub-millisecond part afterwards.
      constexpr std::int64_t kMaxMs = INT64_MAX / kNanosPerMilli;
      const auto ms =
          v.is_number_float()
              ? (std::isfinite(v.template get<double>()) &&
                         std::fabs(v.template get<double>()) <= static_cast<double>(kMaxMs)
                     ? std::optional<std::int64_t>(
                           static_cast<std::int64_t>(v.template get<double>()))
                     : std::nullopt)
              : json_int(v, -kMaxMs, kMaxMs);
      if (!ms) return false;
      f.ints[row] = *ms * kNanosPerMilli;
      return true;
    }
    case FieldType::kString:
      if (!v.is_string()) return false;
      f.strings[row] = v.template get<std::string>();
      return true;
    case FieldType::kBool:
      if (!v.is_boolean()) return false;
      f.bools[row] = v.template get<bool>();
      return true;
    case FieldType::kJson:
      if (!detail::value_depth_within(v, detail::kMaxJsonDepth)) return false;
      f.strings[row] = v.dump(-1, ' ', false, Json::error_handler_t::replace);
      return true;
  }
  return false;
}

template <class Json>
api::Outcome read_schema(const Json& schema, Frame& frame) {
  if (!schema.is_object()) return invalid("schema is not an object");
  auto string_member = [&](const char* key, std::string& out) -> bool {
    const auto it = schema.find(key);
    if (it == schema.end() || it->is_null()) return true;
    if (!it->is_string()) return false;
    out = it->template get<std::string>();
    return true;
  };
  if (!string_member("name", frame.name)) return invalid("schema.name is not a string");
  if (!string_member("refId", frame.ref_id)) return invalid("schema.refId is not a string");
  if (const auto it = schema.find("meta"); it != schema.end() && !it->is_null()) {
    frame.meta = json_object_value(*it);
    if (!frame.meta) return invalid("schema.meta is not a JSON object");
  }
  const auto fields = schema.find("fields");
  if (fields == schema.end() || fields->is_null()) return api::Ok{};
  if (!fields->is_array()) return invalid("schema.fields is not an array");
  for (const auto& jf : *fields) {
    const std::string where = "schema.fields[" + std::to_string(frame.fields.size()) + "]";
    if (!jf.is_object()) return invalid(where + " is not an object");
    Field f;
    if (const auto it = jf.find("name"); it != jf.end() && !it->is_null()) {
      if (!it->is_string()) return invalid(where + ".name is not a string");
      f.name = it->template get<std::string>();
    }
    std::optional<FieldType> type;
    if (const auto ti = jf.find("typeInfo"); ti != jf.end() && ti->is_object()) {
      if (const auto fr = ti->find("frame"); fr != ti->end() && fr->is_string()) {
        type = type_from_frame_name(fr->template get_ref<const std::string&>());
        if (!type) return invalid(where + ".typeInfo.frame is not a known type");
      }
      if (const auto nu = ti->find("nullable"); nu != ti->end() && nu->is_boolean()) {
        f.nullable = nu->template get<bool>();
      }
    }
    if (!type) {
      if (const auto t = jf.find("type"); t != jf.end() && t->is_string()) {
        type = type_from_json_type(t->template get_ref<const std::string&>());
      }
    }
    if (!type) return invalid(where + " has no known type");
    f.type = *type;
    if (const auto it = jf.find("labels"); it != jf.end() && !it->is_null()) {
      if (!it->is_object()) return invalid(where + ".labels is not an object");
      for (const auto& [key, value] : it->items()) {
        if (!value.is_string()) return invalid(where + ".labels values must be strings");
        f.labels.emplace(key, value.template get<std::string>());
      }
    }
    if (const auto it = jf.find("config"); it != jf.end() && !it->is_null()) {
      f.config = json_object_value(*it);
      if (!f.config) return invalid(where + ".config is not a JSON object");
    }
    frame.fields.push_back(std::move(f));
  }
  return api::Ok{};
}

template <class Json>
api::Outcome read_data(const Json& data, Frame& frame) {
  if (!data.is_object()) return invalid("data is not an object");
  std::size_t rows = 0;
  const auto values = data.find("values");
  if (values != data.end() && !values->is_null()) {
    if (!values->is_array()) return invalid("data.values is not an array");
    if (!values->empty() && values->size() != frame.fields.size()) {
      return invalid("data.values has " + std::to_string(values->size()) + " columns for " +
                     std::to_string(frame.fields.size()) + " fields");
    }
    for (std::size_t i = 0; i < values->size(); ++i) {
      const auto& column = (*values)[i];
      if (!column.is_array())
        return invalid("data.values[" + std::to_string(i) + "] is not an array");
      if (i == 0) rows = column.size();
      if (column.size() != rows) return invalid("data.values columns differ in length");
    }
    for (std::size_t i = 0; i < values->size(); ++i) {
      Field& f = frame.fields[i];
      resize_field(f, rows);
      const auto& column = (*values)[i];
      for (std::size_t r = 0; r < rows; ++r) {
        if (!set_cell(f, r, column[r])) {
          return invalid("data.values[" + std::to_string(i) + "][" + std::to_string(r) +
                         "] does not fit type " + frame_type_name(f.type));
        }
      }
    }
  }
  if (values == data.end() || values->is_null() || values->empty()) {
    for (Field& f : frame.fields) resize_field(f, 0);
  }
  if (const auto ents = data.find("entities"); ents != data.end() && !ents->is_null()) {
    if (!ents->is_array() || ents->size() > frame.fields.size()) {
      return invalid("data.entities is not an array of one entry per field");
    }
    for (std::size_t i = 0; i < ents->size(); ++i) {
      const auto& e = (*ents)[i];
      if (e.is_null()) continue;
      Field& f = frame.fields[i];
      if (!e.is_object() || (f.type != FieldType::kFloat32 && f.type != FieldType::kFloat64)) {
        return invalid("data.entities[" + std::to_string(i) + "] is not valid for this field");
      }
      for (const auto& [key, idx] : e.items()) {
        double special = 0;
        if (key == "NaN") {
          special = std::numeric_limits<double>::quiet_NaN();
        } else if (key == "Inf") {
          special = std::numeric_limits<double>::infinity();
        } else if (key == "NegInf") {
          special = -std::numeric_limits<double>::infinity();
        } else {
          continue;  // "Undef" exists in the TypeScript type only
        }
        if (!idx.is_array()) return invalid("data.entities[" + std::to_string(i) + "]." + key);
        for (const auto& row_json : idx) {
          const auto row = json_uint(row_json, rows == 0 ? 0 : rows - 1);
          if (!row || rows == 0) return invalid("data.entities row index out of range");
          f.floats[*row] = special;
          if (f.nullable) f.valid[*row] = true;
        }
      }
    }
  }
  if (const auto nanos = data.find("nanos"); nanos != data.end() && !nanos->is_null()) {
    if (!nanos->is_array() || nanos->size() > frame.fields.size()) {
      return invalid("data.nanos is not an array of one entry per field");
    }
    for (std::size_t i = 0; i < nanos->size(); ++i) {
      const auto& n = (*nanos)[i];
      if (n.is_null()) continue;
      Field& f = frame.fields[i];
      if (!n.is_array() || n.size() != rows || f.type != FieldType::kTime) {
        return invalid("data.nanos[" + std::to_string(i) + "] is not valid for this field");
      }
      for (std::size_t r = 0; r < rows; ++r) {
        const auto extra = json_int(n[r], 0, kNanosPerMilli - 1);
        if (!extra || __builtin_add_overflow(f.ints[r], *extra, &f.ints[r])) {
          return invalid("data.nanos[" + std::to_string(i) + "][" + std::to_string(r) + "]");
        }
      }
    }
  }
  return api::Ok{};
}

template <class Json>
api::Expected<Frame> frame_from_json(const Json& j) {
  if (!j.is_object()) return invalid("not a JSON object");
  Frame frame;
  if (const auto schema = j.find("schema"); schema != j.end() && !schema->is_null()) {
    if (auto ok = read_schema(*schema, frame); !ok) return std::move(ok).error();
  }
  if (const auto data = j.find("data"); data != j.end() && !data->is_null()) {
    if (auto ok = read_data(*data, frame); !ok) return std::move(ok).error();
  } else {
    for (Field& f : frame.fields) resize_field(f, 0);
  }
  return frame;
}

}  // namespace

void append_json(const Frame& frame, std::string& out) {
  out.append("{\"schema\":");
  append_schema(frame, out);
  out.append(",\"data\":");
  append_data(frame, out);
  out.push_back('}');
}

nlohmann::ordered_json to_json(const Frame& frame) {
  // One encoder: the DOM is the parse of the exact text, so both forms always agree.
  std::string text;
  append_json(frame, text);
  return nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
}

api::Expected<Frame> from_json(const nlohmann::json& j) {
  return frame_from_json(j);
}
api::Expected<Frame> from_json(const nlohmann::ordered_json& j) {
  return frame_from_json(j);
}

}  // namespace dpa::frames
