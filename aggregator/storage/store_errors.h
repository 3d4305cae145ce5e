// The errors every Store backend answers with, worded once so that a conflict reads the same on
// SQLite and on etcd. Internal to storage/.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <cstdint>
#include <string>

namespace dpa::storage {

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

}  // namespace dpa::storage
