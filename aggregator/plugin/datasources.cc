#include "aggregator/plugin/datasources.h"

#include "aggregator/apimachinery/codec.h"
#include "aggregator/observability/log.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace dpa::plugin {
namespace fs = std::filesystem;
namespace {

constexpr std::uintmax_t kMaxProvisioningFileBytes = 4 << 20;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::optional<std::string> read_file(const fs::path& path, std::uintmax_t limit) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec || size > limit) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// os.Expand of one "$$"-free segment, plus Grafana's $__env{} and $__file{}.
std::string expand_segment(std::string_view s, const EnvLookup& env) {
  std::string out;
  auto lookup = [&](const std::string& name) { return env ? env(name).value_or("") : ""; };
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '$' || i + 1 >= s.size()) {
      out.push_back(s[i++]);
      continue;
    }
    std::string_view rest = s.substr(i);
    if (rest.starts_with("$__env{") || rest.starts_with("$__file{")) {
      bool is_env = rest.starts_with("$__env{");
      std::size_t open = is_env ? 7 : 8;
      auto close = rest.find('}', open);
      if (close != std::string_view::npos) {
        std::string arg(rest.substr(open, close - open));
        if (is_env) {
          out += lookup(arg);
        } else {
          out += trim(read_file(arg, kMaxProvisioningFileBytes).value_or(""));
        }
        i += close + 1;
        continue;
      }
    }
    if (s[i + 1] == '{') {
      auto close = s.find('}', i + 2);
      if (close == std::string_view::npos) {  // bad syntax: os.Expand eats "${"
        i += 2;
        continue;
      }
      out += lookup(std::string(s.substr(i + 2, close - i - 2)));
      i = close + 1;
      continue;
    }
    std::size_t j = i + 1;
    while (j < s.size() && is_name_char(s[j])) ++j;
    if (j == i + 1) {  // "$" not followed by a name: left untouched
      out.push_back('$');
      ++i;
      continue;
    }
    out += lookup(std::string(s.substr(i + 1, j - i - 1)));
    i = j;
  }
  return out;
}

bool plain_bool(const std::string& v, bool& out) {
  if (v == "true" || v == "True" || v == "TRUE") return out = true, true;
  if (v == "false" || v == "False" || v == "FALSE") return out = false, true;
  return false;
}

// jsonData the way Grafana's values.JSONValue reads it: a plain scalar keeps its YAML type (bool,
// number, null: the typed decoding did that), and strings, and only strings, are env-expanded.
nlohmann::json expand_strings(nlohmann::json value, const EnvLookup& env) {
  if (value.is_string()) return expand_env(value.get_ref<const std::string&>(), env);
  if (value.is_structured()) {
    for (auto& item : value) item = expand_strings(std::move(item), env);
  }
  return value;
}

// The v1 key, or its v0 (snake_case) spelling; null when neither is there. A key present with a
// null value is there (it hides the other spelling).
const nlohmann::json* field(const nlohmann::json& map, const char* key,
                            const char* v0_key = nullptr) {
  if (auto it = map.find(key); it != map.end()) return &*it;
  if (v0_key) {
    if (auto it = map.find(v0_key); it != map.end()) return &*it;
  }
  return nullptr;
}

// The text of a scalar field (the file is decoded with YamlScalars::kText, so every scalar but a
// null is a string); null when absent, null, a list or a mapping.
const std::string* scalar(const nlohmann::json& map, const char* key, const char* v0_key = nullptr) {
  const nlohmann::json* n = field(map, key, v0_key);
  return n && n->is_string() ? &n->get_ref<const std::string&>() : nullptr;
}

std::string get_string(const nlohmann::json& map, const EnvLookup& env, const char* key,
                       const char* v0_key = nullptr) {
  const std::string* n = scalar(map, key, v0_key);
  return n ? expand_env(*n, env) : std::string();
}

bool get_bool(const nlohmann::json& map, const EnvLookup& env, const char* key, const char* v0_key,
              std::vector<std::string>& errors) {
  const std::string* n = scalar(map, key, v0_key);
  if (!n) return false;
  std::string v = expand_env(*n, env);
  bool b = false;
  if (plain_bool(v, b)) return b;
  if (v == "1" || v == "t" || v == "T") return true;
  if (v == "0" || v == "f" || v == "F" || v.empty()) return false;
  errors.push_back(std::string(key) + ": not a boolean: \"" + v + "\"");
  return false;
}

