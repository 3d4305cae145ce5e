#include "aggregator/app/config.h"

#include "aggregator/apimachinery/codec.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace dpa::app {
namespace {

// One flag: its help text and how it stores a value into Config.
struct Flag {
  std::string help;
  std::function<void(Config&, const std::string&)> set;
  bool repeatable = false;
  bool boolean = false;
};

int to_int(const std::string& name, const std::string& value) {
  try {
    std::size_t used = 0;
    long long v = std::stoll(value, &used);
    if (used != value.size()) throw std::invalid_argument(value);
    return static_cast<int>(v);
  } catch (const std::exception&) {
    throw ConfigError("--" + name + ": not an integer: \"" + value + "\"");
  }
}

bool to_bool(const std::string& name, const std::string& value) {
  if (value == "true" || value == "1" || value.empty()) return true;
  if (value == "false" || value == "0") return false;
  throw ConfigError("--" + name + ": not a boolean: \"" + value + "\"");
}

std::chrono::seconds to_seconds(const std::string& name, const std::string& value) {
  // Accepts "30", "30s", "5m", "1h".
  if (value.empty()) throw ConfigError("--" + name + ": empty duration");
  char unit = value.back();
  long long scale = 1;
  std::string digits = value;
  if (unit == 's' || unit == 'm' || unit == 'h') {
    digits.pop_back();
    scale = unit == 'm' ? 60 : unit == 'h' ? 3600 : 1;
  }
  int n = to_int(name, digits);
  if (n < 0) throw ConfigError("--" + name + ": negative duration");
  return std::chrono::seconds(n * scale);
}

std::size_t to_size(const std::string& name, const std::string& value) {
  int n = to_int(name, value);
  if (n <= 0) throw ConfigError("--" + name + ": must be positive");
  return static_cast<std::size_t>(n);
}

std::size_t to_count(const std::string& name, const std::string& value) {
  int n = to_int(name, value);
  if (n < 0) throw ConfigError("--" + name + ": must not be negative");
  return static_cast<std::size_t>(n);
}

// "a,b,c" -> {a, b, c}: kube's string-slice flags.
std::vector<std::string> to_list(const std::string& value) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t comma = value.find(',', start);
    if (comma == std::string::npos) comma = value.size();
    if (comma > start) out.push_back(value.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

const std::map<std::string, Flag>& flags() {
  static const std::map<std::string, Flag> table = {
      {"bind-address", {"address to listen on (default 127.0.0.1)",
                        [](Config& c, const std::string& v) { c.bind_address = v; }}},
      {"port", {"plain HTTP port; 0 picks a free port, -1 disables (default 8080)",
                [](Config& c, const std::string& v) { c.port = to_int("port", v); }}},
      {"secure-port", {"HTTPS port (the kubeconfig's server: kubectl sends tokens only over TLS); 0 picks a "
                       "free port, -1 disables (default 8443)",
                       [](Config& c, const std::string& v) { c.secure_port = to_int("secure-port", v); }}},
      {"tls-cert-file", {"PEM certificate for HTTPS; without it a self-signed one is generated "
                         "into the data dir",
                         [](Config& c, const std::string& v) { c.tls_cert_file = v; }}},
      {"tls-private-key-file", {"PEM private key for --tls-cert-file",
                                [](Config& c, const std::string& v) { c.tls_private_key_file = v; }}},
      {"data-dir", {"directory for the store, kubeconfig and generated certificates",
                    [](Config& c, const std::string& v) { c.data_dir = v; }}},
      {"plugins-dir", {"Grafana plugin directory to load backend plugins from (repeatable)",
                       [](Config& c, const std::string& v) { c.plugins_dirs.push_back(v); }, true}},
      {"plugin-address", {"attach to a running plugin: <plugin id>=<unix:/path|host:port> (repeatable)",
                          [](Config& c, const std::string& v) { c.plugin_addresses.push_back(v); },
                          true}},
      {"datasources", {"Grafana datasource provisioning file or directory (re-read on change)",
                       [](Config& c, const std::string& v) { c.datasources = v; }}},
      {"delegate-url", {"next API server (http or https URL); unrouted requests go there",
                        [](Config& c, const std::string& v) { c.delegate_url = v; }}},
      {"delegate-ca-file", {"CA bundle to verify the delegate's certificate",
                            [](Config& c, const std::string& v) { c.delegate_ca_file = v; }}},
      {"delegate-client-cert-file", {"client certificate presented to the delegate",
                                     [](Config& c, const std::string& v) { c.delegate_client_cert_file = v; }}},
      {"delegate-client-key-file", {"key of --delegate-client-cert-file",
                                    [](Config& c, const std::string& v) { c.delegate_client_key_file = v; }}},
      {"threads", {"I/O threads (default: number of cores)",
                   [](Config& c, const std::string& v) { c.threads = to_int("threads", v); }}},
      {"log-level", {"debug, info, warn or error (default info)",
                     [](Config& c, const std::string& v) { c.log_level = v; }}},
      {"access-log", {"log one line per request (default true)",
                      [](Config& c, const std::string& v) { c.access_log = to_bool("access-log", v); },
                      false, true}},
      {"max-body-bytes", {"largest DataPlaneService API request body (default 3 MiB)",
                          [](Config& c, const std::string& v) { c.max_body_bytes = to_size("max-body-bytes", v); }}},
      {"max-dataplane-body-bytes", {"largest data-plane request body (default 16 MiB)",
                                    [](Config& c, const std::string& v) {
                                      c.max_dataplane_body_bytes = to_size("max-dataplane-body-bytes", v);
                                    }}},
      {"max-header-bytes", {"largest request header block (default 64 KiB; over it: 431)",
                            [](Config& c, const std::string& v) { c.max_header_bytes = to_size("max-header-bytes", v); }}},
      {"max-connections", {"most open client connections (default 10000)",
                           [](Config& c, const std::string& v) { c.max_connections = to_size("max-connections", v); }}},
      {"max-requests-inflight", {"non-mutating requests served at once, past it 429 (default 400; "
                                 "0: no limit; watches and streams are not counted)",
                                 [](Config& c, const std::string& v) {
                                   c.max_requests_inflight = to_count("max-requests-inflight", v);
                                 }}},
      {"max-mutating-requests-inflight", {"mutating requests (data-plane POSTs included) served at "
                                          "once, past it 429 (default 200; 0: no limit)",
                                          [](Config& c, const std::string& v) {
                                            c.max_mutating_requests_inflight =
                                                to_count("max-mutating-requests-inflight", v);
                                          }}},
      {"max-datasource-requests-inflight", {"requests to one datasource served at once, past it "
                                            "429 (default 64; 0: no limit; streams not counted)",
                                            [](Config& c, const std::string& v) {
                                              c.max_datasource_requests_inflight =
                                                  to_count("max-datasource-requests-inflight", v);
                                            }}},
      {"header-timeout", {"time allowed to send the request header (default 10s)",
                          [](Config& c, const std::string& v) { c.header_timeout = to_seconds("header-timeout", v); }}},
      {"idle-timeout", {"keep-alive idle timeout (default 90s)",
                        [](Config& c, const std::string& v) { c.idle_timeout = to_seconds("idle-timeout", v); }}},
      {"request-timeout", {"deadline of non-streaming requests (default 60s; 504 after it)",
                           [](Config& c, const std::string& v) { c.request_timeout = to_seconds("request-timeout", v); }}},
      {"shutdown-grace", {"time in-flight requests get on SIGTERM (default 10s)",
                          [](Config& c, const std::string& v) { c.shutdown_grace = to_seconds("shutdown-grace", v); }}},
      {"plugin-start-timeout", {"time a plugin gets to print its handshake line (default 60s)",
                                [](Config& c, const std::string& v) {
                                  c.plugin_start_timeout = to_seconds("plugin-start-timeout", v);
                                }}},
      {"watch-bookmark-interval", {"interval of watch BOOKMARK events (default 60s)",
                                   [](Config& c, const std::string& v) {
                                     c.bookmark_interval = to_seconds("watch-bookmark-interval", v);
                                   }}},
      {"store-history-revisions", {"revisions of watch history kept before compaction "
                                   "(default 10000; 0: only --store-history-duration counts)",
                                   [](Config& c, const std::string& v) {
                                     c.store_history_revisions = to_int("store-history-revisions", v);
                                   }}},
      {"store-history-duration", {"watch history kept before compaction (default 5m; 0: only "
                                  "--store-history-revisions counts)",
                                  [](Config& c, const std::string& v) {
                                    c.store_history_duration = to_seconds("store-history-duration", v);
                                  }}},
      {"store-compaction-interval", {"how often compaction runs (default 30s; 0: after every write)",
                                     [](Config& c, const std::string& v) {
                                       c.store_compaction_interval =
                                           to_seconds("store-compaction-interval", v);
                                     }}},
      {"storage-backend", {"where DataPlaneServices are stored: sqlite (default; <data-dir>/store.db, "
                           "one replica) or etcd3 (--etcd-servers; any number of replicas)",
                           [](Config& c, const std::string& v) { c.storage_backend = v; }}},
      {"etcd-servers", {"etcd members for --storage-backend=etcd3 (comma list of http(s)://host:port)",
                        [](Config& c, const std::string& v) { c.etcd_servers = to_list(v); }}},
      {"etcd-prefix", {"key prefix of every object in etcd (default /registry/dataplane-aggregator)",
                       [](Config& c, const std::string& v) { c.etcd_prefix = v; }}},
      {"etcd-cafile", {"CA bundle verifying the etcd members (TLS)",
                       [](Config& c, const std::string& v) { c.etcd_cafile = v; }}},
      {"etcd-certfile", {"client certificate presented to etcd (with --etcd-keyfile)",
                         [](Config& c, const std::string& v) { c.etcd_certfile = v; }}},
      {"etcd-keyfile", {"private key of --etcd-certfile",
                        [](Config& c, const std::string& v) { c.etcd_keyfile = v; }}},
      {"etcd-compaction-interval", {"how often one replica compacts etcd's history (default 5m; 0: "
                                    "never)",
                                    [](Config& c, const std::string& v) {
                                      c.etcd_compaction_interval =
                                          to_seconds("etcd-compaction-interval", v);
                                    }}},
      {"replica-id", {"this replica's name in the leader election, logs and metrics (default "
                      "<hostname>:<port>)",
                      [](Config& c, const std::string& v) { c.replica_id = v; }}},
      {"grafana-uid", {"uid of the Grafana these datasources belong to: publishes the datasource "
                       "exchange document (GET /apis/aggregation.grafana.app/v0alpha1/"
                       "datasourceexchange)",
                       [](Config& c, const std::string& v) { c.grafana_uid = v; }}},
      {"datasource-exchange-file", {"also write the datasource exchange document to this file "
                                    "(atomically, whenever it changes; needs --grafana-uid)",
                                    [](Config& c, const std::string& v) {
                                      c.datasource_exchange_file = v;
                                    }}},
      {"grafana-version", {"Grafana version reported to plugins (GF_VERSION, user agent)",
                           [](Config& c, const std::string& v) { c.grafana_version = v; }}},
      {"client-ca-file", {"CA bundle: a client certificate signed by it authenticates as its CN, "
                          "with its O values as groups",
                          [](Config& c, const std::string& v) { c.client_ca_file = v; }}},
      {"requestheader-client-ca-file", {"CA of front proxies whose identity headers are trusted",
                                        [](Config& c, const std::string& v) {
                                          c.requestheader_client_ca_file = v;
                                        }}},
      {"requestheader-allowed-names", {"front-proxy certificate CNs allowed (comma list; empty: any "
                                       "from --requestheader-client-ca-file)",
                                       [](Config& c, const std::string& v) {
                                         c.requestheader_allowed_names = to_list(v);
                                       }}},
      {"requestheader-username-headers", {"headers holding the user name (default X-Remote-User)",
                                          [](Config& c, const std::string& v) {
                                            c.requestheader_username_headers = to_list(v);
                                          }}},
      {"requestheader-uid-headers", {"headers holding the user's UID (default X-Remote-Uid)",
                                     [](Config& c, const std::string& v) {
                                       c.requestheader_uid_headers = to_list(v);
                                     }}},
      {"requestheader-group-headers", {"headers holding the groups (default X-Remote-Group)",
                                       [](Config& c, const std::string& v) {
                                         c.requestheader_group_headers = to_list(v);
                                       }}},
      {"requestheader-extra-headers-prefix", {"header prefixes of user extras (default "
                                              "X-Remote-Extra-)",
                                              [](Config& c, const std::string& v) {
                                                c.requestheader_extra_headers_prefix = to_list(v);
                                              }}},
      {"token-auth-file", {"static bearer tokens, kube's CSV: token,user,uid,\"group1,group2\"",
                           [](Config& c, const std::string& v) { c.token_auth_file = v; }}},
      {"authentication-token-webhook-config-file",
       {"kubeconfig of a TokenReview (authentication.k8s.io/v1) webhook that judges bearer tokens",
        [](Config& c, const std::string& v) { c.authentication_token_webhook_config_file = v; }}},
      {"authentication-token-webhook-cache-ttl",
       {"how long token webhook answers are cached (default 2m)",
        [](Config& c, const std::string& v) {
          c.authentication_token_webhook_cache_ttl = to_seconds("authentication-token-webhook-cache-ttl", v);
        }}},
      {"authorization-webhook-config-file",
       {"kubeconfig of a SubjectAccessReview (authorization.k8s.io/v1) webhook (mode Webhook)",
        [](Config& c, const std::string& v) { c.authorization_webhook_config_file = v; }}},
      {"authorization-webhook-cache-authorized-ttl",
       {"how long allowed webhook answers are cached (default 5m)",
        [](Config& c, const std::string& v) {
          c.authorization_webhook_cache_authorized_ttl = to_seconds("authorization-webhook-cache-authorized-ttl", v);
        }}},
      {"authorization-webhook-cache-unauthorized-ttl",
       {"how long denied webhook answers are cached (default 30s)",
        [](Config& c, const std::string& v) {
          c.authorization_webhook_cache_unauthorized_ttl =
              to_seconds("authorization-webhook-cache-unauthorized-ttl", v);
        }}},
      {"webhook-timeout", {"deadline of one token or authorization webhook call (default 10s; "
                           "past it the token is not authenticated, the webhook has no opinion)",
                           [](Config& c, const std::string& v) {
                             c.webhook_timeout = to_seconds("webhook-timeout", v);
                           }}},
      {"anonymous-auth", {"requests without credentials act as system:anonymous (default false)",
                          [](Config& c, const std::string& v) { c.anonymous_auth = to_bool("anonymous-auth", v); },
                          false, true}},
      {"authorization-mode", {"ordered comma list of AlwaysAllow, AlwaysDeny, ABAC, Webhook "
                              "(default AlwaysAllow; system:masters is always allowed)",
                              [](Config& c, const std::string& v) { c.authorization_modes = to_list(v); }}},
      {"authorization-policy-file", {"ABAC policy, kube's JSON-lines format (with "
                                     "--authorization-mode=ABAC)",
                                     [](Config& c, const std::string& v) { c.authorization_policy_file = v; }}},
      {"proxy-client-cert-file", {"client certificate presented to the delegate in front-proxy mode "
                                  "(identity sent as X-Remote-* headers)",
                                  [](Config& c, const std::string& v) { c.proxy_client_cert_file = v; }}},
      {"proxy-client-key-file", {"key of --proxy-client-cert-file",
                                 [](Config& c, const std::string& v) { c.proxy_client_key_file = v; }}},
      {"audit-log-path", {"write one audit.k8s.io/v1 Event per request (level Metadata) to this "
                          "file as JSON lines; \"-\" for standard output",
                          [](Config& c, const std::string& v) { c.audit_log_path = v; }}},
      {"audit-log-maxsize", {"megabytes of audit log before it is rotated (default 100; 0: never)",
                             [](Config& c, const std::string& v) { c.audit_log_maxsize = to_int("audit-log-maxsize", v); }}},
      {"audit-log-maxbackup", {"rotated audit log files kept (default 10)",
                               [](Config& c, const std::string& v) { c.audit_log_maxbackup = to_int("audit-log-maxbackup", v); }}},
  };
  return table;
}

void apply(Config& config, const std::string& name, const std::string& value) {
  auto it = flags().find(name);
  if (it == flags().end()) throw ConfigError("unknown flag --" + name + " (see --help)");
  it->second.set(config, value);
}

// Read with libyaml (api::decode_yaml, every scalar as the text it spells, as flags are text),
// which returns on any input.
void apply_file(Config& config, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("--config " + path + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  auto documents = api::decode_yaml(text.str(), api::YamlScalars::kText, 1);
  if (!documents) throw ConfigError("--config " + path + ": " + documents.error().message);
  const nlohmann::json root = documents->empty() ? nlohmann::json() : documents->front();
  if (!root.is_object()) throw ConfigError("--config " + path + ": expected a mapping of flag names");
  for (const auto& entry : root.items()) {
    const std::string& name = entry.key();
    const nlohmann::json& value = entry.value();
    if (name == "config") throw ConfigError("--config " + path + ": config files do not nest");
    const auto not_a_value = [&] {
      return ConfigError("--config " + path + ": " + name + ": expected a value or a list");
    };
    if (value.is_array()) {
      for (const auto& item : value) {
        if (!item.is_string()) throw not_a_value();
        apply(config, name, item.get<std::string>());
      }
    } else if (value.is_string()) {
      apply(config, name, value.get<std::string>());
    } else {
      throw not_a_value();
    }
  }
}

}  // namespace

Config parse_config(int argc, char** argv, bool& help) {
  help = false;
  std::vector<std::pair<std::string, std::string>> given;
  std::string config_file;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) throw ConfigError("unexpected argument \"" + arg + "\"");
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = flags().find(name);
    bool boolean = it != flags().end() && it->second.boolean;
    if (!has_value && !boolean) {
      if (i + 1 >= argc) throw ConfigError("--" + name + " needs a value");
      value = argv[++i];
    }
    if (name == "config") {
      config_file = value;
    } else {
      if (it == flags().end()) throw ConfigError("unknown flag --" + name + " (see --help)");
      given.emplace_back(name, value);
    }
  }
  Config config;
  if (!config_file.empty()) apply_file(config, config_file);
  // Repeatable flags on the command line replace the file's list rather than extend it.
  std::map<std::string, bool> cleared;
  for (const auto& [name, value] : given) {
    if (flags().at(name).repeatable && !cleared[name]) {
      cleared[name] = true;
      if (name == "plugins-dir") config.plugins_dirs.clear();
      if (name == "plugin-address") config.plugin_addresses.clear();
    }
    apply(config, name, value);
  }
  if (config.port < -1 || config.port > 65535) throw ConfigError("--port: out of range");
  if (config.secure_port < -1 || config.secure_port > 65535)
    throw ConfigError("--secure-port: out of range");
  if (config.port == -1 && config.secure_port == -1)
    throw ConfigError("both --port and --secure-port are disabled: nothing to serve");
  if (config.tls_cert_file.empty() != config.tls_private_key_file.empty())
    throw ConfigError("--tls-cert-file and --tls-private-key-file go together");
  if (config.store_history_revisions < 0)
    throw ConfigError("--store-history-revisions: must not be negative");
  if (config.storage_backend != "sqlite" && config.storage_backend != "etcd3")
    throw ConfigError("--storage-backend: \"" + config.storage_backend +
                      "\" is not one of sqlite, etcd3");
  if (config.storage_backend == "etcd3" && config.etcd_servers.empty())
    throw ConfigError("--storage-backend=etcd3 needs --etcd-servers");
  if (!config.datasource_exchange_file.empty() && config.grafana_uid.empty())
    throw ConfigError("--datasource-exchange-file needs --grafana-uid");
  if (config.etcd_certfile.empty() != config.etcd_keyfile.empty())
    throw ConfigError("--etcd-certfile and --etcd-keyfile go together");
  if (config.proxy_client_cert_file.empty() != config.proxy_client_key_file.empty())
    throw ConfigError("--proxy-client-cert-file and --proxy-client-key-file go together");
  if (config.audit_log_maxsize < 0 || config.audit_log_maxbackup < 0)
    throw ConfigError("--audit-log-maxsize and --audit-log-maxbackup must not be negative");
  if (!config.proxy_client_cert_file.empty() && !config.delegate_client_cert_file.empty())
    throw ConfigError("--proxy-client-cert-file and --delegate-client-cert-file both name the "
                      "certificate presented to the delegate: give one");
  for (const auto& mode : config.authorization_modes) {
    if (mode != "AlwaysAllow" && mode != "AlwaysDeny" && mode != "ABAC" && mode != "Webhook") {
      throw ConfigError("--authorization-mode: unknown mode \"" + mode +
                        "\" (AlwaysAllow, AlwaysDeny, ABAC, Webhook)");
    }
    if (mode == "ABAC" && config.authorization_policy_file.empty())
      throw ConfigError("--authorization-mode=ABAC needs --authorization-policy-file");
    if (mode == "Webhook" && config.authorization_webhook_config_file.empty())
      throw ConfigError("--authorization-mode=Webhook needs --authorization-webhook-config-file");
  }
  return config;
}

bool Config::authentication_configured() const {
  return !client_ca_file.empty() || !requestheader_client_ca_file.empty() ||
         !token_auth_file.empty() || !authentication_token_webhook_config_file.empty() ||
         anonymous_auth;
}

std::string usage() {
  std::ostringstream out;
  out << "Usage: dataplane-aggregator [flags]\n"
         "       dataplane-aggregator validate [flags] [-f FILE_OR_DIR ...]\n\n"
         "Serves DataPlaneService objects (aggregation.grafana.app/v0alpha1), routes each API\n"
         "group's data-plane traffic to Grafana backend plugins and passes everything else to\n"
         "the delegate API server. `validate` loads what the server would (flags, plugins,\n"
         "datasources, TLS and auth files) and the DataPlaneServices of -f, prints each problem\n"
         "and exits without serving.\n\nFlags:\n"
         "  --config FILE\n      YAML file with the flags below as keys (command line wins)\n";
  for (const auto& [name, flag] : flags()) {
    out << "  --" << name << (flag.boolean ? "[=BOOL]" : " VALUE") << "\n      " << flag.help
        << (flag.repeatable ? " [repeatable]" : "") << "\n";
  }
  return out.str();
}

}  // namespace dpa::app
