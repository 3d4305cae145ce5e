// Matching works on the raw path split into segments once per request. Every DataPlaneService gets
// a ServiceMatcher built when the table is built: which built-in endpoints it enables, and its
// route templates pre-split into segments. Nothing is compiled or allocated per request except the
// RouteMatch itself.
//
// Route services (spec.services[type=route].path) are mounted under /apis/{g}/{v}/namespaces/{ns},
// as in Grafana's HTTP-backend proof of concept (reference grafana-aggregator-behaviour.md §2.6):
// plugin routes are tenant data, and Kubernetes authorizers key on the namespace.
#include "aggregator/dataplane/route_table.h"

#include "aggregator/http/wire.h"
#include "aggregator/observability/log.h"

#include <algorithm>
#include <array>
#include <unordered_set>

namespace dpa::dataplane {
namespace {

constexpr std::size_t kMaxSegments = 64;

bool is_dot_segment(std::string_view s) {
  if (s == "." || s == "..") return true;
  if (s.find('%') == std::string_view::npos) return false;
  std::string d = http::percent_decode(s);
  return d == "." || d == "..";
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Splits "/a/b/c" into {a, b, c}, recording where each segment starts so a raw remainder can be
// cut out of the original path. Only the first kMaxSegments are kept: every endpoint is decided by
// its first few segments, and what follows them (a proxy or resource path, a {rest...} parameter)
// is taken raw from the path, so a path of any length routes the same. `count` is the full count.
// Returns false when any segment is a dot segment: those are never handed to a plugin (the HTTP
// session refuses them first; this keeps the table safe on its own).
struct Segments {
  std::array<std::string_view, kMaxSegments> parts;
  std::array<std::size_t, kMaxSegments> offsets;  // offset of parts[i] in the split string
  std::size_t count = 0;

  bool kept(std::size_t i) const { return i < count && i < kMaxSegments; }
};

bool split(std::string_view path, Segments& out) {
  // path starts with '/'.
  std::size_t pos = 1;
  while (pos <= path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    const std::string_view part = path.substr(pos, next - pos);
    if (is_dot_segment(part)) return false;
    if (out.count < kMaxSegments) {
      out.parts[out.count] = part;
      out.offsets[out.count] = pos;
    }
    ++out.count;
    pos = next + 1;
  }
  return true;
}

struct TemplateSegment {
  std::string literal;  // when !is_param
  std::string param;    // name inside {}
  bool is_param = false;
  bool is_rest = false;  // {name...}: matches the remainder (possibly empty)
};

struct CompiledRoute {
  const dataplaneservice::Service* service = nullptr;
  std::string method;  // upper-case; empty = any
  std::vector<TemplateSegment> segments;
};

std::vector<TemplateSegment> compile_template(std::string_view path) {
  std::vector<TemplateSegment> out;
  std::size_t pos = 0;
  while (pos < path.size()) {
    while (pos < path.size() && path[pos] == '/') ++pos;
    if (pos >= path.size()) break;
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view seg = path.substr(pos, next - pos);
    TemplateSegment t;
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      std::string_view name = seg.substr(1, seg.size() - 2);
      t.is_param = true;
      if (name.size() > 3 && name.substr(name.size() - 3) == "...") {
        t.is_rest = true;
        name.remove_suffix(3);
      }
      t.param = std::string(name);
    } else {
      t.literal = std::string(seg);
    }
    out.push_back(std::move(t));
    pos = next;
  }
  return out;
}

}  // namespace

const char* endpoint_name(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kQuery: return "query";
    case Endpoint::kHealth: return "health";
    case Endpoint::kResource: return "resource";
    case Endpoint::kRoute: return "route";
    case Endpoint::kStream: return "stream";
    case Endpoint::kDatasourceProxy: return "datasource-proxy";
    case Endpoint::kMetrics: return "metrics";
    case Endpoint::kAdmissionValidate: return "admission-validate";
    case Endpoint::kAdmissionMutate: return "admission-mutate";
    case Endpoint::kConversion: return "conversion";
  }
  return "unknown";
}

