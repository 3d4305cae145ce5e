#include "aggregator/apimachinery/table.h"

#include "aggregator/apimachinery/codec.h"

#include <stdexcept>

namespace dpa::api {

Expected<IncludeObject> parse_include_object(std::string_view value) {
  if (value.empty() || value == "Metadata") return IncludeObject::kMetadata;
  if (value == "None") return IncludeObject::kNone;
  if (value == "Object") return IncludeObject::kObject;
  return ApiError::bad_request("includeObject: unsupported value \"" + std::string(value) +
                               "\": supported values: \"None\", \"Metadata\", \"Object\"");
}

nlohmann::json partial_object_metadata(const nlohmann::json& object,
                                       const std::string& table_api_version) {
  nlohmann::json meta = object.is_object() && object.contains("metadata") ? object["metadata"]
                                                                           : nlohmann::json::object();
  return {{"kind", "PartialObjectMetadata"}, {"apiVersion", table_api_version}, {"metadata", meta}};
}

namespace {

nlohmann::json row_json(const TableRow& row, IncludeObject include,
                        const std::string& table_api_version) {
  nlohmann::json out = {{"cells", row.cells}};
  if (include == IncludeObject::kMetadata) {
    out["object"] = partial_object_metadata(row.object, table_api_version);
  } else if (include == IncludeObject::kObject) {
    out["object"] = row.object;
  }
  return out;
}

}  // namespace

nlohmann::json make_table(const std::string& table_api_version,
                          const std::vector<TableColumn>& columns, const std::vector<TableRow>& rows,
                          IncludeObject include, const std::string& resource_version,
                          const std::string& continue_token, bool headers) {
  nlohmann::json table;
  table["kind"] = "Table";
  table["apiVersion"] = table_api_version;
  nlohmann::json meta = nlohmann::json::object();
  if (!resource_version.empty()) meta["resourceVersion"] = resource_version;
  if (!continue_token.empty()) meta["continue"] = continue_token;
  table["metadata"] = meta;
  nlohmann::json defs = nlohmann::json::array();
  if (headers) {
    for (const auto& c : columns) {
      defs.push_back({{"name", c.name},
                      {"type", c.type},
                      {"format", c.format},
                      {"description", c.description},
                      {"priority", c.priority}});
    }
  }
  table["columnDefinitions"] = defs;
  nlohmann::json out_rows = nlohmann::json::array();
  for (const auto& r : rows) out_rows.push_back(row_json(r, include, table_api_version));
  table["rows"] = std::move(out_rows);
  return table;
}

std::string encode_table(const std::string& table_api_version,
                         const std::vector<TableColumn>& columns, std::size_t count,
                         const std::function<TableRow(std::size_t)>& row, IncludeObject include,
                         const std::string& resource_version, const std::string& continue_token) {
  // The table without rows ends in "rows":[]} (its keys are sorted, and "rows" sorts last): the
  // rows go in between.
  std::string text = dump_json(
      make_table(table_api_version, columns, {}, include, resource_version, continue_token));
  constexpr std::string_view kEmptyRows = "\"rows\":[]}";
  if (text.size() < kEmptyRows.size() ||
      text.compare(text.size() - kEmptyRows.size(), kEmptyRows.size(), kEmptyRows) != 0) {
    throw std::logic_error("encode_table: the rows are not the table's last field");
  }
  text.resize(text.size() - 2);
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) text.push_back(',');
    text += dump_json(row_json(row(i), include, table_api_version));
  }
  text += "]}";
  return text;
}

std::string encode_watch_event(std::string_view type, const nlohmann::json& object) {
  nlohmann::ordered_json e;
  e["type"] = type;
  e["object"] = object;
  std::string line = dump_json(e);
  line.push_back('\n');
  return line;
}

nlohmann::json bookmark_object(const std::string& api_version, const std::string& kind,
                               const std::string& resource_version, bool initial_events_end) {
  nlohmann::json meta = {{"resourceVersion", resource_version}, {"creationTimestamp", nullptr}};
  if (initial_events_end) meta["annotations"] = {{"k8s.io/initial-events-end", "true"}};
  return {{"kind", kind}, {"apiVersion", api_version}, {"metadata", meta}};
}

}  // namespace dpa::api
