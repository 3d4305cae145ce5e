// Server-side Table output (meta.k8s.io Table, reference §2.8) and watch event encoding: what
// `kubectl get` and `kubectl get -w` consume. Generic: the resource supplies its columns and cells.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::api {

struct TableColumn {
  std::string name;
  std::string type;  // string, integer, date, ...
  std::string format;  // "name" for the Name column
  std::string description;
  int priority = 0;  // > 0: only with -o wide
};

enum class IncludeObject { kNone, kMetadata, kObject };
// "" -> Metadata; None/Metadata/Object; anything else 400.
Expected<IncludeObject> parse_include_object(std::string_view value);

struct TableRow {
  nlohmann::json cells;   // array, one cell per column
  nlohmann::json object;  // the full object the row shows
};

// {"kind":"PartialObjectMetadata","apiVersion":<table_api_version>,"metadata":{...}}
nlohmann::json partial_object_metadata(const nlohmann::json& object,
                                       const std::string& table_api_version);

// A Table with metadata {resourceVersion, continue?}; headers=false omits columnDefinitions (every
// watch event after the first, as kube-apiserver does).
nlohmann::json make_table(const std::string& table_api_version,
                          const std::vector<TableColumn>& columns, const std::vector<TableRow>& rows,
                          IncludeObject include, const std::string& resource_version,
                          const std::string& continue_token, bool headers = true);
// The JSON text of make_table(...) (headers on) for `count` rows made one at a time by `row(i)`:
// each row is encoded as soon as it is made, so a Table of 10,000 objects holds one row's tree at
// a time, not all of them and then a copy.
std::string encode_table(const std::string& table_api_version,
                         const std::vector<TableColumn>& columns, std::size_t count,
                         const std::function<TableRow(std::size_t)>& row, IncludeObject include,
                         const std::string& resource_version, const std::string& continue_token);

// One watch event line: {"type":T,"object":O}\n
std::string encode_watch_event(std::string_view type, const nlohmann::json& object);
// The object of a BOOKMARK event: kind/apiVersion plus metadata.resourceVersion (and the
// k8s.io/initial-events-end annotation for the end of a watch-list's initial events).
nlohmann::json bookmark_object(const std::string& api_version, const std::string& kind,
                               const std::string& resource_version, bool initial_events_end);

}  // namespace dpa::api