std::int64_t get_int(const nlohmann::json& map, const EnvLookup& env, const char* key,
                     const char* v0_key, std::int64_t def, std::vector<std::string>& errors) {
  const std::string* n = scalar(map, key, v0_key);
  if (!n) return def;
  std::string v = expand_env(*n, env);
  if (v.empty()) return def;
  try {
    std::size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  errors.push_back(std::string(key) + ": not an integer: \"" + v + "\"");
  return def;
}

std::string generated_uid(std::int64_t org_id, const std::string& name) {
  // Stable across reloads (the uid is how requests find a datasource); FNV-1a of org/name.
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : std::to_string(org_id) + "/" + name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "p%014llx", static_cast<unsigned long long>(h >> 8));
  return buf;
}

api::ApiError file_error(const std::string& source, const std::string& why) {
  return api::ApiError::bad_request("datasource provisioning " + source + ": " + why);
}

}  // namespace

nlohmann::json Datasource::settings_json() const {
  return {{"uid", uid},
          {"name", name},
          {"type", type},
          {"access", access},
          {"url", url},
          {"user", user},
          {"database", database},
          {"basicAuth", basic_auth},
          {"basicAuthUser", basic_auth_user},
          {"withCredentials", with_credentials},
          {"isDefault", is_default},
          {"editable", editable},
          {"orgId", org_id},
          {"version", version},
          {"apiVersion", api_version},
          {"jsonData", json_data},
          {"secureJsonData", secure_json_data}};
}

DatasourceSet::DatasourceSet(std::vector<Datasource> datasources)
    : datasources_(std::move(datasources)) {}

const Datasource* DatasourceSet::find(std::string_view uid, std::int64_t org_id) const {
  for (const auto& ds : datasources_) {
    if (ds.uid == uid && (org_id <= 0 || ds.org_id == org_id)) return &ds;
  }
  return nullptr;
}

std::string expand_env(std::string_view value, const EnvLookup& env) {
  // Grafana splits on "$$" first, so "$$" is a literal "$" that never starts a variable.
  std::string out;
  std::size_t start = 0;
  while (true) {
    auto pos = value.find("$$", start);
    if (pos == std::string_view::npos) {
      out += expand_segment(value.substr(start), env);
      return out;
    }
    out += expand_segment(value.substr(start, pos - start), env);
    out.push_back('$');
    start = pos + 2;
  }
}

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