// Everything one DataPlaneService routes, decided at build time.
class ServiceMatcher {
 public:
  explicit ServiceMatcher(std::shared_ptr<const ServiceEntry> entry) : entry_(std::move(entry)) {
    for (const auto& s : entry_->spec.services) {
      if (s.type == "query") query_ = true;
      else if (s.type == "health") health_ = true;
      else if (s.type == "stream") stream_ = true;
      else if (s.type == "datasource-proxy" || s.type == "datsource-proxy") proxy_ = true;
      else if (s.type == "metrics") metrics_ = true;
      else if (s.type == "admission") admission_ = true;
      else if (s.type == "conversion") conversion_ = true;
      else if (s.type == "route") {
        // A route service turns on the datasource resources endpoint, and its own path (if any).
        resources_ = true;
        if (!s.path.empty()) {
          CompiledRoute r;
          r.service = &s;
          r.method = upper(s.method);
          r.segments = compile_template(s.path);
          routes_.push_back(std::move(r));
        }
      }
    }
  }

  // `rest` is the path after /apis/{g}/{v}, starting with '/'.
  std::optional<RouteMatch> match(std::string_view method, std::string_view rest) const {
    Segments seg;
    if (!split(rest, seg)) return std::nullopt;
    const auto& p = seg.parts;
    const std::size_t n = seg.count;

    // Cluster-level endpoints.
    if (n == 1 && p[0] == "metrics" && metrics_) return fixed(Endpoint::kMetrics, method, "GET");
    if (n == 1 && p[0] == "conversion" && conversion_) {
      return fixed(Endpoint::kConversion, method, "POST");
    }
    if (n == 2 && p[0] == "admission" && admission_) {
      if (p[1] == "validate") return fixed(Endpoint::kAdmissionValidate, method, "POST");
      if (p[1] == "mutate") return fixed(Endpoint::kAdmissionMutate, method, "POST");
    }

    if (n < 3 || p[0] != "namespaces" || p[1].empty()) return std::nullopt;

    // Datasource endpoints: namespaces/{ns}/datasources/{uid}/<kind>[/...].
    if (n >= 5 && !p[3].empty()) {
      const std::string_view kind = p[4];
      if (p[2] == "datasources" || p[2] == "connections") {
        if (n == 5 && kind == "query" && query_) {
          return datasource(Endpoint::kQuery, method, "POST", p[1], p[3], {});
        }
      }
      if (p[2] == "datasources") {
        if (n == 5 && kind == "health" && health_) {
          return datasource(Endpoint::kHealth, method, "GET", p[1], p[3], {});
        }
        const std::string_view remainder =
            n > 5 ? rest.substr(seg.offsets[5]) : std::string_view{};
        if (kind == "resources" && resources_) {
          return datasource(Endpoint::kResource, method, "", p[1], p[3], remainder);
        }
        if (kind == "stream" && stream_) {
          if (method != "GET" && method != "POST") {
            return datasource(Endpoint::kStream, method, "GET, POST", p[1], p[3], remainder, false);
          }
          return datasource(Endpoint::kStream, method, "", p[1], p[3], remainder);
        }
        if (kind == "proxy" && proxy_) {
          return datasource(Endpoint::kDatasourceProxy, method, "", p[1], p[3], remainder);
        }
      }
    }

    if (!routes_.empty()) return match_routes(method, rest, seg);
    return std::nullopt;
  }

 private:
  RouteMatch base(Endpoint endpoint) const {
    RouteMatch m;
    m.service = entry_;
    m.endpoint = endpoint;
    return m;
  }

  RouteMatch fixed(Endpoint endpoint, std::string_view method, const char* allowed) const {
    RouteMatch m = base(endpoint);
    m.method_allowed = method == allowed;
    m.allow = allowed;
    return m;
  }

