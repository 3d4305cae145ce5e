// The production Store: SQLite in `<data_dir>/store.db` (WAL, synchronous=FULL), so every
// acknowledged write has been fsynced and survives kill -9. Keys and revisions are kept in memory,
// values are read from the file (on a reader connection; the watch cache holds the in-memory copy
// the API serves); one writer thread group-commits writes; the data dir is locked against a
// second process.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/storage/store.h"
#include "aggregator/storage/store_engine.h"

#include <memory>
#include <string>

namespace dpa::storage {

class SqliteStore final : public StoreEngine {
 public:
  // Creates the directory and database if missing and loads every key into memory. Errors (code
  // 500, message naming the path and the cause): the directory cannot be created or written,
  // another process holds it, the file is not a valid store database. Never throws.
  static api::Expected<std::unique_ptr<SqliteStore>> open(const std::string& data_dir,
                                                          const StoreOptions& options = {});

 private:
  SqliteStore(std::unique_ptr<Journal> journal, const StoreOptions& options);
};

// The same as SqliteStore::open, typed as the interface for wiring (main.cpp).
api::Expected<std::unique_ptr<Store>> open_sqlite_store(const std::string& data_dir,
                                                        const StoreOptions& options = {});

}  // namespace dpa::storage
