#include "aggregator/dataplaneservice/rest_handler.h"

#include "aggregator/apimachinery/codec.h"
#include "aggregator/apimachinery/managed_fields.h"
#include "aggregator/apimachinery/negotiation.h"
#include "aggregator/apimachinery/object_meta.h"
#include "aggregator/apimachinery/patch.h"
#include "aggregator/apimachinery/selectors.h"
#include "aggregator/apimachinery/table.h"
#include "aggregator/dataplaneservice/types.h"
#include "aggregator/observability/containment.h"
#include "aggregator/http/wire.h"
#include "aggregator/observability/log.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>

namespace dpa::dataplaneservice {
namespace {

using nlohmann::json;

const std::string kApiVersion = std::string(kGroup) + "/" + kVersion;
const std::string kGroupPath = std::string("/apis/") + kGroup;
const std::string kBase = kGroupPath + "/" + kVersion;
constexpr const char* kUnsupportedPatch =
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";
constexpr const char* kUnsupportedBody =
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json, application/yaml";

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

api::ApiError store_error(const api::ApiError& e, const std::string& name) {
  if (e.code == 404) return api::ApiError::not_found(kResource, kGroup, name);
  if (e.code == 409) return api::ApiError::conflict(kResource, kGroup, name);
  return e;
}

// --- table ---------------------------------------------------------------------------------------

const std::vector<api::TableColumn>& table_columns() {
  static const std::vector<api::TableColumn> columns = {
      {"Name", "string", "name",
       "Name must be unique within a namespace. More info: "
       "http://kubernetes.io/docs/user-guide/identifiers#names",
       0},
      {"Plugin", "string", "", "The Grafana plugin id (spec.pluginID).", 0},
      {"Group/Version", "string", "", "The API group/version routed to the plugin.", 0},
      {"Services", "string", "", "The service types exposed (spec.services[].type).", 0},
      {"Available", "string", "", "The Available condition: True, False (Reason) or Unknown.", 0},
      {"Age", "string", "",
       "CreationTimestamp is a timestamp representing the server time when this object was "
       "created.",
       0},
  };
  return columns;
}

std::string available_cell(const json& object) {
  if (object.contains("status") && object["status"].is_object() &&
      object["status"].contains("conditions") && object["status"]["conditions"].is_array()) {
    for (const auto& c : object["status"]["conditions"]) {
      if (!c.is_object() || api::string_field(c, "type") != "Available") continue;
      std::string status = api::string_field(c, "status", "Unknown");
      if (status == "True") return "True";
      std::string reason = api::string_field(c, "reason");
      return reason.empty() ? status : status + " (" + reason + ")";
    }
  }
  return "Unknown";
}

api::TableRow table_row(const json& object) {
  const json empty = json::object();
  const json& spec = object.contains("spec") && object["spec"].is_object() ? object["spec"] : empty;
  std::string services;
  if (spec.contains("services") && spec["services"].is_array()) {
    for (const auto& s : spec["services"]) {
      if (!s.is_object()) continue;
      if (!services.empty()) services += ",";
      services += api::string_field(s, "type");
    }
  }
  std::string age = "<unknown>";
  const json& meta = object.contains("metadata") ? object["metadata"] : empty;
  std::chrono::system_clock::time_point created;
  if (meta.is_object() && meta.contains("creationTimestamp") &&
      meta["creationTimestamp"].is_string() &&
      api::parse_rfc3339(meta["creationTimestamp"].get<std::string>(), &created)) {
    age = api::human_duration(std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now() - created));
  }
  std::string group = api::string_field(spec, "group");
  std::string version = api::string_field(spec, "version");
  api::TableRow row;
  row.cells = json::array({name_of(object), api::string_field(spec, "pluginID"),
                           group.empty() && version.empty() ? "" : group + "/" + version,
                           services, available_cell(object), age});
  row.object = object;
  return row;
}

// --- responses -----------------------------------------------------------------------------------

void respond_error(const std::shared_ptr<http::Exchange>& ex, const api::ApiError& e) {
  ex->respond(http::Response::error(e));
}

void respond_json(const std::shared_ptr<http::Exchange>& ex, int code, const json& body,
                  const api::Negotiated& negotiated, const std::vector<std::string>& warnings = {}) {
  http::Response r;
  r.status = code;
  r.headers.emplace_back("Content-Type", negotiated.content_type());
  for (const auto& w : warnings) {
    r.headers.emplace_back("Warning", "299 - " + api::dump_json(json(w)));
  }
  r.body = negotiated.kind == api::MediaKind::kYaml ? api::to_yaml(body) : api::dump_json(body);
  ex->respond(std::move(r));
}

void respond_object(const std::shared_ptr<http::Exchange>& ex, int code, const json& object,
                    const api::Negotiated& negotiated, api::IncludeObject include,
                    const std::vector<std::string>& warnings = {}) {
  if (negotiated.kind == api::MediaKind::kTable) {
    std::string rv = object.contains("metadata") && object["metadata"].contains("resourceVersion")
                         ? object["metadata"]["resourceVersion"].get<std::string>() : "";
    respond_json(ex, code,
                 api::make_table(negotiated.table_api_version, table_columns(), {table_row(object)},
                                 include, rv, ""),
                 negotiated, warnings);
    return;
  }
  respond_json(ex, code, object, negotiated, warnings);
}

std::optional<int64_t> parse_int(const std::string& s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return std::nullopt;
  for (std::size_t j = i; j < s.size(); ++j) {
    if (s[j] < '0' || s[j] > '9') return std::nullopt;
  }
  return std::stoll(s);
}

// --- the watch cache's form of an object ---------------------------------------------------------

// What the cache keeps of a stored object: the JSON served for it (resourceVersion set) and the
// fields selectors read (metadata name, namespace and labels).
storage::ObjectPtr cached_object(const storage::Record& record, int64_t resource_version) {
  auto object = object_from_record(record, resource_version);
  if (!object) return nullptr;
  auto cached = std::make_shared<storage::CachedObject>();
  cached->key = record.key;
  cached->create_revision = record.create_revision;
  cached->resource_version = resource_version;
  cached->bytes = api::dump_json(*object);
  cached->bytes.shrink_to_fit();  // held for the object's life: drop the growth slack
  cached->attributes = api::Attributes::of(*object);
  return cached;
}

json parse_cached(const std::string& bytes) { return json::parse(bytes, nullptr, false); }

// --- watch ---------------------------------------------------------------------------------------

// One watch stream: initial events (optional), then the cache's events filtered by the
// selectors, bookmarks, and a clean end at the timeout. Cache events arrive on the store's
// notification thread (or, for a backlog, on the thread that started the watch), timers on the
// exchange's strand; `mu_` serialises them. Each event's JSON line is encoded once and the same
// buffer is queued to every watcher that gets it. The cache Watch is cancelled on the handler's
// watch-cancel thread (never from inside its own callback).
class WatchSession : public std::enable_shared_from_this<WatchSession> {
 public:
  WatchSession(std::shared_ptr<http::Exchange> ex, boost::asio::any_io_executor cancels,
               api::LabelSelector labels, api::FieldSelector fields, api::Negotiated negotiated,
               api::IncludeObject include, std::size_t max_pending)
      : ex_(std::move(ex)),
        cancels_(std::move(cancels)),
        labels_(std::move(labels)),
        fields_(std::move(fields)),
        negotiated_(std::move(negotiated)),
        include_(include),
        max_pending_(max_pending),
        timeout_timer_(ex_->executor()),
        bookmark_timer_(ex_->executor()) {}

