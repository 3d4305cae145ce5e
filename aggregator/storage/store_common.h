// What every Store backend shares, written once so that SQLite and etcd read and answer alike:
// the errors they answer with, and the get/list over an in-memory map of keys. Internal to
// storage/.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/storage/store.h"

#include <cstdint>
#include <map>
#include <string>

namespace dpa::storage {

inline bool has_prefix(const std::string& key, const std::string& prefix) {
  return key.size() >= prefix.size() && key.compare(0, prefix.size(), prefix) == 0;
}

inline api::ApiError already_exists(const std::string& key) {
  return api::ApiError{.code = 409,
                       .reason = "AlreadyExists",
                       .message = "key \"" + key + "\" already exists"};
}

inline api::ApiError key_not_found(const std::string& key) {
  return api::ApiError::not_found("key \"" + key + "\" not found");
}

inline api::ApiError revision_conflict(const std::string& key, int64_t expected, int64_t actual) {
  return api::ApiError::conflict_message("key \"" + key + "\" was modified: expected revision " +
                                         std::to_string(expected) + ", current revision " +
                                         std::to_string(actual));
}

inline api::ApiError too_old(int64_t revision, int64_t compacted) {
  return api::ApiError::expired("too old resource version: " + std::to_string(revision) + " (" +
                                std::to_string(compacted) + ")");
}

// Store::list over `records` (sorted by key) taken at `revision`.
inline ListResult list_records(const std::map<std::string, Record>& records,
                               const ListOptions& options, int64_t revision) {
  ListResult result;
  result.revision = revision;
  auto it = records.lower_bound(options.prefix);
  if (!options.start_after.empty() && options.start_after >= options.prefix) {
    it = records.upper_bound(options.start_after);
  }
  for (; it != records.end() && has_prefix(it->first, options.prefix); ++it) {
    if (options.limit != 0 && result.items.size() == options.limit) {
      result.more = true;
      break;
    }
    result.items.push_back(it->second);
  }
  return result;
}

// Store::get over `records`.
inline api::Expected<Record> get_record(const std::map<std::string, Record>& records,
                                        const std::string& key) {
  auto it = records.find(key);
  if (it == records.end()) return key_not_found(key);
  return it->second;
}

}  // namespace dpa::storage
