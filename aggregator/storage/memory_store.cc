#include "aggregator/storage/memory_store.h"

#include <cstdlib>

namespace dpa::storage {

namespace {

// Keeps nothing: the engine's memory is the whole store.
class NullJournal final : public Journal {
 public:
  api::Expected<JournalState> load(std::size_t) override { return JournalState{}; }
  api::Outcome append(const std::vector<TimedEvent>&) override { return api::Ok{}; }
  api::Outcome compact(int64_t) override { return api::Ok{}; }
  bool keeps_history() const override { return false; }
  api::Expected<std::vector<Event>> read_history(const std::string&, int64_t, int64_t) override {
    return std::vector<Event>{};
  }
  api::Expected<int64_t> last_revision_before(int64_t) override { return int64_t{0}; }
};

}  // namespace

MemoryStore::MemoryStore(StoreOptions options)
    : StoreEngine(std::make_unique<NullJournal>(), options) {
  // Loading an empty journal cannot fail; if it ever did the store would be unusable.
  if (!start().ok()) std::abort();
}

std::unique_ptr<Store> make_memory_store(StoreOptions options) {
  return std::make_unique<MemoryStore>(options);
}

}  // namespace dpa::storage