  bool matches(const storage::CachedObject& object) const {
    return labels_.matches(object.attributes) && fields_.matches(object.attributes);
  }

  // A watch from a resourceVersion: events go straight out as they arrive.
  void start_at(int64_t revision) {
    std::lock_guard<std::mutex> lock(mu_);
    last_revision_ = revision;
    started_ = true;
  }

  // A watch with initial events: the state, then whatever arrived meanwhile (held until now).
  void send_initial(const storage::WatchCache::Snapshot& initial, bool bookmark_end) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    for (const auto& object : initial.objects) {
      if (!matches(*object)) continue;
      write_object_locked("ADDED", *object);
      if (done_) return;
    }
    last_revision_ = initial.revision;
    if (bookmark_end) {
      write_raw_locked(api::encode_watch_event(
          "BOOKMARK",
          api::bookmark_object(kApiVersion, kKind, std::to_string(initial.revision), true)));
    }
    started_ = true;
    std::vector<storage::EventPtr> held = std::move(held_);
    held_.clear();
    events_locked(held);
  }

  void attach(std::unique_ptr<storage::Watch> watch) {
    std::unique_lock<std::mutex> lock(mu_);
    if (done_) {
      lock.unlock();
      cancel_on_blocking(std::move(watch));
      return;
    }
    watch_ = std::move(watch);
  }

