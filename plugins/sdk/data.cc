#include "plugins/sdk/data.h"

#include "aggregator/frames/arrow_codec.h"
#include "aggregator/frames/json_codec.h"

#include <algorithm>
#include <cctype>
#include <utility>

namespace dpa::sdk {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

template <class T>
std::vector<bool> validity(const std::vector<std::optional<T>>& values) {
  std::vector<bool> valid;
  valid.reserve(values.size());
  for (const auto& v : values) valid.push_back(v.has_value());
  return valid;
}

}  // namespace

JsonResult parse_json(std::string_view text) {
  JsonResult result;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return result;
  result.value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (result.value.is_discarded()) {
    result.value = nlohmann::json::object();
    result.error = "invalid JSON";
  }
  return result;
}

JsonResult query_json(const pluginv2::DataQuery& query) {
  JsonResult result = parse_json(query.json());
  if (!result.ok()) {
    result.error = "query " + query.refid() + ": invalid JSON";
  } else if (!result.value.is_object()) {
    result.value = nlohmann::json::object();
    result.error = "query " + query.refid() + ": JSON must be an object";
  }
  return result;
}

DataSourceSettings datasource_settings(const pluginv2::PluginContext& context) {
  const auto& ds = context.datasourceinstancesettings();
  DataSourceSettings s;
  s.id = ds.id();
  s.uid = ds.uid();
  s.name = ds.name();
  s.url = ds.url();
  s.user = ds.user();
  s.database = ds.database();
  s.basic_auth_enabled = ds.basicauthenabled();
  s.basic_auth_user = ds.basicauthuser();
  s.last_updated_ms = ds.lastupdatedms();
  JsonResult json_data = parse_json(ds.jsondata());
  if (!json_data.ok() || !json_data.value.is_object()) {
    s.json_data_error = json_data.ok() ? "jsonData must be an object" : "jsonData: invalid JSON";
  } else {
    s.json_data = std::move(json_data.value);
  }
  for (const auto& [key, value] : ds.decryptedsecurejsondata()) s.secure_json_data[key] = value;
  return s;
}

std::optional<std::string> forwarded_header(
    const google::protobuf::Map<std::string, std::string>& headers, std::string_view name) {
  const std::string prefixed = "http_" + std::string(name);
  for (const auto& [key, value] : headers) {
    if (iequals(key, prefixed)) return value;
  }
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

int64_t range_from_ns(const pluginv2::DataQuery& query) {
  return query.timerange().fromepochms() * 1000000;
}

int64_t range_to_ns(const pluginv2::DataQuery& query) {
  return query.timerange().toepochms() * 1000000;
}

pluginv2::DataResponse frames_response(std::vector<frames::Frame> frames,
                                       const std::string& ref_id) {
  pluginv2::DataResponse response;
  for (auto& frame : frames) {
    if (frame.ref_id.empty()) frame.ref_id = ref_id;
    response.add_frames(frames::write_arrow(frame));
  }
  response.set_status(200);
  response.set_format(pluginv2::ARROW);
  return response;
}

pluginv2::DataResponse error_response(int status, std::string message, ErrorSource source) {
  pluginv2::DataResponse response;
  // Hosts read anything outside 100..599 as 500; an error is never a success code.
  if (status < 400 || status > 599) status = 500;
  response.set_status(status);
  response.set_error(std::move(message));
  response.set_errorsource(source == ErrorSource::kDownstream ? "downstream" : "plugin");
  response.set_format(pluginv2::ARROW);
  return response;
}

frames::Field time_field(std::string name, std::vector<int64_t> epoch_ns) {
  frames::Field f;
  f.name = std::move(name);
  f.type = frames::FieldType::kTime;
  f.ints = std::move(epoch_ns);
  return f;
}

frames::Field float64_field(std::string name, std::vector<double> values,
                            std::map<std::string, std::string> labels) {
  frames::Field f;
  f.name = std::move(name);
  f.type = frames::FieldType::kFloat64;
  f.labels = std::move(labels);
  f.floats = std::move(values);
  return f;
}

frames::Field int64_field(std::string name, std::vector<int64_t> values) {
  frames::Field f;
  f.name = std::move(name);
  f.type = frames::FieldType::kInt64;
  f.ints = std::move(values);
  return f;
}

frames::Field string_field(std::string name, std::vector<std::string> values) {
  frames::Field f;
  f.name = std::move(name);
  f.type = frames::FieldType::kString;
  f.strings = std::move(values);
  return f;
}

frames::Field bool_field(std::string name, std::vector<bool> values) {
  frames::Field f;
  f.name = std::move(name);
  f.type = frames::FieldType::kBool;
  f.bools = std::move(values);
  return f;
}

frames::Field nullable_float64_field(std::string name,
                                     const std::vector<std::optional<double>>& values) {
  frames::Field f = float64_field(std::move(name), {});
  f.nullable = true;
  for (const auto& v : values) f.floats.push_back(v.value_or(0.0));
  f.valid = validity(values);
  return f;
}

frames::Field nullable_int64_field(std::string name,
                                   const std::vector<std::optional<int64_t>>& values) {
  frames::Field f = int64_field(std::move(name), {});
  f.nullable = true;
  for (const auto& v : values) f.ints.push_back(v.value_or(0));
  f.valid = validity(values);
  return f;
}

frames::Field nullable_string_field(std::string name,
                                    const std::vector<std::optional<std::string>>& values) {
  frames::Field f = string_field(std::move(name), {});
  f.nullable = true;
  for (const auto& v : values) f.strings.push_back(v.value_or(std::string()));
  f.valid = validity(values);
  return f;
}

std::string frame_json(const frames::Frame& frame) {
  std::string out;
  frames::append_json(frame, out);
  return out;
}

}  // namespace dpa::sdk