  RouteMatch datasource(Endpoint endpoint, std::string_view method, const char* allowed,
                        std::string_view ns, std::string_view uid, std::string_view sub,
                        bool allowed_override = true) const {
    RouteMatch m = base(endpoint);
    m.allow = allowed;
    m.method_allowed = allowed_override && (m.allow.empty() || method == allowed);
    m.namespace_name = http::percent_decode(ns);
    m.datasource_uid = http::percent_decode(uid);
    m.sub_path = std::string(sub);
    return m;
  }

  std::optional<RouteMatch> match_routes(std::string_view method, std::string_view rest,
                                         const Segments& seg) const {
    // seg.parts[0] == "namespaces", [1] == ns; templates apply from index 2.
    std::string allow;
    for (const auto& r : routes_) {
      std::vector<std::pair<std::string, std::string>> params;
      if (!match_template(r, rest, seg, params)) continue;
      if (r.method.empty() || r.method == method) {
        RouteMatch m = base(Endpoint::kRoute);
        m.route = r.service;
        m.namespace_name = http::percent_decode(seg.parts[1]);
        m.sub_path = seg.count > 2 ? std::string(rest.substr(seg.offsets[2])) : std::string();
        m.path_params = std::move(params);
        m.allow = r.method;
        return m;
      }
      if (allow.find(r.method) == std::string::npos) {
        if (!allow.empty()) allow += ", ";
        allow += r.method;
      }
    }
    if (allow.empty()) return std::nullopt;
    RouteMatch m = base(Endpoint::kRoute);
    m.method_allowed = false;
    m.allow = std::move(allow);
    m.namespace_name = http::percent_decode(seg.parts[1]);
    return m;
  }

  static bool match_template(const CompiledRoute& r, std::string_view rest, const Segments& seg,
                             std::vector<std::pair<std::string, std::string>>& params) {
    std::size_t i = 2;
    for (std::size_t t = 0; t < r.segments.size(); ++t) {
      const TemplateSegment& ts = r.segments[t];
      if (ts.is_rest) {
        // Decoding the raw remainder gives the same string as decoding each of its segments and
        // joining them with '/'.
        if (i < seg.count && !seg.kept(i)) return false;
        std::string value =
            i < seg.count ? http::percent_decode(rest.substr(seg.offsets[i])) : std::string();
        params.emplace_back(ts.param, std::move(value));
        return true;
      }
      if (!seg.kept(i) || seg.parts[i].empty()) return false;
      if (ts.is_param) {
        params.emplace_back(ts.param, http::percent_decode(seg.parts[i]));
      } else if (seg.parts[i] != ts.literal) {
        return false;
      }
      ++i;
    }
    return i == seg.count;
  }

  std::shared_ptr<const ServiceEntry> entry_;
  bool query_ = false, health_ = false, resources_ = false, stream_ = false, proxy_ = false,
       metrics_ = false, admission_ = false, conversion_ = false;
  std::vector<CompiledRoute> routes_;

  friend class RouteTable;
};

RouteTable::~RouteTable() = default;

std::shared_ptr<const RouteTable> RouteTable::build(std::vector<ServiceEntry> services) {
  std::vector<std::shared_ptr<const ServiceEntry>> shared;
  shared.reserve(services.size());
  for (auto& s : services) shared.push_back(std::make_shared<const ServiceEntry>(std::move(s)));
  return build(std::move(shared));
}

std::optional<std::string> RouteTable::route_key(const dataplaneservice::Spec& spec) {
  if (spec.group.empty() || spec.version.empty() || spec.group.find('/') != std::string::npos ||
      spec.version.find('/') != std::string::npos) {
    return std::nullopt;
  }
  return spec.group + "/" + spec.version;
}