  void on_events(const std::vector<storage::EventPtr>& events) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    if (!started_) {
      held_.insert(held_.end(), events.begin(), events.end());
      return;
    }
    events_locked(events);
  }

  void start_timers(std::chrono::seconds timeout, std::chrono::seconds bookmark_interval,
                    bool bookmarks) {
    auto self = shared_from_this();
    timeout_timer_.expires_after(timeout);
    timeout_timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->stop();
    });
    if (bookmarks) schedule_bookmark(bookmark_interval);
  }

  void send_error_and_stop(const api::ApiError& e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    write_raw_locked(api::encode_watch_event("ERROR", e.to_json()));
    if (!done_) close_locked();
  }

  void stop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_) close_locked();
  }

 private:
  // Ends the stream: no more events, the cache watch cancelled (on the blocking executor), the
  // timers stopped and the response finished (on the exchange's strand).
  void close_locked() {
    done_ = true;
    cancel_on_blocking(std::move(watch_));
    auto self = shared_from_this();
    boost::asio::post(ex_->executor(), [self] {
      self->timeout_timer_.cancel();
      self->bookmark_timer_.cancel();
      self->ex_->finish();
    });
  }

  // The encodings an event can go out with; memoized per event (CachedEvent::encoded).
  enum Slot : std::size_t { kAddedSlot, kModifiedSlot, kDeletedSlot, kLeftSelectorSlot };

  // kube's cacher: an event goes to a watcher when the object matches its selectors before or
  // after the change; entering the selector is ADDED, leaving it DELETED (carrying the previous
  // object at the event's resourceVersion). When the previous state is unknown (a catch-up from
  // the store's history), a match is MODIFIED and a non-match DELETED.
  void events_locked(const std::vector<storage::EventPtr>& events) {
    for (const auto& event : events) {
      last_revision_ = std::max(last_revision_, event->revision);
      const storage::CachedObject& object = *event->object;
      switch (event->type) {
        case storage::EventType::kAdded:
          if (matches(object)) write_event_locked(*event, kAddedSlot);
          break;
        case storage::EventType::kDeleted:
          if (matches(object)) write_event_locked(*event, kDeletedSlot);
          break;
        case storage::EventType::kModified: {
          const bool now = matches(object);
          if (!event->prev_known) {
            write_event_locked(*event, now ? kModifiedSlot : kDeletedSlot);
            break;
          }
          const bool before = event->prev && matches(*event->prev);
          if (now) {
            write_event_locked(*event, before ? kModifiedSlot : kAddedSlot);
          } else if (before) {
            write_event_locked(*event, kLeftSelectorSlot);
          }
          break;
        }
      }
      if (done_) return;
    }
  }

  static const char* type_of(Slot slot) {
    switch (slot) {
      case kAddedSlot: return "ADDED";
      case kModifiedSlot: return "MODIFIED";
      default: return "DELETED";
    }
  }

  // The object an event carries in `slot`, as served bytes.
  static std::string object_bytes(const storage::CachedEvent& event, Slot slot) {
    if (slot != kLeftSelectorSlot) return event.object->bytes;
    json previous = parse_cached(event.prev->bytes);
    if (!previous.is_object() || !previous["metadata"].is_object()) return event.prev->bytes;
    previous["metadata"]["resourceVersion"] = std::to_string(event.revision);
    return api::dump_json(previous);
  }

  void write_event_locked(const storage::CachedEvent& event, Slot slot) {
    if (negotiated_.kind == api::MediaKind::kTable) {
      return write_table_locked(type_of(slot), parse_cached(object_bytes(event, slot)));
    }
    auto line = event.encoded(slot, [&] { return watch_line(type_of(slot), object_bytes(event, slot)); });
    if (!admit_locked(line->size())) return;
    ex_->write_shared(std::move(line));
  }

  void write_object_locked(const char* type, const storage::CachedObject& object) {
    if (negotiated_.kind == api::MediaKind::kTable) {
      return write_table_locked(type, parse_cached(object.bytes));
    }
    write_raw_locked(watch_line(type, object.bytes));
  }

  // {"type":T,"object":O}\n, as api::encode_watch_event writes it, from already encoded bytes.
  static std::string watch_line(const char* type, const std::string& object) {
    std::string line;
    line.reserve(object.size() + 32);
    line.append(R"({"type":")").append(type).append(R"(","object":)").append(object);
    line.append("}\n");
    return line;
  }

  void write_table_locked(const char* type, const json& object) {
    json table = api::make_table(negotiated_.table_api_version, table_columns(),
                                 {table_row(object)}, include_,
                                 api::string_field(object["metadata"], "resourceVersion"), "",
                                 !table_headers_sent_);
    table_headers_sent_ = true;
    write_raw_locked(api::encode_watch_event(type, table));
  }

  void schedule_bookmark(std::chrono::seconds interval) {
    auto self = shared_from_this();
    bookmark_timer_.expires_after(interval);
    bookmark_timer_.async_wait([self, interval](const boost::system::error_code& ec) {
      if (ec) return;
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        if (self->done_) return;
        // Every change up to the watch's progress revision has been written already.
        int64_t rv = self->last_revision_;
        if (self->watch_ && self->started_) rv = std::max(rv, self->watch_->progress_revision());
        self->last_revision_ = rv;
        self->write_raw_locked(api::encode_watch_event(
            "BOOKMARK", api::bookmark_object(kApiVersion, kKind, std::to_string(rv), false)));
      }
      self->schedule_bookmark(interval);
    });
  }

  void cancel_on_blocking(std::unique_ptr<storage::Watch> watch) {
    if (!watch) return;
    std::shared_ptr<storage::Watch> shared(std::move(watch));
    boost::asio::post(cancels_, [shared] { shared->cancel(); });
  }

  // False (and the watcher cut off) when it is too far behind: its client re-watches from its
  // last resourceVersion, and nobody else waits for it.
  bool admit_locked(std::size_t bytes) {
    if (ex_->pending_bytes() + bytes <= max_pending_) return true;
    obs::warn("watch client too slow, closing", {{"pending_bytes", ex_->pending_bytes()}});
    close_locked();
    return false;
  }

  void write_raw_locked(std::string line) {
    if (!admit_locked(line.size())) return;
    ex_->write(std::move(line));
  }

  std::shared_ptr<http::Exchange> ex_;
  boost::asio::any_io_executor cancels_;
  api::LabelSelector labels_;
  api::FieldSelector fields_;
  api::Negotiated negotiated_;
  api::IncludeObject include_;
  std::size_t max_pending_;
  boost::asio::steady_timer timeout_timer_;
  boost::asio::steady_timer bookmark_timer_;

  std::mutex mu_;
  bool done_ = false;
  bool started_ = false;  // initial events written (or none asked for)
  std::vector<storage::EventPtr> held_;  // events that arrived before the initial ones were out
  bool table_headers_sent_ = false;
  int64_t last_revision_ = 0;
  std::unique_ptr<storage::Watch> watch_;
};

}  // namespace

