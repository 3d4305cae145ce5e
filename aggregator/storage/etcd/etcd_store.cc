#include "aggregator/storage/etcd/etcd_store.h"

#include "aggregator/observability/log.h"
#include "aggregator/storage/store_common.h"

#include <algorithm>
#include <charconv>
#include <optional>

namespace dpa::storage::etcd {
namespace {

// kube-apiserver's compaction coordination key: every apiserver (and every replica here) sharing
// an etcd compacts through it, so two of them never both compact.
constexpr const char* kCompactKey = "compact_rev_key";
// Keys per RangeRequest when listing: bounded messages, one revision for all pages.
constexpr int64_t kListPage = 1000;


etcdserverpb::Compare compare_mod(const std::string& key, int64_t mod_revision) {
  etcdserverpb::Compare c;
  c.set_key(key);
  c.set_target(etcdserverpb::Compare::MOD);
  c.set_result(etcdserverpb::Compare::EQUAL);
  c.set_mod_revision(mod_revision);
  return c;
}

etcdserverpb::Compare compare_exists(const std::string& key) {
  etcdserverpb::Compare c;
  c.set_key(key);
  c.set_target(etcdserverpb::Compare::VERSION);
  c.set_result(etcdserverpb::Compare::GREATER);
  c.set_version(0);
  return c;
}

}  // namespace

EtcdStore::EtcdStore(std::shared_ptr<Client> client, EtcdStoreOptions options,
                     StoreOptions store_options)
    : client_(std::move(client)),
      options_(std::move(options)),
      store_options_(store_options),
      range_start_(options_.prefix + "/"),
      range_end_(prefix_end(range_start_)) {}

api::Expected<std::unique_ptr<EtcdStore>> EtcdStore::open(std::shared_ptr<Client> client,
                                                          EtcdStoreOptions options,
                                                          StoreOptions store_options) {
  std::unique_ptr<EtcdStore> store(
      new EtcdStore(std::move(client), std::move(options), store_options));
  const auto deadline = std::chrono::steady_clock::now() + store->options_.start_timeout;
  for (;;) {
    auto listed = store->read_all();
    if (listed.ok()) {
      auto& [records, revision] = *listed;
      store->records_ = std::move(records);
      store->current_ = revision;
      store->floor_ = revision;
      store->last_etcd_revision_ = revision;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return api::ApiError::unavailable("cannot list " + store->options_.prefix + " in etcd (" +
                                        store->client_->endpoint(store->client_->member()) +
                                        "): " + listed.error().message);
    }
    obs::warn("etcd not ready, retrying", {{"error", listed.error().message}});
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  obs::info("etcd store ready", {{"prefix", store->options_.prefix},
                                 {"objects", store->records_.size()},
                                 {"revision", store->current_.load()}});
  store->watcher_ = std::thread([s = store.get()] { s->run_watch(); });
  if (store->options_.compaction_interval.count() > 0) {
    store->compactor_ = std::thread([s = store.get()] { s->run_compactor(); });
  }
  return store;
}

EtcdStore::~EtcdStore() {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_ = true;
    if (watch_context_) watch_context_->TryCancel();
  }
  stop_wake_.notify_all();
  {
    std::lock_guard<std::mutex> lock(applied_mutex_);  // no waiter misses the wake-up
  }
  applied_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  if (compactor_.joinable()) compactor_.join();
  hub_.stop();
}

bool EtcdStore::pause(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(stop_mutex_);
  return !stop_wake_.wait_for(lock, d, [&] { return stopping_.load(); });
}

Record EtcdStore::record_of(const mvccpb::KeyValue& kv) const {
  return Record{kv.key().substr(options_.prefix.size()), kv.value(), to_store(kv.create_revision()),
                to_store(kv.mod_revision())};
}

// --- reads: the mirror ---------------------------------------------------------------------------

api::Expected<Record> EtcdStore::get(const std::string& key) const {
  std::shared_lock<std::shared_mutex> lock(state_mutex_);
  return get_record(records_, key);
}

api::Expected<ListResult> EtcdStore::list(const ListOptions& options) const {
  std::shared_lock<std::shared_mutex> lock(state_mutex_);
  return list_records(records_, options, current_.load());
}

int64_t EtcdStore::current_revision() const { return current_.load(); }

int64_t EtcdStore::compacted_revision() const {
  // etcd compacts at its own revisions, which may be past the mirror's when the latest changes were
  // outside the prefix (compact_rev_key itself): the mirror's revision stays watchable, as nothing
  // under the prefix changed since.
  return std::max(floor_.load(), std::min(compacted_.load(), current_.load()));
}

api::Expected<std::unique_ptr<Watch>> EtcdStore::watch(const std::string& prefix,
                                                       int64_t after_revision,
                                                       WatchCallback callback,
                                                       ProgressCallback on_progress) {
  std::shared_lock<std::shared_mutex> lock(state_mutex_);
  const int64_t oldest = compacted_revision();
  if (after_revision < oldest) return too_old(after_revision, oldest);
  std::vector<Event> backlog;
  auto first = std::partition_point(history_.begin(), history_.end(), [&](const Event& e) {
    return e.revision <= after_revision;
  });
  for (auto it = first; it != history_.end(); ++it) {
    if (has_prefix(it->record.key, prefix)) backlog.push_back(*it);
  }
  return hub_.add(prefix, std::max(current_.load(), after_revision), std::move(backlog),
                  std::move(callback), std::move(on_progress));
}

// --- writes: compare-and-swap transactions -------------------------------------------------------

api::Expected<Record> EtcdStore::create(const std::string& key, const std::string& value) {
  return write(Op::kCreate, key, value, 0);
}

api::Expected<Record> EtcdStore::update(const std::string& key, const std::string& value,
                                        int64_t expected_mod_revision) {
  return write(Op::kUpdate, key, value, expected_mod_revision);
}

api::Expected<Record> EtcdStore::remove(const std::string& key, int64_t expected_mod_revision) {
  return write(Op::kRemove, key, "", expected_mod_revision);
}

api::Expected<Record> EtcdStore::write(Op op, const std::string& key, const std::string& value,
                                       int64_t expected) {
  if (key.empty()) return api::ApiError::bad_request("storage key must not be empty");
  if (key.front() != '/') {
    return api::ApiError::bad_request("storage key \"" + key + "\" must start with /");
  }
  if (value.size() > store_options_.max_value_bytes) {
    return api::ApiError::too_large("the object is " + std::to_string(value.size()) +
                                    " bytes, more than the storage limit of " +
                                    std::to_string(store_options_.max_value_bytes) + " bytes");
  }
  const std::string etcd_key = options_.prefix + key;
  // A resourceVersion from before etcd's revision went backwards can match nothing stored now:
  // -1 (never a mod_revision), not 0, which would match a missing key.
  const int64_t shifted = to_etcd(expected);
  const int64_t expected_etcd = expected == 0 ? 0 : shifted > 0 ? shifted : -1;

  etcdserverpb::TxnRequest txn;
  if (op == Op::kCreate) {
    *txn.add_compare() = compare_mod(etcd_key, 0);
  } else if (expected != 0) {
    *txn.add_compare() = compare_mod(etcd_key, expected_etcd);
  } else {
    *txn.add_compare() = compare_exists(etcd_key);
  }
  if (op == Op::kRemove) {
    auto* del = txn.add_success()->mutable_request_delete_range();
    del->set_key(etcd_key);
    del->set_prev_kv(true);
  } else {
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(etcd_key);
    put->set_value(value);
    put->set_prev_kv(op == Op::kUpdate);
  }
  txn.add_failure()->mutable_request_range()->set_key(etcd_key);

  // What a remove deletes, for recognising our own delete when a retry finds the key gone.
  std::optional<Record> before;
  if (op == Op::kRemove) {
    if (auto current = get(key); current.ok()) before = std::move(current).value();
  }

  grpc::Status status;
  etcdserverpb::TxnResponse response;
  bool retried = false;
  for (int attempt = 0;; ++attempt) {
    response.Clear();
    status = client_->txn(txn, &response);
    if (status.ok()) break;
    if (attempt == 1 || !outcome_unknown(status)) return etcd_error(status, "write " + key);
    retried = true;
    obs::warn("etcd write outcome unknown, retrying on the next member",
              {{"key", key}, {"error", status.error_message()}});
  }
  const int64_t revision = to_store(response.header().revision());

  if (!response.succeeded()) {
    const auto& range = response.responses(0).response_range();
    const mvccpb::KeyValue* stored = range.kvs_size() > 0 ? &range.kvs(0) : nullptr;
    // The first attempt was applied after all: what is stored is what we wrote.
    if (retried && op != Op::kRemove && stored && stored->value() == value &&
        (op == Op::kCreate || stored->mod_revision() > expected_etcd)) {
      Record record = record_of(*stored);
      wait_applied(record.mod_revision);
      return record;
    }
    if (retried && op == Op::kRemove && !stored && before) {
      // Our delete's own revision is unknown (the reply is the failure branch's).
      Record record = *before;
      record.mod_revision = revision;
      return record;
    }
    if (op == Op::kCreate) return already_exists(key);
    if (!stored) return key_not_found(key);
    return revision_conflict(key, expected, to_store(stored->mod_revision()));
  }

  Record record;
  if (op == Op::kRemove) {
    const auto& deleted = response.responses(0).response_delete_range();
    if (deleted.prev_kvs_size() == 0) return key_not_found(key);
    record = record_of(deleted.prev_kvs(0));
  } else if (op == Op::kUpdate) {
    const auto& put = response.responses(0).response_put();
    record = Record{key, value, to_store(put.prev_kv().create_revision()), revision};
  } else {
    record = Record{key, value, revision, revision};
  }
  record.mod_revision = revision;
  wait_applied(revision);
  return record;
}

void EtcdStore::wait_applied(int64_t revision) {
  std::unique_lock<std::mutex> lock(applied_mutex_);
  const bool applied = applied_.wait_for(lock, client_->options().request_timeout, [&] {
    return current_.load() >= revision || stopping_.load();
  });
  if (!applied) {
    // Durable in etcd all the same; this replica shows it once its watch catches up.
    obs::warn("etcd write not yet seen by this replica's watch",
              {{"revision", revision}, {"applied", current_.load()}});
  }
}

api::Outcome EtcdStore::compact(int64_t revision) {
  const int64_t current = current_.load();
  if (revision > current) {
    return api::ApiError::bad_request("compaction revision " + std::to_string(revision) +
                                      " is newer than the current revision " +
                                      std::to_string(current));
  }
  if (revision <= compacted_revision()) return api::Ok{};
  etcdserverpb::CompactionRequest request;
  request.set_revision(to_etcd(revision));
  etcdserverpb::CompactionResponse response;
  grpc::Status status = client_->compact(request, &response);
  // "required revision has been compacted": someone compacted further already.
  if (!status.ok() && status.error_message().find("compacted") == std::string::npos) {
    return etcd_error(status, "compact");
  }
  std::unique_lock<std::shared_mutex> lock(state_mutex_);
  compacted_.store(std::max(compacted_.load(), revision));
  return api::Ok{};
}

// --- the mirror: one etcd watch ------------------------------------------------------------------

api::Expected<std::pair<std::map<std::string, Record>, int64_t>> EtcdStore::read_all() {
  std::map<std::string, Record> records;
  int64_t revision = 0;
  std::string from = range_start_;
  for (;;) {
    etcdserverpb::RangeRequest request;
    request.set_key(from);
    request.set_range_end(range_end_);
    request.set_limit(kListPage);
    request.set_revision(revision);  // 0 for the first page: the latest
    etcdserverpb::RangeResponse response;
    grpc::Status status = client_->range(request, &response);
    if (!status.ok()) return etcd_error(status, "list " + options_.prefix);
    if (revision == 0) revision = response.header().revision();
    for (const mvccpb::KeyValue& kv : response.kvs()) {
      Record record = record_of(kv);
      std::string key = record.key;
      records.emplace(std::move(key), std::move(record));
    }
    if (!response.more() || response.kvs().empty()) break;
    from = response.kvs(response.kvs_size() - 1).key() + std::string(1, '\0');
  }
  return std::make_pair(std::move(records), revision);
}

api::Outcome EtcdStore::relist(bool backwards) {
  if (backwards) {
    // Shift etcd's revisions past everything this replica has served, so resourceVersions keep
    // increasing; nothing from before can be resumed or matched any more.
    std::unique_lock<std::shared_mutex> lock(state_mutex_);
    offset_.store(current_.load());
  }
  auto listed = read_all();
  if (!listed.ok()) return std::move(listed).error();
  auto& [fresh, etcd_revision] = *listed;
  const int64_t revision = to_store(etcd_revision);

  std::unique_lock<std::shared_mutex> lock(state_mutex_);
  // The difference as events, in revision order: every change since the mirror's revision has a
  // later mod_revision; a delete's own revision is unknown, so deletes carry the list's.
  std::vector<Event> events;
  for (const auto& [key, record] : fresh) {
    auto it = records_.find(key);
    if (it == records_.end()) {
      events.push_back(Event{EventType::kAdded, record, record.mod_revision});
    } else if (backwards || it->second.mod_revision != record.mod_revision) {
      events.push_back(Event{EventType::kModified, record, record.mod_revision});
    }
  }
  for (const auto& [key, record] : records_) {
    if (fresh.count(key) == 0) {
      Event deleted{EventType::kDeleted, record, revision};
      deleted.record.mod_revision = revision;
      events.push_back(std::move(deleted));
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.revision < b.revision; });
  if (backwards) floor_.store(current_.load());
  records_ = std::move(fresh);
  last_etcd_revision_ = etcd_revision;
  obs::warn("etcd relisted", {{"prefix", options_.prefix},
                              {"objects", records_.size()},
                              {"changes", events.size()},
                              {"revision", revision}});
  publish_locked(std::move(events));
  return api::Ok{};
}

void EtcdStore::publish_locked(std::vector<Event> events) {
  if (events.empty()) return;
  // The mirror's revision is its last event's: a revision where nothing under the prefix changed
  // would be one the store watches (and the watch cache on them) never reach.
  const int64_t revision = events.back().revision;
  for (const Event& event : events) history_.push_back(event);
  while (history_.size() > store_options_.memory_history_limit) {
    const int64_t dropped = history_.front().revision;
    floor_.store(std::max(floor_.load(), dropped));
    while (!history_.empty() && history_.front().revision <= dropped) history_.pop_front();
  }
  {
    std::lock_guard<std::mutex> applied_lock(applied_mutex_);
    current_.store(std::max(current_.load(), revision));
  }
  applied_.notify_all();
  hub_.publish(std::make_shared<const std::vector<Event>>(std::move(events)));
}

void EtcdStore::apply(const etcdserverpb::WatchResponse& response) {
  std::vector<Event> events;
  int64_t last = last_etcd_revision_;
  std::unique_lock<std::shared_mutex> lock(state_mutex_);
  for (const mvccpb::Event& e : response.events()) {
    const mvccpb::KeyValue& kv = e.kv();
    if (kv.mod_revision() <= last_etcd_revision_) continue;  // seen before a reconnect
    last = std::max(last, kv.mod_revision());
    Record record = record_of(kv);
    auto it = records_.find(record.key);
    if (e.type() == mvccpb::Event::DELETE) {
      if (it == records_.end()) continue;
      Event deleted{EventType::kDeleted, it->second, record.mod_revision};
      deleted.record.mod_revision = record.mod_revision;
      records_.erase(it);
      events.push_back(std::move(deleted));
      continue;
    }
    const EventType type = it == records_.end() ? EventType::kAdded : EventType::kModified;
    if (it == records_.end()) {
      records_.emplace(record.key, record);
    } else {
      it->second = record;
    }
    events.push_back(Event{type, std::move(record), to_store(kv.mod_revision())});
  }
  // Every event of a revision arrives in one response (no fragments asked for): the header's
  // revision may be later than the events, but only a progress notification says nothing else
  // under the prefix happened up to it.
  last_etcd_revision_ = last;
  publish_locked(std::move(events));
}

void EtcdStore::run_watch() {
  auto backoff = std::chrono::milliseconds(100);
  bool relist_needed = false;
  bool backwards = false;
  for (;;) {
    if (relist_needed) {
      auto outcome = relist(backwards);
      if (!outcome.ok()) {
        obs::warn("etcd relist failed", {{"error", outcome.error().message}});
        if (!pause(backoff)) return;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2'000));
        continue;
      }
      relist_needed = backwards = false;
    }
    const std::size_t member = client_->member();
    auto ctx = client_->context(std::chrono::milliseconds(0));
    {
      std::lock_guard<std::mutex> lock(stop_mutex_);
      if (stopping_) return;
      watch_context_ = ctx.get();
    }
    auto stream = client_->watch(member).Watch(ctx.get());
    etcdserverpb::WatchRequest request;
    auto* create = request.mutable_create_request();
    create->set_key(range_start_);
    create->set_range_end(range_end_);
    create->set_start_revision(last_etcd_revision_ + 1);
    create->set_prev_kv(true);
    create->set_progress_notify(true);
    etcdserverpb::WatchResponse response;
    if (stream->Write(request)) {
      while (stream->Read(&response)) {
        if (response.canceled()) {
          if (response.compact_revision() > 0) {
            obs::warn("etcd watch start was compacted, relisting",
                      {{"from", last_etcd_revision_ + 1},
                       {"compacted", response.compact_revision()}});
            relist_needed = true;
          } else {
            obs::warn("etcd watch canceled", {{"reason", response.cancel_reason()}});
          }
          break;
        }
        if (response.created()) {
          if (response.header().revision() < last_etcd_revision_) {
            obs::error("etcd revision went backwards (restored or restarted empty): relisting",
                       {{"was", last_etcd_revision_}, {"now", response.header().revision()}});
            relist_needed = backwards = true;
            break;
          }
          etcd_watches_.store(1);
          backoff = std::chrono::milliseconds(100);
          continue;
        }
        if (response.events_size() > 0) {
          apply(response);
        } else if (response.header().revision() > last_etcd_revision_) {
          // A progress notification: nothing under the prefix changed up to this revision. A
          // resumed watch may start after it, and the mirror and its watchers (the watch cache,
          // so lists and bookmarks) move to it.
          std::unique_lock<std::shared_mutex> lock(state_mutex_);
          last_etcd_revision_ = response.header().revision();
          const int64_t revision = to_store(last_etcd_revision_);
          {
            std::lock_guard<std::mutex> applied_lock(applied_mutex_);
            current_.store(std::max(current_.load(), revision));
          }
          hub_.advance(revision);
        }
      }
    }
    etcd_watches_.store(0);
    ctx->TryCancel();
    grpc::Status status = stream->Finish();
    {
      std::lock_guard<std::mutex> lock(stop_mutex_);
      watch_context_ = nullptr;
      if (stopping_) return;
    }
    if (!relist_needed) {
      obs::warn("etcd watch ended, resuming on the next member",
                {{"member", client_->endpoint(member)},
                 {"error", status.ok() ? "stream ended" : status.error_message()},
                 {"from", last_etcd_revision_ + 1}});
      client_->fail_over(member, grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch ended"));
      if (!pause(backoff)) return;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2'000));
    }
  }
}

// --- compaction, coordinated through compact_rev_key as kube-apiserver does ----------------------

void EtcdStore::run_compactor() {
  int64_t version = 0;        // compact_rev_key's version when last seen
  int64_t recorded = 0;       // the etcd revision to compact next round
  while (pause(options_.compaction_interval)) {
    etcdserverpb::TxnRequest txn;
    auto* compare = txn.add_compare();
    compare->set_key(kCompactKey);
    compare->set_target(etcdserverpb::Compare::VERSION);
    compare->set_result(etcdserverpb::Compare::EQUAL);
    compare->set_version(version);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(kCompactKey);
    put->set_value(std::to_string(recorded));
    txn.add_failure()->mutable_request_range()->set_key(kCompactKey);
    etcdserverpb::TxnResponse response;
    grpc::Status status = client_->txn(txn, &response);
    if (!status.ok()) {
      obs::warn("etcd compaction round failed", {{"error", status.error_message()}});
      continue;
    }
    const int64_t now = response.header().revision();
    if (!response.succeeded()) {
      // Another replica (or apiserver) won this round: it compacts what the key now records.
      const auto& range = response.responses(0).response_range();
      if (range.kvs_size() > 0) {
        version = range.kvs(0).version();
        int64_t theirs = 0;
        const std::string& value = range.kvs(0).value();
        std::from_chars(value.data(), value.data() + value.size(), theirs);
        if (theirs > 0) compacted_.store(std::max(compacted_.load(), to_store(theirs)));
      }
      recorded = now;
      continue;
    }
    ++version;
    if (recorded > 0) {
      etcdserverpb::CompactionRequest request;
      request.set_revision(recorded);
      etcdserverpb::CompactionResponse compacted;
      grpc::Status done = client_->compact(request, &compacted);
      if (done.ok() || done.error_message().find("compacted") != std::string::npos) {
        compacted_.store(std::max(compacted_.load(), to_store(recorded)));
        obs::info("etcd compacted", {{"revision", recorded}});
      } else {
        obs::warn("etcd compaction failed", {{"error", done.error_message()}});
      }
    }
    recorded = now;
  }
}

}  // namespace dpa::storage::etcd