api::Expected<ProvisioningFile> parse_provisioning_yaml(std::string_view text,
                                                        const std::string& source,
                                                        const EnvLookup& env) {
  // libyaml, as for request bodies: yaml-cpp 0.7 loops for ever on some malformed input (what
  // fuzz_body_decode found). Fields are read as the text they spell (`password: 007` is "007");
  // jsonData needs the YAML types, so it comes from a second, typed decoding of the same text,
  // made only when some datasource has jsonData. As yaml-cpp's Load did, only the first document
  // counts.
  auto decoded = api::decode_yaml(text, api::YamlScalars::kText, 1);
  if (!decoded) return file_error(source, "invalid YAML: " + decoded.error().message);
  std::optional<nlohmann::json> typed;
  auto typed_json_data = [&](std::size_t index) -> api::Expected<nlohmann::json> {
    if (!typed) {
      auto docs = api::decode_yaml(text, api::YamlScalars::kJson, 1);
      if (!docs) return file_error(source, "invalid YAML: " + docs.error().message);
      typed = docs->empty() ? nlohmann::json() : std::move(docs->front());
    }
    const nlohmann::json* n = nullptr;
    if (auto list = typed->find("datasources"); list != typed->end() && list->is_array() &&
                                                index < list->size() && (*list)[index].is_object()) {
      n = field((*list)[index], "jsonData", "json_data");
    }
    return n ? *n : nlohmann::json();
  };
  ProvisioningFile out;
  if (decoded->empty()) return out;  // an empty file provisions nothing
  const nlohmann::json& root = decoded->front();
  if (!root.is_object()) return file_error(source, "top level must be a mapping");
  std::vector<std::string> errors;
  std::int64_t api_version = get_int(root, env, "apiVersion", nullptr, 0, errors);
  if (api_version != 0 && api_version != 1) {
    return file_error(source, "unsupported apiVersion " + std::to_string(api_version));
  }
  if (const nlohmann::json* dels = field(root, "deleteDatasources")) {
    if (!dels->is_array()) return file_error(source, "deleteDatasources must be a list");
    for (const auto& d : *dels) {
      if (!d.is_object()) return file_error(source, "deleteDatasources entries must be mappings");
      out.deletes.emplace_back(get_string(d, env, "name"),
                               get_int(d, env, "orgId", "org_id", 1, errors));
    }
  }
  if (const nlohmann::json* list = field(root, "datasources"); list && !list->is_null()) {
    if (!list->is_array()) return file_error(source, "datasources must be a list");
    std::size_t index = 0;
    for (const auto& n : *list) {
      std::string where = "datasources[" + std::to_string(index) + "]";
      if (!n.is_object()) return file_error(source, where + " must be a mapping");
      std::vector<std::string> errs;
      Datasource ds;
      ds.name = get_string(n, env, "name");
      ds.type = get_string(n, env, "type");
      ds.uid = get_string(n, env, "uid");
      ds.access = get_string(n, env, "access");
      ds.url = get_string(n, env, "url");
      ds.user = get_string(n, env, "user");
      ds.database = get_string(n, env, "database");
      ds.basic_auth = get_bool(n, env, "basicAuth", "basic_auth", errs);
      ds.basic_auth_user = get_string(n, env, "basicAuthUser", "basic_auth_user");
      ds.with_credentials = get_bool(n, env, "withCredentials", "with_credentials", errs);
      ds.is_default = get_bool(n, env, "isDefault", "is_default", errs);
      ds.editable = get_bool(n, env, "editable", nullptr, errs);
      ds.org_id = get_int(n, env, "orgId", "org_id", 1, errs);
      if (ds.org_id <= 0) ds.org_id = 1;
      ds.version = get_int(n, env, "version", nullptr, 0, errs);
      ds.api_version = get_string(n, env, "apiVersion");
      if (const nlohmann::json* jd = field(n, "jsonData", "json_data"); jd && !jd->is_null()) {
        if (!jd->is_object()) {
          errs.push_back("jsonData must be a mapping");
        } else {
          auto json_data = typed_json_data(index);
          if (!json_data) return json_data.error();
          ds.json_data = expand_strings(std::move(*json_data), env);
        }
      }
      if (const nlohmann::json* sjd = field(n, "secureJsonData", "secure_json_data");
          sjd && !sjd->is_null()) {
        if (!sjd->is_object()) {
          errs.push_back("secureJsonData must be a mapping");
        } else {
          for (const auto& [key, value] : sjd->items()) {
            if (!value.is_string()) {
              errs.push_back("secureJsonData." + key + " must be a string");
              continue;
            }
            ds.secure_json_data[key] = expand_env(value.get_ref<const std::string&>(), env);
          }
        }
      }
      // The deprecated top-level secrets still reach plugins the way Grafana migrates them.
      if (auto pw = get_string(n, env, "password"); !pw.empty()) {
        ds.secure_json_data.emplace("password", pw);
      }
      if (auto pw = get_string(n, env, "basicAuthPassword", "basic_auth_password"); !pw.empty()) {
        ds.secure_json_data.emplace("basicAuthPassword", pw);
      }
      if (ds.name.empty()) errs.push_back("name is required");
      if (ds.type.empty()) errs.push_back("type is required");
      if (!errs.empty()) {
        std::string joined;
        for (const auto& e : errs) joined += (joined.empty() ? "" : "; ") + e;
        return file_error(source, where + ": " + joined);
      }
      if (ds.uid.empty()) ds.uid = generated_uid(ds.org_id, ds.name);
      out.datasources.push_back(std::move(ds));
      ++index;
    }
  }
  if (!errors.empty()) return file_error(source, errors.front());
  return out;
}