RestHandler::RestHandler(storage::Store& store, boost::asio::any_io_executor blocking,
                         RestOptions options)
    : store_(store), blocking_(std::move(blocking)), options_(options) {
  auto cache = storage::WatchCache::start(store_, kKeyPrefix, cached_object);
  // The cache lists the store's memory and registers a watch: neither fails on an open store.
  if (!cache) throw std::runtime_error("watch cache: " + cache.error().message);
  cache_ = std::move(cache).value();
  cancels_ = std::make_unique<obs::WorkerPool>(1, "watch cancel");
}

RestHandler::~RestHandler() = default;

bool RestHandler::serves(std::string_view path) const {
  auto under = [&](std::string_view prefix) {
    return path == prefix || starts_with(path, std::string(prefix) + "/");
  };
  return under("/api") || under(kGroupPath) || under("/openapi/v3") || path == "/openapi/v2";
}

api::Expected<json> RestHandler::get(const std::string& name) const {
  auto rec = store_.get(key_of(name));
  if (!rec) return store_error(rec.error(), name);
  return object_from_record(*rec);
}

// --- dispatch ------------------------------------------------------------------------------------

void RestHandler::handle(std::shared_ptr<http::Exchange> ex) {
  std::string_view path = ex->path();
  if (starts_with(path, "/openapi/")) return handle_openapi(ex, path);
  if (path == "/api" || starts_with(path, "/api/") || path == kGroupPath ||
      path == kGroupPath + "/" || path == kBase || path == kBase + "/") {
    return handle_discovery(ex, path);
  }
  const std::string method(ex->header().method_string());
  if (!starts_with(path, kBase + "/")) {
    return respond_error(ex, api::ApiError::not_found("the server could not find the requested "
                                                      "resource"));
  }
  // Every segment counts, empty ones too: ".../<name>/" names no object (404, as kube-apiserver
  // answers), it is not ".../<name>".
  std::vector<std::string> segments;
  std::string_view rest = path.substr(kBase.size() + 1);
  for (;;) {
    auto slash = rest.find('/');
    segments.push_back(http::percent_decode(rest.substr(0, slash)));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  bool legacy_watch = !segments.empty() && segments[0] == "watch";
  if (legacy_watch) segments.erase(segments.begin());
  auto not_found = [&] {
    respond_error(ex, api::ApiError::not_found("the server could not find the requested resource"));
  };
  auto not_allowed = [&] {
    respond_error(ex, api::ApiError::method_not_allowed(
                          "the server does not allow this method on the requested resource"));
  };
  if (segments.empty() || segments[0] != kResource || segments.size() > 3) return not_found();
  if (legacy_watch) {
    if (method != "GET" || segments.size() > 2) return not_found();
    return handle_list(ex, true, segments.size() == 2 ? segments[1] : "");
  }
  if (segments.size() == 1) {
    if (method == "GET") return handle_list(ex, false, "");
    if (method == "POST") return handle_write(ex, "create", "", false);
    if (method == "DELETE") return handle_delete_collection(ex);
    return not_allowed();
  }
  const std::string& name = segments[1];
  if (name.empty()) return not_found();
  bool status = segments.size() == 3;
  if (status && segments[2] != "status") return not_found();
  if (method == "GET") {
    if (!status) {
      auto watch = api::parse_bool_param(ex->query_param("watch"));
      if (watch.value_or(false)) return handle_list(ex, true, name);
    }
    return handle_get(ex, name);
  }
  if (method == "PUT") return handle_write(ex, "update", name, status);
  if (method == "PATCH") return handle_write(ex, "patch", name, status);
  if (method == "DELETE" && !status) return handle_write(ex, "delete", name, false);
  return not_allowed();
}

void RestHandler::handle_discovery(const std::shared_ptr<http::Exchange>& ex,
                                   std::string_view path) {
  const std::string method(ex->header().method_string());
  if (method != "GET" && method != "HEAD") {
    return respond_error(ex, api::ApiError::method_not_allowed(
                                 "the server does not allow this method on the requested "
                                 "resource"));
  }
  api::Negotiated json_out;
  if (path == "/api" || path == "/api/") {
    // This server has no core group; clients skip "/api" with no versions.
    return respond_json(ex, 200, {{"kind", "APIVersions"}, {"versions", json::array()},
                                  {"serverAddressByClientCIDRs", json::array()}}, json_out);
  }
  if (starts_with(path, "/api/")) {
    return respond_error(ex, api::ApiError::not_found("the server could not find the requested "
                                                      "resource"));
  }
  if (path == kGroupPath || path == kGroupPath + "/") return respond_json(ex, 200, api_group(), json_out);
  return respond_json(ex, 200, api_resource_list(), json_out);
}

void RestHandler::handle_openapi(const std::shared_ptr<http::Exchange>& ex,
                                 std::string_view path) {
  api::Negotiated json_out;
  if (path == "/openapi/v3" || path == "/openapi/v3/") {
    return respond_json(ex, 200, {{"paths", openapi_v3_index_paths()}}, json_out);
  }
  std::string gv_path = "/openapi/v3/apis/" + std::string(kGroup) + "/" + kVersion;
  if (path != gv_path) {
    // /openapi/v2 included: kubectl only needs v3 for our group (reference §2.7).
    return respond_error(ex, api::ApiError::not_found("the server could not find the requested "
                                                      "resource"));
  }
  const std::string etag = "\"" + openapi_v3_hash() + "\"";
  auto inm = ex->header().find("If-None-Match");
  http::Response r;
  r.headers.emplace_back("ETag", etag);
  r.headers.emplace_back("Vary", "Accept");
  bool immutable = ex->query_param("hash") == openapi_v3_hash();
  r.headers.emplace_back("Cache-Control",
                         immutable ? "public, immutable" : "no-cache, private");
  if (inm != ex->header().end() && std::string(inm->value()) == etag) {
    r.status = 304;
    return ex->respond(std::move(r));
  }
  r.status = 200;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = openapi_v3_document();
  ex->respond(std::move(r));
}

void RestHandler::handle_get(const std::shared_ptr<http::Exchange>& ex, const std::string& name) {
  auto negotiated = api::negotiate_accept(ex->header()["Accept"], true, true);
  if (!negotiated) return respond_error(ex, negotiated.error());
  auto include = api::parse_include_object(ex->query_param("includeObject"));
  if (!include) return respond_error(ex, include.error());
  // From the watch cache once it has every acknowledged write (a consistent read, as kube's GET
  // without a resourceVersion): no store read on the I/O thread.
  auto serve = [this, ex, name, negotiated = *negotiated, include = *include] {
    auto object = cache_->get(key_of(name));
    if (!object) return respond_error(ex, api::ApiError::not_found(kResource, kGroup, name));
    if (negotiated.kind == api::MediaKind::kJson) {
      http::Response r;
      r.status = 200;
      r.headers.emplace_back("Content-Type", negotiated.content_type());
      r.body_parts.emplace_back(object, &object->bytes);
      return ex->respond(std::move(r));
    }
    respond_object(ex, 200, parse_cached(object->bytes), negotiated, include);
  };
  cache_->when_fresh(store_.current_revision(), [ex, serve = std::move(serve)]() mutable {
    boost::asio::post(ex->executor(), std::move(serve));
  });
}

// --- list and watch ------------------------------------------------------------------------------

void RestHandler::handle_list(const std::shared_ptr<http::Exchange>& ex, bool force_watch,
                              const std::string& single_name) {
  api::ListRequest req;
  auto bool_param = [&](const char* name, bool* out) -> api::Outcome {
    if (!ex->has_query_param(name)) return api::Ok{};
    auto v = api::parse_bool_param(ex->query_param(name));
    if (!v) {
      return api::ApiError::bad_request(std::string("invalid value for ") + name + ": \"" +
                                        ex->query_param(name) + "\"");
    }
    *out = *v;
    return api::Ok{};
  };
  if (auto ok = bool_param("watch", &req.watch); !ok) return respond_error(ex, ok.error());
  req.watch = req.watch || force_watch;
  if (auto ok = bool_param("allowWatchBookmarks", &req.allow_watch_bookmarks); !ok) {
    return respond_error(ex, ok.error());
  }
  if (ex->has_query_param("sendInitialEvents")) {
    bool v = false;
    if (auto ok = bool_param("sendInitialEvents", &v); !ok) return respond_error(ex, ok.error());
    req.send_initial_events = v;
  }
  req.resource_version = ex->query_param("resourceVersion");
  req.resource_version_match = ex->query_param("resourceVersionMatch");
  req.continue_token = ex->query_param("continue");
  for (auto [name, dst] : {std::pair<const char*, int64_t*>{"limit", &req.limit}}) {
    if (!ex->has_query_param(name) || ex->query_param(name).empty()) continue;
    auto v = parse_int(ex->query_param(name));
    if (!v) return respond_error(ex, api::ApiError::bad_request(std::string("invalid ") + name));
    *dst = *v;
  }
  if (ex->has_query_param("timeoutSeconds") && !ex->query_param("timeoutSeconds").empty()) {
    auto v = parse_int(ex->query_param("timeoutSeconds"));
    if (!v) return respond_error(ex, api::ApiError::bad_request("invalid timeoutSeconds"));
    req.timeout_seconds = *v;
  }
  if (auto ok = api::validate_list_request(req); !ok) return respond_error(ex, ok.error());
  std::string field_selector = ex->query_param("fieldSelector");
  if (!single_name.empty()) {
    field_selector = "metadata.name=" + single_name +
                     (field_selector.empty() ? "" : "," + field_selector);
  }
  std::string label_selector = ex->query_param("labelSelector");
  if (req.watch) return handle_watch(ex, req, label_selector, field_selector);

  auto labels = api::LabelSelector::parse(label_selector);
  if (!labels) return respond_error(ex, labels.error());
  auto fields = api::FieldSelector::parse(field_selector);
  if (!fields) return respond_error(ex, fields.error());
  auto negotiated = api::negotiate_accept(ex->header()["Accept"], true, true);
  if (!negotiated) return respond_error(ex, negotiated.error());
  auto include = api::parse_include_object(ex->query_param("includeObject"));
  if (!include) return respond_error(ex, include.error());

  // Which state to list: at a continue token's revision, at an Exact resourceVersion (both from
  // the cache's ring: 410 once it is older), or the current state once the cache has caught up
  // with the store (resourceVersion unset: every acknowledged write; N: at least N; 0: any).
  ListPlan plan;
  plan.labels = std::move(*labels);
  plan.fields = std::move(*fields);
  plan.negotiated = *negotiated;
  plan.include = *include;
  plan.limit = req.limit;
  int64_t fresh_at = 0;
  if (!req.continue_token.empty()) {
    auto token = api::decode_continue(req.continue_token);
    if (!token) return respond_error(ex, token.error());
    plan.revision = token->resource_version;
    plan.start_after = token->start_after;
    plan.continuing = true;
  } else if (!req.resource_version.empty()) {
    int64_t rv = *api::parse_resource_version(req.resource_version);
    int64_t current = store_.current_revision();
    if (rv > current) {
      api::ApiError e = api::ApiError::timeout(
          "Too large resource version: " + std::to_string(rv) + ", current: " +
          std::to_string(current));
      e.details = {{"causes", json::array({{{"reason", "ResourceVersionTooLarge"},
                                             {"message", "Too large resource version"}}})},
                   {"retryAfterSeconds", 1}};
      return respond_error(ex, e);
    }
    bool exact = req.resource_version_match == "Exact" ||
                 (req.resource_version_match.empty() && req.limit > 0 && rv != 0);
    if (exact) {
      plan.revision = rv;
    }
    fresh_at = rv;
  } else {
    fresh_at = store_.current_revision();
  }
  auto run = [this, ex, plan = std::move(plan)] { serve_list(ex, plan); };
  if (fresh_at == 0) return run();
  cache_->when_fresh(fresh_at, [ex, run = std::move(run)]() mutable {
    boost::asio::post(ex->executor(), std::move(run));
  });
}

void RestHandler::serve_list(const std::shared_ptr<http::Exchange>& ex, const ListPlan& plan) {
  auto listed = cache_->list(plan.revision, plan.start_after);
  if (!listed) {
    if (plan.continuing && listed.error().code == 410) {
      return respond_error(
          ex, api::ApiError::expired(
                  "The provided continue parameter is too old to display a consistent list "
                  "result. You can start a new list without the continue parameter, or use the "
                  "continue token in this response to retrieve the remainder of the results. "
                  "Continuing with the provided token results in an inconsistent list - objects "
                  "that were created, modified, or deleted between the time the first chunk was "
                  "returned and now may show up in the list."));
    }
    return respond_error(ex, listed.error());
  }
  const int64_t list_rv = listed->revision;
  std::vector<storage::ObjectPtr> items;
  std::string continue_key;
  std::size_t remaining = 0;
  bool counting = false;
  for (const auto& object : listed->objects) {
    if (!plan.labels.matches(object->attributes) || !plan.fields.matches(object->attributes)) {
      continue;
    }
    if (counting) {
      ++remaining;
      continue;
    }
    items.push_back(object);
    if (plan.limit > 0 && static_cast<int64_t>(items.size()) == plan.limit) {
      continue_key = object->key;
      counting = true;
    }
  }
  std::string continue_token;
  if (counting && remaining > 0) {
    continue_token = api::encode_continue({list_rv, continue_key});
  }
  // Every form is made item by item from the cache's bytes, never as one tree of every object
  // (kubectl get --chunk-size=0 over 10,000 objects held every parsed object at once, 235 MB).
  http::Response r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", plan.negotiated.content_type());
  if (plan.negotiated.kind == api::MediaKind::kTable) {
    r.body = api::encode_table(
        plan.negotiated.table_api_version, table_columns(), items.size(),
        [&](std::size_t i) { return table_row(parse_cached(items[i]->bytes)); }, plan.include,
        std::to_string(list_rv), continue_token);
    return ex->respond(std::move(r));
  }
  json meta = {{"resourceVersion", std::to_string(list_rv)}};
  if (!continue_token.empty()) {
    meta["continue"] = continue_token;
    if (plan.labels.empty() && plan.fields.empty()) meta["remainingItemCount"] = remaining;
  }
  if (plan.negotiated.kind == api::MediaKind::kYaml) {
    const json list = {{"kind", kListKind}, {"apiVersion", kApiVersion}, {"metadata", meta},
                       {"items", json::array()}};
    r.body = api::to_yaml_list(list, items.size(),
                               [&](std::size_t i) { return parse_cached(items[i]->bytes); });
    return ex->respond(std::move(r));
  }
  // JSON: the cached bytes of each item, joined (the keys in nlohmann's order, as any other
  // response of ours). The items are sent from the cache's own bytes, not copied into a body.
  static const auto comma = std::make_shared<const std::string>(",");
  r.body.append(R"({"apiVersion":")").append(kApiVersion).append(R"(","items":[)");
  r.body_parts.reserve(2 * items.size() + 1);
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) r.body_parts.push_back(comma);
    // Shares the object's ownership: the bytes live until the response is written.
    r.body_parts.emplace_back(items[i], &items[i]->bytes);
  }
  r.body_parts.push_back(std::make_shared<const std::string>(
      R"(],"kind":")" + std::string(kListKind) + R"(","metadata":)" + api::dump_json(meta) + "}"));
  ex->respond(std::move(r));
}

