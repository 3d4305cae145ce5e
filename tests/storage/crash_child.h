// The child side of the kill -9 durability test: when test_main finds kCrashChildEnv set, it runs
// crash_child_main() instead of the tests. It writes keys forever from several threads and
// prints each key to stdout once its create() has been acknowledged.
#pragma once

#include <string>

namespace dpa::storage {

inline constexpr const char* kCrashChildEnv = "DPA_STORAGE_CRASH_CHILD_DIR";
inline constexpr const char* kCrashRoundEnv = "DPA_STORAGE_CRASH_ROUND";

// The JSON document written for `key`: large enough that a torn write would be visible.
std::string crash_child_value(const std::string& key);

// Never returns normally (the parent kills it); returns non-zero if the store cannot be opened.
int crash_child_main(const std::string& data_dir, const std::string& round);

}  // namespace dpa::storage