api::Expected<std::vector<Datasource>> load_provisioning(const fs::path& path,
                                                         const EnvLookup& env) {
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(path, ec)) {
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      auto ext = it->path().extension().string();
      std::error_code type_ec;
      if ((ext == ".yaml" || ext == ".yml") && it->is_regular_file(type_ec)) {
        files.push_back(it->path());
      }
    }
    if (ec) return file_error(path.string(), "cannot list directory: " + ec.message());
    std::sort(files.begin(), files.end());
  } else if (fs::is_regular_file(path, ec)) {
    files.push_back(path);
  } else {
    return file_error(path.string(), "no such file or directory");
  }

  std::vector<Datasource> merged;
  for (const auto& file : files) {
    auto text = read_file(file, kMaxProvisioningFileBytes);
    if (!text) return file_error(file.string(), "cannot read (or larger than 4 MiB)");
    auto parsed = parse_provisioning_yaml(*text, file.string(), env);
    if (!parsed) return parsed.error();
    for (const auto& del : parsed->deletes) {
      std::erase_if(merged, [&](const Datasource& d) {
        return d.name == del.first && d.org_id == del.second;
      });
    }
    for (auto& ds : parsed->datasources) {
      auto it = std::find_if(merged.begin(), merged.end(), [&](const Datasource& d) {
        return d.name == ds.name && d.org_id == ds.org_id;
      });
      if (it != merged.end()) {
        *it = std::move(ds);
      } else {
        merged.push_back(std::move(ds));
      }
    }
  }
  std::set<std::int64_t> orgs_with_default;
  std::set<std::pair<std::int64_t, std::string>> uids;
  for (const auto& ds : merged) {
    if (ds.is_default && !orgs_with_default.insert(ds.org_id).second) {
      return file_error(path.string(),
                        "only one datasource per organization can be marked as default (org " +
                            std::to_string(ds.org_id) + ")");
    }
    if (!uids.emplace(ds.org_id, ds.uid).second) {
      return file_error(path.string(), "duplicate datasource uid \"" + ds.uid + "\" in org " +
                                           std::to_string(ds.org_id));
    }
  }
  return merged;
}

DatasourceProvider::DatasourceProvider(fs::path path, EnvLookup env)
    : path_(std::move(path)), env_(std::move(env)) {
  snapshot_.store(std::make_shared<const DatasourceSet>());
}

DatasourceProvider::~DatasourceProvider() { stop_watching(); }

api::Outcome DatasourceProvider::reload() {
  std::vector<std::function<void(std::shared_ptr<const DatasourceSet>)>> callbacks;
  std::shared_ptr<const DatasourceSet> next;
  {
    std::lock_guard<std::mutex> lock(reload_mu_);
    if (path_.empty()) return api::Ok{};
    // Fingerprint before reading, so a write racing with this reload triggers another one.
    last_fingerprint_ = fingerprint();
    auto loaded = load_provisioning(path_, env_);
    if (!loaded) {
      obs::error("datasource provisioning not reloaded; keeping the previous datasources",
                 {{"path", path_.string()}, {"error", loaded.error().message}});
      return loaded.error();
    }
    auto prev = snapshot_.load();
    const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    bool changed = prev->all().size() != loaded->size();
    for (auto& ds : *loaded) {
      std::string key = std::to_string(ds.org_id) + "/" + ds.uid;
      auto [it, inserted] = ids_.emplace(key, next_id_);
      if (inserted) ++next_id_;
      ds.id = it->second;
      const Datasource* old = prev->find(ds.uid, ds.org_id);
      if (old && old->settings_json() == ds.settings_json()) {
        ds.last_updated_ms = old->last_updated_ms;
      } else {
        // Go plugins cache instances per lastUpdatedMS: it must grow on every change.
        ds.last_updated_ms = old ? std::max(now_ms, old->last_updated_ms + 1) : now_ms;
        changed = true;
      }
    }
    if (!changed) return api::Ok{};
    next = std::make_shared<const DatasourceSet>(std::move(*loaded));
    snapshot_.store(next);
    callbacks = callbacks_;
    obs::info("datasources provisioned",
              {{"path", path_.string()}, {"count", next->all().size()}});
  }
  for (const auto& cb : callbacks) cb(next);
  return api::Ok{};
}