void RestHandler::handle_watch(const std::shared_ptr<http::Exchange>& ex,
                               const api::ListRequest& req, const std::string& label_selector,
                               const std::string& field_selector) {
  auto labels = api::LabelSelector::parse(label_selector);
  if (!labels) return respond_error(ex, labels.error());
  auto fields = api::FieldSelector::parse(field_selector);
  if (!fields) return respond_error(ex, fields.error());
  auto negotiated = api::negotiate_accept(ex->header()["Accept"], true, false);
  if (!negotiated) return respond_error(ex, negotiated.error());
  auto include = api::parse_include_object(ex->query_param("includeObject"));
  if (!include) return respond_error(ex, include.error());

  auto session = std::make_shared<WatchSession>(ex, cancels_->get_executor(), *labels, *fields,
                                                *negotiated, *include,
                                                options_.max_watch_pending_bytes);
  ex->on_close([session] { session->stop(); });
  http::ResponseHead head;
  head.status = 200;
  head.headers.emplace_back("Content-Type", "application/json");
  head.headers.emplace_back("Cache-Control", "no-cache, private");
  ex->begin_stream(std::move(head));

  int64_t rv = *api::parse_resource_version(req.resource_version);
  bool send_initial = req.send_initial_events.has_value()
                          ? *req.send_initial_events
                          : (req.resource_version.empty() || rv == 0);
  std::weak_ptr<WatchSession> weak = session;
  storage::WatchCache::Sink sink = [weak](const std::vector<storage::EventPtr>& events) {
    if (auto s = weak.lock()) s->on_events(events);
  };
  storage::WatchCache::ErrorSink on_error = [weak](const api::ApiError& e) {
    if (auto s = weak.lock()) s->send_error_and_stop(e);
  };
  if (send_initial) {
    // The initial state is the current one: with resourceVersion unset, once the cache holds
    // every acknowledged write (as a list would); with "0", whatever the cache has.
    const bool bookmark_end = req.send_initial_events.value_or(false);
    auto begin = [this, session, sink, on_error, bookmark_end] {
      storage::WatchCache::Snapshot initial;
      auto watch = cache_->watch(0, sink, on_error, &initial);
      if (!watch) return session->send_error_and_stop(watch.error());
      session->attach(std::move(*watch));
      session->send_initial(initial, bookmark_end);
    };
    if (!req.resource_version.empty()) {
      begin();
    } else {
      cache_->when_fresh(store_.current_revision(), [ex, begin = std::move(begin)]() mutable {
        boost::asio::post(ex->executor(), std::move(begin));
      });
    }
  } else {
    int64_t start = std::min(rv, store_.current_revision());
    session->start_at(start);
    auto watch = cache_->watch(start, sink, on_error);
    if (!watch) return session->send_error_and_stop(watch.error());
    session->attach(std::move(*watch));
  }

  std::chrono::seconds timeout;
  if (req.timeout_seconds && *req.timeout_seconds > 0) {
    timeout = std::chrono::seconds(*req.timeout_seconds);
  } else {
    // timeoutSeconds=0 means "not set" to kube-apiserver too (it would otherwise end at once).
    // Like kube-apiserver: a random length in [min, 2*min) spreads re-watches out.
    thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<long long> extra(0, options_.min_watch_timeout.count());
    timeout = options_.min_watch_timeout + std::chrono::seconds(extra(rng));
  }
  session->start_timers(timeout, options_.bookmark_interval, req.allow_watch_bookmarks);
}

