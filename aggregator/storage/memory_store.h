// A Store with the exact semantics of SqliteStore (revisions, conflicts, watch, compaction, 410)
// and no disk: the fake other components use in their unit tests. History beyond
// StoreOptions::memory_history_limit is compacted away.
#pragma once

#include "aggregator/storage/store_engine.h"

#include <memory>

namespace dpa::storage {

class MemoryStore final : public StoreEngine {
 public:
  explicit MemoryStore(StoreOptions options = {});
};

// Convenience for code that holds a Store by interface.
std::unique_ptr<Store> make_memory_store(StoreOptions options = {});

}  // namespace dpa::storage
