// Helpers for plugin handlers: read a query's JSON and the data source settings from the
// PluginContext, build frames (dpa::frames) and DataResponses the way hosts expect them: status
// always set (200 on success), frames as Arrow IPC files with format ARROW (reference
// grafana-plugin-protocol.md §1.4, §2.7, §3).
#pragma once

#include "aggregator/frames/frame.h"
#include "plugins/proto/backend.pb.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::sdk {

// A parsed JSON document or why it could not be parsed.
struct JsonResult {
  nlohmann::json value = nlohmann::json::object();
  std::string error;  // empty = ok
  bool ok() const { return error.empty(); }
};

// Empty input parses as {} (proto3 leaves unset bytes empty).
JsonResult parse_json(std::string_view text);
// DataQuery.json: the whole query object the client sent (§1.4). Must be a JSON object.
JsonResult query_json(const pluginv2::DataQuery& query);

// PluginContext.dataSourceInstanceSettings, decoded.
struct DataSourceSettings {
  int64_t id = 0;
  std::string uid;
  std::string name;
  std::string url;
  std::string user;
  std::string database;
  bool basic_auth_enabled = false;
  std::string basic_auth_user;
  nlohmann::json json_data = nlohmann::json::object();  // {} when absent or invalid
  std::string json_data_error;                           // non-empty when jsonData was invalid
  std::map<std::string, std::string> secure_json_data;   // decryptedSecureJsonData
  int64_t last_updated_ms = 0;
};
DataSourceSettings datasource_settings(const pluginv2::PluginContext& context);

// A forwarded HTTP header from a request's headers map: the SDK writes `http_<Name>`, older
// Grafana versions the bare name; both are matched case-insensitively (§1.8).
std::optional<std::string> forwarded_header(const google::protobuf::Map<std::string, std::string>& headers,
                                            std::string_view name);

// Query time range in nanoseconds since the epoch.
int64_t range_from_ns(const pluginv2::DataQuery& query);
int64_t range_to_ns(const pluginv2::DataQuery& query);

// Where a failure comes from (DataResponse.errorSource).
enum class ErrorSource { kPlugin, kDownstream };

// Success: frames encoded with dpa::frames::write_arrow, status 200, format ARROW. Frames without
// a refId get `ref_id`, as the Go SDK does.
pluginv2::DataResponse frames_response(std::vector<frames::Frame> frames, const std::string& ref_id);
// Failure of one refId: error text, status (400..599, anything else becomes 500), source.
pluginv2::DataResponse error_response(int status, std::string message,
                                      ErrorSource source = ErrorSource::kPlugin);

// Column builders.
frames::Field time_field(std::string name, std::vector<int64_t> epoch_ns);
frames::Field float64_field(std::string name, std::vector<double> values,
                            std::map<std::string, std::string> labels = {});
frames::Field int64_field(std::string name, std::vector<int64_t> values);
frames::Field string_field(std::string name, std::vector<std::string> values);
frames::Field bool_field(std::string name, std::vector<bool> values);
// Nullable variants: nullopt is a null entry.
frames::Field nullable_float64_field(std::string name, const std::vector<std::optional<double>>& values);
frames::Field nullable_int64_field(std::string name, const std::vector<std::optional<int64_t>>& values);
frames::Field nullable_string_field(std::string name,
                                    const std::vector<std::optional<std::string>>& values);

// A frame in Grafana's frame JSON with schema and data, for StreamPacket.data and
// SubscribeStreamResponse.data (§5.3).
std::string frame_json(const frames::Frame& frame);

}  // namespace dpa::sdk