std::string DatasourceProvider::fingerprint() const {
  std::error_code ec;
  std::string fp;
  auto add = [&](const fs::path& p) {
    std::error_code e;
    auto mtime = fs::last_write_time(p, e).time_since_epoch().count();
    auto size = fs::file_size(p, e);
    fp += p.string() + ":" + std::to_string(mtime) + ":" + std::to_string(size) + ";";
  };
  if (fs::is_directory(path_, ec)) {
    std::vector<fs::path> files;
    for (fs::directory_iterator it(path_, ec), end; !ec && it != end; it.increment(ec)) {
      files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto ext = f.extension().string();
      if (ext == ".yaml" || ext == ".yml") add(f);
    }
    return "dir;" + fp;
  }
  if (fs::exists(path_, ec)) {
    add(path_);
    return "file;" + fp;
  }
  return "missing";
}

void DatasourceProvider::start_watching(std::chrono::milliseconds interval) {
  if (path_.empty() || watcher_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    stop_ = false;
  }
  watcher_ = std::thread([this, interval] { watch_loop(interval); });
}

void DatasourceProvider::stop_watching() {
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    stop_ = true;
    watch_cv_.notify_all();
  }
  if (watcher_.joinable()) watcher_.join();
}

void DatasourceProvider::watch_loop(std::chrono::milliseconds interval) {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(watch_mu_);
      if (watch_cv_.wait_for(lock, interval, [this] { return stop_; })) return;
    }
    std::string fp = fingerprint();
    bool differs;
    {
      std::lock_guard<std::mutex> lock(reload_mu_);
      differs = fp != last_fingerprint_;
    }
    if (differs) reload();
  }
}

std::optional<Datasource> DatasourceProvider::find(std::string_view uid, std::int64_t org_id) const {
  auto snap = snapshot();
  const Datasource* ds = snap->find(uid, org_id);
  if (!ds) return std::nullopt;
  return *ds;
}

void DatasourceProvider::on_change(std::function<void(std::shared_ptr<const DatasourceSet>)> cb) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  callbacks_.push_back(std::move(cb));
}

std::int64_t org_id_from_namespace(std::string_view ns) {
  if (ns.starts_with("org-")) {
    std::string digits(ns.substr(4));
    if (!digits.empty() && std::all_of(digits.begin(), digits.end(), ::isdigit)) {
      try {
        auto id = std::stoll(digits);
        if (id > 0) return id;
      } catch (const std::exception&) {
      }
    }
  }
  return 1;
}

std::string grafana_user_agent(const std::string& grafana_version) {
  return "Grafana/" + grafana_version + " (linux; " + host_arch() + ")";
}

pluginv2::PluginContext build_plugin_context(const PluginInfo& plugin, const Datasource* ds,
                                             const RequestUser* user, const std::string& ns,
                                             const std::map<std::string, std::string>& grafana_config,
                                             const std::string& user_agent) {
  pluginv2::PluginContext ctx;
  ctx.set_pluginid(plugin.id);
  ctx.set_pluginversion(plugin.version);
  ctx.set_orgid(ds ? ds->org_id : 1);
  if (ds) {
    auto* s = ctx.mutable_datasourceinstancesettings();
    s->set_id(ds->id);
    s->set_uid(ds->uid);
    s->set_name(ds->name);
    s->set_url(ds->url);
    s->set_user(ds->user);
    s->set_database(ds->database);
    s->set_basicauthenabled(ds->basic_auth);
    s->set_basicauthuser(ds->basic_auth_user);
    // Go plugins json.Unmarshal this: never send empty bytes.
    s->set_jsondata(ds->json_data.is_null() ? "{}" : api::dump_json(ds->json_data));
    for (const auto& [k, v] : ds->secure_json_data) (*s->mutable_decryptedsecurejsondata())[k] = v;
    s->set_lastupdatedms(ds->last_updated_ms);
    s->set_apiversion(ds->api_version);
  } else if (plugin.type == "app") {
    auto* a = ctx.mutable_appinstancesettings();
    a->set_jsondata("{}");
  }
  if (user) {
    auto* u = ctx.mutable_user();
    u->set_login(user->login);
    u->set_name(user->name);
    u->set_email(user->email);
    u->set_role(user->role);
  }
  for (const auto& [k, v] : grafana_config) (*ctx.mutable_grafanaconfig())[k] = v;
  ctx.set_useragent(user_agent);
  ctx.set_namespace_(ns);
  return ctx;
}

}  // namespace dpa::plugin