// --- writes --------------------------------------------------------------------------------------

void RestHandler::handle_write(const std::shared_ptr<http::Exchange>& ex, const std::string& verb,
                               const std::string& name, bool status) {
  auto negotiated = api::negotiate_accept(ex->header()["Accept"], false, true);
  if (!negotiated) return respond_error(ex, negotiated.error());
  const std::string options_kind = verb == "create"   ? "CreateOptions"
                                   : verb == "update" ? "UpdateOptions"
                                   : verb == "patch"  ? "PatchOptions"
                                                      : "DeleteOptions";
  WriteRequest req;
  req.name = name;
  req.status = status;
  req.user_agent = std::string(ex->header()["User-Agent"]);
  req.content_type = api::media_type(ex->header()["Content-Type"]);
  if (ex->has_query_param("dryRun")) {
    std::string v = ex->query_param("dryRun");
    if (auto ok = api::validate_dry_run({v}, options_kind); !ok) return respond_error(ex, ok.error());
    req.dry_run = true;
  }
  if (verb != "delete") {
    req.field_manager = ex->query_param("fieldManager");
    if (auto ok = api::validate_field_manager(req.field_manager, options_kind); !ok) {
      return respond_error(ex, ok.error());
    }
    auto validation = api::parse_field_validation(ex->query_param("fieldValidation"), options_kind);
    if (!validation) return respond_error(ex, validation.error());
    req.validation = *validation;
  }
  if (verb == "patch") {
    if (ex->has_query_param("force")) {
      auto f = api::parse_bool_param(ex->query_param("force"));
      if (!f) return respond_error(ex, api::ApiError::bad_request("invalid value for force"));
      req.force = *f;
    }
    const std::string& ct = req.content_type;
    if (ct == "application/strategic-merge-patch+json" ||
        (ct != "application/json-patch+json" && ct != "application/merge-patch+json" &&
         ct != "application/apply-patch+yaml")) {
      return respond_error(ex, api::ApiError::unsupported_media_type(kUnsupportedPatch));
    }
    if (ct == "application/apply-patch+yaml" && req.field_manager.empty()) {
      return respond_error(ex, api::ApiError::invalid(
                                   "PatchOptions", "meta.k8s.io", "",
                                   {{"FieldValueRequired",
                                     "Required value: is required for apply patch",
                                     "fieldManager"}}));
    }
    if (ct != "application/apply-patch+yaml" && req.force) {
      return respond_error(ex, api::ApiError::invalid(
                                   "PatchOptions", "meta.k8s.io", "",
                                   {{"FieldValueInvalid",
                                     "Invalid value: true: may not be specified for non-apply "
                                     "patch",
                                     "force"}}));
    }
  } else if (verb == "create" || verb == "update") {
    const std::string& ct = req.content_type;
    if (!ct.empty() && ct != "application/json" && ct != "application/yaml") {
      return respond_error(ex, api::ApiError::unsupported_media_type(kUnsupportedBody));
    }
  }
  auto out = *negotiated;
  ex->read_body(options_.max_body_bytes, [this, ex, verb, req = std::move(req),
                                          out](api::Expected<std::string> body) mutable {
    if (!body) return respond_error(ex, body.error());
    req.body = std::move(*body);
    boost::asio::post(blocking_, [this, ex, verb, req = std::move(req), out] {
      api::Expected<WriteResult> result = api::ApiError::internal("unknown verb");
      if (verb == "create") {
        result = create(req);
      } else if (verb == "update") {
        result = update(req);
      } else if (verb == "patch") {
        result = patch(req);
      } else if (verb == "delete") {
        result = remove(req);
      }
      if (!result) return respond_error(ex, result.error());
      respond_json(ex, result->code, result->object, out, result->warnings);
    });
  });
}

void RestHandler::handle_delete_collection(const std::shared_ptr<http::Exchange>& ex) {
  auto negotiated = api::negotiate_accept(ex->header()["Accept"], false, true);
  if (!negotiated) return respond_error(ex, negotiated.error());
  bool dry_run = false;
  if (ex->has_query_param("dryRun")) {
    if (auto ok = api::validate_dry_run({ex->query_param("dryRun")}, "DeleteOptions"); !ok) {
      return respond_error(ex, ok.error());
    }
    dry_run = true;
  }
  // Validate the selectors on the I/O thread so errors are cheap.
  std::string label_selector = ex->query_param("labelSelector");
  std::string field_selector = ex->query_param("fieldSelector");
  if (auto l = api::LabelSelector::parse(label_selector); !l) return respond_error(ex, l.error());
  if (auto f = api::FieldSelector::parse(field_selector); !f) return respond_error(ex, f.error());
  auto out = *negotiated;
  boost::asio::post(blocking_, [this, ex, label_selector, field_selector, dry_run, out] {
    auto result = remove_collection(label_selector, field_selector, dry_run);
    if (!result) return respond_error(ex, result.error());
    respond_json(ex, result->code, result->object, out, result->warnings);
  });
}

}  // namespace dpa::dataplaneservice