std::shared_ptr<const RouteTable> RouteTable::build(
    std::vector<std::shared_ptr<const ServiceEntry>> services) {
  std::sort(services.begin(), services.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  std::vector<std::pair<std::string, std::shared_ptr<const ServiceEntry>>> changes;
  std::unordered_set<std::string> claimed;
  for (auto& entry : services) {
    auto key = route_key(entry->spec);
    if (!key) {
      obs::warn("dataplaneservice has no routable group/version; skipped", {{"name", entry->name}});
      continue;
    }
    if (!claimed.insert(*key).second) {
      obs::warn("dataplaneservice claims a group/version already routed; ignored",
                {{"name", entry->name}, {"group", entry->spec.group},
                 {"version", entry->spec.version}});
      continue;
    }
    changes.emplace_back(std::move(*key), std::move(entry));
  }
  return empty()->with_changes(changes);
}

std::shared_ptr<const RouteTable> RouteTable::empty() {
  static const std::shared_ptr<const RouteTable> kEmpty = [] {
    std::shared_ptr<RouteTable> table(new RouteTable());
    const auto shard = std::make_shared<const Shard>();
    table->shards_.fill(shard);
    return table;
  }();
  return kEmpty;
}

std::shared_ptr<const RouteTable> RouteTable::with_changes(
    const std::vector<std::pair<std::string, std::shared_ptr<const ServiceEntry>>>& changes)
    const {
  std::shared_ptr<RouteTable> table(new RouteTable());
  table->shards_ = shards_;
  std::array<std::shared_ptr<Shard>, kShards> copied;
  for (const auto& [key, entry] : changes) {
    const std::size_t index = shard_of(key);
    if (!copied[index]) copied[index] = std::make_shared<Shard>(*shards_[index]);
    Shard& shard = *copied[index];
    if (!entry) {
      shard.erase(key);
      continue;
    }
    auto it = shard.find(key);
    if (it != shard.end() && it->second->entry_ == entry) continue;
    shard[key] = std::make_shared<const ServiceMatcher>(entry);
  }
  std::size_t size = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    if (copied[i]) table->shards_[i] = std::move(copied[i]);
    size += table->shards_[i]->size();
  }
  table->size_ = size;
  return table;
}

const ServiceMatcher* RouteTable::find_matcher(std::string_view key) const {
  const Shard& shard = *shards_[shard_of(key)];
  auto it = shard.find(key);
  return it == shard.end() ? nullptr : it->second.get();
}

std::optional<RouteMatch> RouteTable::match(std::string_view method, std::string_view path) const {
  constexpr std::string_view kApis = "/apis/";
  if (path.size() <= kApis.size() || path.substr(0, kApis.size()) != kApis) return std::nullopt;
  const std::size_t g_end = path.find('/', kApis.size());
  if (g_end == std::string_view::npos || g_end == kApis.size()) return std::nullopt;
  std::size_t v_end = path.find('/', g_end + 1);
  if (v_end == std::string_view::npos || v_end == g_end + 1) return std::nullopt;
  // Nothing after /apis/{g}/{v}/ is discovery: delegated.
  if (v_end + 1 >= path.size()) return std::nullopt;
  const ServiceMatcher* matcher = find_matcher(path.substr(kApis.size(), v_end - kApis.size()));
  if (!matcher) return std::nullopt;
  return matcher->match(method, path.substr(v_end));
}

std::shared_ptr<const ServiceEntry> RouteTable::find(std::string_view group,
                                                     std::string_view version) const {
  std::string key;
  key.reserve(group.size() + version.size() + 1);
  key.append(group).append("/").append(version);
  const ServiceMatcher* matcher = find_matcher(key);
  return matcher ? matcher->entry_ : nullptr;
}

std::vector<std::shared_ptr<const ServiceEntry>> RouteTable::services() const {
  std::vector<std::shared_ptr<const ServiceEntry>> out;
  out.reserve(size_);
  for (const auto& shard : shards_) {
    for (const auto& [key, matcher] : *shard) out.push_back(matcher->entry_);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  return out;
}

}  // namespace dpa::dataplane
