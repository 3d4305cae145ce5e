#include "aggregator/storage/sqlite_store.h"

#include "aggregator/observability/log.h"
#include "aggregator/storage/journal.h"
#include "aggregator/storage/store_common.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <utility>

namespace dpa::storage {

namespace {

constexpr int64_t kSchemaVersion = 1;
constexpr const char* kDatabaseFile = "store.db";
constexpr const char* kLockFile = "store.lock";

// kv holds the live keys; events holds the retained history (one row per revision, the
// value being the new one, or for a delete the last one); meta holds the revision counters.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv(key BLOB PRIMARY KEY, value BLOB NOT NULL,
                              create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(rev INTEGER PRIMARY KEY, type INTEGER NOT NULL,
                                  key BLOB NOT NULL, value BLOB NOT NULL,
                                  create_rev INTEGER NOT NULL, ts INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', 1), ('current_revision', 0),
                                               ('compacted_revision', 0);
)sql";

api::ApiError storage_error(const std::string& what, sqlite3* db, const std::string& path) {
  std::string cause = db ? sqlite3_errmsg(db) : "out of memory";
  return api::ApiError::internal("storage: " + what + " failed for " + path + ": " + cause);
}

// One prepared statement; reset after every use so it can be reused.
class Statement {
 public:
  Statement() = default;
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool prepare(sqlite3* db, const char* sql) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) ==
           SQLITE_OK;
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void bind(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void bind(int index, const std::string& value) {
    // STATIC: every caller keeps the string alive until step() has run.
    sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_STATIC);
  }
  void bind_text(int index, const char* value) {
    sqlite3_bind_text(stmt_, index, value, -1, SQLITE_STATIC);
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  int64_t int_at(int column) { return sqlite3_column_int64(stmt_, column); }
  std::string blob_at(int column) {
    const void* data = sqlite3_column_blob(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    return data ? std::string(static_cast<const char*>(data), static_cast<std::size_t>(size))
                : std::string();
  }
  std::string text_at(int column) {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    return text ? reinterpret_cast<const char*>(text) : "";
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

bool exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

Event event_from_row(Statement& row) {
  // Columns: rev, type, key, value, create_rev.
  Event event;
  event.revision = row.int_at(0);
  event.type = static_cast<EventType>(row.int_at(1));
  event.record = Record{row.blob_at(2), row.blob_at(3), row.int_at(4), event.revision};
  return event;
}


class SqliteJournal final : public Journal {
 public:
  ~SqliteJournal() override {
    // close_v2 defers the close until the member statements are finalized after this body.
    if (reader_) sqlite3_close_v2(reader_);
    if (db_) sqlite3_close_v2(db_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  api::Outcome open(const std::string& data_dir, const StoreOptions& options) {
    namespace fs = std::filesystem;
    if (data_dir.empty()) return api::ApiError::internal("storage: the data directory is empty");
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    if (ec || !fs::is_directory(data_dir)) {
      return api::ApiError::internal("storage: cannot create data directory " + data_dir + ": " +
                                     (ec ? ec.message() : "not a directory"));
    }
    dir_ = data_dir;
    path_ = (fs::path(data_dir) / kDatabaseFile).string();
    busy_timeout_ms_ = static_cast<int>(options.busy_timeout.count());

    // One process per data dir: the in-memory index (and every watch) would go stale under a
    // second writer.
    const std::string lock_path = (fs::path(data_dir) / kLockFile).string();
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) {
      return api::ApiError::internal("storage: data directory " + data_dir +
                                     " is not writable: " + std::strerror(errno));
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      return api::ApiError::internal("storage: data directory " + data_dir +
                                     " is in use by another process");
    }

    if (sqlite3_open_v2(path_.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      return storage_error("open", db_, path_);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_ms_);
    if (options.verify_on_open) {
      Statement check;
      if (!check.prepare(db_, "PRAGMA quick_check")) return storage_error("integrity check", db_, path_);
      int rc = check.step();
      if (rc != SQLITE_ROW) return storage_error("integrity check", db_, path_);
      std::string verdict = check.text_at(0);
      if (verdict != "ok") {
        return api::ApiError::internal("storage: " + path_ + " is corrupt: " + verdict);
      }
    }
    {
      Statement mode;
      if (!mode.prepare(db_, "PRAGMA journal_mode=WAL") || mode.step() != SQLITE_ROW) {
        return storage_error("enabling WAL", db_, path_);
      }
      if (mode.text_at(0) != "wal") {
        return api::ApiError::internal("storage: " + path_ + " cannot use WAL mode (got " +
                                       mode.text_at(0) + ")");
      }
    }
    // The writer appends history rows and updates one key per write: a 1 MiB page cache holds
    // the tree paths it touches (SQLite's default is 2 MiB).
    if (!exec(db_, "PRAGMA cache_size=-1024")) return storage_error("cache_size", db_, path_);
    // FULL in WAL mode fsyncs the log on every commit: an acknowledged write is on disk.
    if (!exec(db_, "PRAGMA synchronous=FULL")) return storage_error("synchronous=FULL", db_, path_);
    if (!exec(db_, "BEGIN IMMEDIATE")) return storage_error("schema", db_, path_);
    if (!exec(db_, kSchema)) {
      auto error = storage_error("schema", db_, path_);
      exec(db_, "ROLLBACK");
      return error;
    }
    if (!exec(db_, "COMMIT")) {
      auto error = storage_error("schema", db_, path_);
      exec(db_, "ROLLBACK");
      return error;
    }
    auto version = read_meta(db_, "schema_version");
    if (!version.ok()) return std::move(version).error();
    if (*version != kSchemaVersion) {
      return api::ApiError::internal("storage: " + path_ + " has schema version " +
                                     std::to_string(*version) + ", this build reads " +
                                     std::to_string(kSchemaVersion));
    }
    if (!insert_event_.prepare(db_,
                               "INSERT INTO events(rev, type, key, value, create_rev, ts) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6)") ||
        !upsert_kv_.prepare(db_,
                            "INSERT INTO kv(key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?4) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                            "create_rev = excluded.create_rev, mod_rev = excluded.mod_rev") ||
        !delete_kv_.prepare(db_, "DELETE FROM kv WHERE key = ?1") ||
        !set_meta_.prepare(db_, "UPDATE meta SET value = ?2 WHERE name = ?1")) {
      return storage_error("preparing statements", db_, path_);
    }
    sync_directory();
    return api::Ok{};
  }

  api::Expected<JournalState> load(std::size_t max_events) override {
    JournalState state;
    if (!exec(db_, "BEGIN")) return storage_error("load", db_, path_);
    auto result = load_locked(state, max_events);
    exec(db_, "COMMIT");
    if (!result.ok()) return std::move(result).error();
    return state;
  }

  api::Outcome append(const std::vector<TimedEvent>& events) override {
    if (events.empty()) return api::Ok{};
    if (!exec(db_, "BEGIN IMMEDIATE")) return storage_error("begin", db_, path_);
    for (const TimedEvent& timed : events) {
      const Event& event = timed.event;
      insert_event_.reset();
      insert_event_.bind(1, event.revision);
      insert_event_.bind(2, static_cast<int64_t>(event.type));
      insert_event_.bind(3, event.record.key);
      insert_event_.bind(4, event.record.value);
      insert_event_.bind(5, event.record.create_revision);
      insert_event_.bind(6, timed.unix_ms);
      if (insert_event_.step() != SQLITE_DONE) return rollback("writing an event");
      if (event.type == EventType::kDeleted) {
        delete_kv_.reset();
        delete_kv_.bind(1, event.record.key);
        if (delete_kv_.step() != SQLITE_DONE) return rollback("deleting a key");
      } else {
        upsert_kv_.reset();
        upsert_kv_.bind(1, event.record.key);
        upsert_kv_.bind(2, event.record.value);
        upsert_kv_.bind(3, event.record.create_revision);
        upsert_kv_.bind(4, event.revision);
        if (upsert_kv_.step() != SQLITE_DONE) return rollback("writing a key");
      }
    }
    if (!set_meta("current_revision", events.back().event.revision)) {
      return rollback("writing the revision");
    }
    if (!exec(db_, "COMMIT")) return rollback("commit");
    return api::Ok{};
  }

  api::Outcome compact(int64_t revision) override {
    if (!exec(db_, "BEGIN IMMEDIATE")) return storage_error("begin", db_, path_);
    Statement drop;
    if (!drop.prepare(db_, "DELETE FROM events WHERE rev <= ?1")) return rollback("compaction");
    drop.bind(1, revision);
    if (drop.step() != SQLITE_DONE) return rollback("compaction");
    if (!set_meta("compacted_revision", revision)) return rollback("compaction");
    if (!exec(db_, "COMMIT")) return rollback("compaction commit");
    return api::Ok{};
  }

  bool keeps_history() const override { return true; }

  api::Expected<std::vector<Event>> read_history(const std::string& prefix, int64_t after,
                                                 int64_t upto) override {
    // The compacted revision and the rows come from one snapshot, so a compaction racing this
    // read is either fully seen (410) or not at all.
    using Events = std::vector<Event>;
    return in_read_transaction<Events>("history read", [&]() -> api::Expected<Events> {
      auto compacted = read_meta(reader_, "compacted_revision");
      if (!compacted.ok()) return std::move(compacted).error();
      if (after < *compacted) {
        return api::ApiError::expired("too old resource version: " + std::to_string(after) +
                                      " (" + std::to_string(*compacted) + ")");
      }
      Statement rows;
      if (!rows.prepare(reader_,
                        "SELECT rev, type, key, value, create_rev FROM events "
                        "WHERE rev > ?1 AND rev <= ?2 ORDER BY rev")) {
        return storage_error("history read", reader_, path_);
      }
      rows.bind(1, after);
      rows.bind(2, upto);
      std::vector<Event> events;
      int rc;
      while ((rc = rows.step()) == SQLITE_ROW) {
        Event event = event_from_row(rows);
        if (has_prefix(event.record.key, prefix)) events.push_back(std::move(event));
      }
      if (rc != SQLITE_DONE) return storage_error("history read", reader_, path_);
      return events;
    });
  }

  bool keeps_values() const override { return true; }

  api::Expected<std::optional<Record>> read_key(const std::string& key) override {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    if (auto opened = open_reader_locked(); !opened.ok()) return std::move(opened).error();
    read_key_.reset();
    read_key_.bind(1, key);
    int rc = read_key_.step();
    std::optional<Record> record;
    if (rc == SQLITE_ROW) {
      record = Record{key, read_key_.blob_at(0), read_key_.int_at(1), read_key_.int_at(2)};
      rc = read_key_.step();
    }
    auto error = storage_error("read", reader_, path_);
    read_key_.reset();
    if (rc != SQLITE_DONE) return error;
    return record;
  }

  api::Expected<ListResult> read_range(const ListOptions& options) override {
    // The rows and the revision they are reported at come from one snapshot.
    return in_read_transaction<ListResult>("list", [&]() -> api::Expected<ListResult> {
      auto current = read_meta(reader_, "current_revision");
      if (!current.ok()) return std::move(current).error();
      ListResult result;
      result.revision = *current;
      // In key order from the prefix, or after start_after when that is inside the range (as
      // list_records); the first key outside the prefix ends the scan.
      const bool after = !options.start_after.empty() && options.start_after >= options.prefix;
      Statement& rows = after ? read_after_ : read_from_;
      rows.reset();
      rows.bind(1, after ? options.start_after : options.prefix);
      int rc;
      while ((rc = rows.step()) == SQLITE_ROW) {
        Record record{rows.blob_at(0), {}, rows.int_at(2), rows.int_at(3)};
        if (!has_prefix(record.key, options.prefix)) break;
        if (options.limit != 0 && result.items.size() == options.limit) {
          result.more = true;
          break;
        }
        record.value = rows.blob_at(1);
        result.items.push_back(std::move(record));
      }
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        auto error = storage_error("list", reader_, path_);
        rows.reset();
        return error;
      }
      rows.reset();  // ends the statement's read before the transaction commits
      return result;
    });
  }

  api::Expected<int64_t> last_revision_before(int64_t unix_ms) override {
    // History rows are written in time order, so walking back from the newest is short.
    Statement find;
    if (!find.prepare(db_, "SELECT rev FROM events WHERE ts < ?1 ORDER BY rev DESC LIMIT 1")) {
      return storage_error("compaction scan", db_, path_);
    }
    find.bind(1, unix_ms);
    int rc = find.step();
    if (rc == SQLITE_ROW) return find.int_at(0);
    if (rc == SQLITE_DONE) return int64_t{0};
    return storage_error("compaction scan", db_, path_);
  }

 private:
  // Runs `read` in one read transaction on the reader connection, so that all it reads comes
  // from one snapshot; `what` names the read in errors.
  template <class T, class Read>
  api::Expected<T> in_read_transaction(const char* what, Read read) {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    if (auto opened = open_reader_locked(); !opened.ok()) return std::move(opened).error();
    if (!exec(reader_, "BEGIN")) return storage_error(what, reader_, path_);
    api::Expected<T> result = read();
    exec(reader_, "COMMIT");
    return result;
  }

  // Readers run on caller threads while the writer thread owns db_: they share a second
  // connection, opened on first use; with reader_mutex_ held.
  api::Outcome open_reader_locked() {
    if (reader_) return api::Ok{};
    if (sqlite3_open_v2(path_.c_str(), &reader_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      auto error = storage_error("opening a reader", reader_, path_);
      sqlite3_close_v2(reader_);
      reader_ = nullptr;
      return error;
    }
    sqlite3_busy_timeout(reader_, busy_timeout_ms_);
    // Reads are rare (the watch cache serves lists and gets) and mostly whole-table scans that a
    // cache would not help: 256 KiB instead of SQLite's 2 MiB default.
    exec(reader_, "PRAGMA cache_size=-256");
    if (!read_key_.prepare(reader_,
                           "SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1") ||
        !read_from_.prepare(reader_,
                            "SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ?1 "
                            "ORDER BY key") ||
        !read_after_.prepare(reader_,
                             "SELECT key, value, create_rev, mod_rev FROM kv WHERE key > ?1 "
                             "ORDER BY key")) {
      auto error = storage_error("preparing reads", reader_, path_);
      sqlite3_close_v2(reader_);
      reader_ = nullptr;
      return error;
    }
    return api::Ok{};
  }

  api::Expected<int64_t> read_meta(sqlite3* db, const char* name) {
    Statement meta;
    if (!meta.prepare(db, "SELECT value FROM meta WHERE name = ?1")) {
      return storage_error("reading meta", db, path_);
    }
    meta.bind_text(1, name);
    int rc = meta.step();
    if (rc == SQLITE_ROW) return meta.int_at(0);
    if (rc == SQLITE_DONE) {
      return api::ApiError::internal("storage: " + path_ + " has no meta entry " + name);
    }
    return storage_error("reading meta", db, path_);
  }

  api::Outcome load_locked(JournalState& state, std::size_t max_events) {
    auto current = read_meta(db_, "current_revision");
    if (!current.ok()) return std::move(current).error();
    auto compacted = read_meta(db_, "compacted_revision");
    if (!compacted.ok()) return std::move(compacted).error();
    state.current_revision = *current;
    state.compacted_revision = *compacted;

    // The values stay on disk (keeps_values()).
    Statement keys;
    if (!keys.prepare(db_, "SELECT key, create_rev, mod_rev FROM kv ORDER BY key")) {
      return storage_error("loading keys", db_, path_);
    }
    int rc;
    while ((rc = keys.step()) == SQLITE_ROW) {
      state.records.push_back(Record{keys.blob_at(0), {}, keys.int_at(1), keys.int_at(2)});
    }
    if (rc != SQLITE_DONE) return storage_error("loading keys", db_, path_);

    const int64_t limit = static_cast<int64_t>(std::min<std::size_t>(max_events, INT64_MAX));
    const int64_t first_after = std::max(state.compacted_revision, state.current_revision - limit);
    Statement events;
    if (!events.prepare(db_,
                        "SELECT rev, type, key, value, create_rev, ts FROM events "
                        "WHERE rev > ?1 ORDER BY rev")) {
      return storage_error("loading history", db_, path_);
    }
    events.bind(1, first_after);
    int64_t expected = first_after + 1;
    while ((rc = events.step()) == SQLITE_ROW) {
      TimedEvent timed{event_from_row(events), events.int_at(5)};
      // Every revision after the compacted one has exactly one row; anything else means the file
      // was edited or damaged outside this program.
      if (timed.event.revision != expected) {
        return api::ApiError::internal("storage: " + path_ + " history is not contiguous at revision " +
                                       std::to_string(expected));
      }
      ++expected;
      state.recent_events.push_back(std::move(timed));
    }
    if (rc != SQLITE_DONE) return storage_error("loading history", db_, path_);
    if (!state.recent_events.empty() &&
        state.recent_events.back().event.revision != state.current_revision) {
      return api::ApiError::internal("storage: " + path_ + " history ends at revision " +
                                     std::to_string(state.recent_events.back().event.revision) +
                                     " but the current revision is " +
                                     std::to_string(state.current_revision));
    }
    return api::Ok{};
  }

  bool set_meta(const char* name, int64_t value) {
    set_meta_.reset();
    set_meta_.bind_text(1, name);
    set_meta_.bind(2, value);
    return set_meta_.step() == SQLITE_DONE;
  }

  api::ApiError rollback(const std::string& what) {
    auto error = storage_error(what, db_, path_);
    exec(db_, "ROLLBACK");
    return error;
  }

  void sync_directory() {
    // The database, WAL and lock files were possibly just created: make their names durable.
    int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
  }

  std::string dir_;
  std::string path_;
  int busy_timeout_ms_ = 5000;
  int lock_fd_ = -1;
  sqlite3* db_ = nullptr;  // the writer connection: open/load, then only the writer thread
  Statement insert_event_;
  Statement upsert_kv_;
  Statement delete_kv_;
  Statement set_meta_;
  std::mutex reader_mutex_;
  sqlite3* reader_ = nullptr;
  Statement read_key_;    // on reader_
  Statement read_from_;   // on reader_: keys >= ?1
  Statement read_after_;  // on reader_: keys > ?1
};

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<Journal> journal, const StoreOptions& options)
    : StoreEngine(std::move(journal), options) {}

api::Expected<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& data_dir,
                                                              const StoreOptions& options) {
  auto journal = std::make_unique<SqliteJournal>();
  auto opened = journal->open(data_dir, options);
  if (!opened.ok()) {
    obs::error("storage open failed", {{"data_dir", data_dir}, {"error", opened.error().message}});
    return std::move(opened).error();
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(journal), options));
  auto started = store->start();
  if (!started.ok()) {
    obs::error("storage open failed", {{"data_dir", data_dir}, {"error", started.error().message}});
    return std::move(started).error();
  }
  obs::info("storage opened", {{"path", data_dir + "/" + kDatabaseFile},
                               {"revision", store->current_revision()},
                               {"compacted_revision", store->compacted_revision()}});
  return store;
}

api::Expected<std::unique_ptr<Store>> open_sqlite_store(const std::string& data_dir,
                                                        const StoreOptions& options) {
  auto store = SqliteStore::open(data_dir, options);
  if (!store.ok()) return std::move(store).error();
  return std::unique_ptr<Store>(std::move(store).value());
}

}  // namespace dpa::storage
