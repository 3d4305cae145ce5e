// Command-line flags and their YAML equivalent (--config FILE: the same names without the leading
// dashes, e.g. `plugins-dir: [a, b]`). Flags given on the command line win over the file.
// Parsing errors are exceptions: they only happen at start-up (STYLE habit 5).
#pragma once

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace dpa::app {

struct Config {
  std::string bind_address = "127.0.0.1";
  int port = 8080;          // plain HTTP; -1 disables
  int secure_port = 8443;   // HTTPS; -1 disables, 0 picks a free port
  std::string tls_cert_file;
  std::string tls_private_key_file;
  std::string data_dir = "./dataplane-aggregator-data";
  std::vector<std::string> plugins_dirs;
  std::vector<std::string> plugin_addresses;  // "<plugin id>=<unix:/path | host:port>"
  std::string datasources;                    // provisioning file or directory
  std::string delegate_url;
  std::string delegate_ca_file;
  std::string delegate_client_cert_file;
  std::string delegate_client_key_file;
  int threads = 0;  // 0 = number of cores
  std::string log_level = "info";
  bool access_log = true;
  std::size_t max_body_bytes = 3 << 20;            // DataPlaneService API bodies
  std::size_t max_dataplane_body_bytes = 16 << 20;  // plugin requests (Go plugins cap at 16 MiB)
  std::size_t max_header_bytes = 64 << 10;
  std::size_t max_connections = 10000;
  // Requests served at once (kube-apiserver's defaults), past them 429; watches and streams are
  // not counted. 0: no limit.
  std::size_t max_requests_inflight = 400;
  std::size_t max_mutating_requests_inflight = 200;
  std::size_t max_datasource_requests_inflight = 64;  // per datasource
  std::chrono::seconds header_timeout{10};
  std::chrono::seconds idle_timeout{90};
  std::chrono::seconds request_timeout{60};
  std::chrono::seconds shutdown_grace{10};
  std::chrono::seconds plugin_start_timeout{60};
  std::chrono::seconds bookmark_interval{60};
  // Watch history kept before compaction: the union of both windows (0 disables a window).
  std::int64_t store_history_revisions = 10000;
  std::chrono::seconds store_history_duration{300};
  std::chrono::seconds store_compaction_interval{30};  // 0 = after every commit
  // Where DataPlaneServices live (DESIGN §7): "sqlite" (embedded, <data-dir>/store.db, one
  // replica) or "etcd3" (shared by any number of replicas).
  std::string storage_backend = "sqlite";
  std::vector<std::string> etcd_servers;
  std::string etcd_prefix = "/registry/dataplane-aggregator";
  std::string etcd_cafile;
  std::string etcd_certfile;
  std::string etcd_keyfile;
  std::chrono::seconds etcd_compaction_interval{300};  // 0 = never
  // This replica's name in the leader key, logs and metrics; empty: <hostname>:<port>.
  std::string replica_id;
  std::string grafana_version = "12.0.0";
  // The datasource exchange document (GET .../datasourceexchange, and this file when set) is
  // published only with the uid of the Grafana these datasources belong to.
  std::string grafana_uid;
  std::string datasource_exchange_file;

  // Authentication and authorization (DESIGN §6; names as kube-apiserver's flags). With none of
  // the authentication flags, a generated admin token (<data-dir>/admin.token) is the way in.
  std::string client_ca_file;
  std::string requestheader_client_ca_file;
  std::vector<std::string> requestheader_allowed_names;
  std::vector<std::string> requestheader_username_headers{"X-Remote-User"};
  std::vector<std::string> requestheader_uid_headers{"X-Remote-Uid"};
  std::vector<std::string> requestheader_group_headers{"X-Remote-Group"};
  std::vector<std::string> requestheader_extra_headers_prefix{"X-Remote-Extra-"};
  std::string token_auth_file;
  std::string authentication_token_webhook_config_file;
  std::chrono::seconds authentication_token_webhook_cache_ttl{120};
  bool anonymous_auth = false;
  std::vector<std::string> authorization_modes{"AlwaysAllow"};
  std::string authorization_policy_file;
  std::string authorization_webhook_config_file;
  std::chrono::seconds authorization_webhook_cache_authorized_ttl{300};
  std::chrono::seconds authorization_webhook_cache_unauthorized_ttl{30};
  std::chrono::milliseconds webhook_timeout{10000};  // per webhook call
  // Front-proxy mode toward the delegate: the identity travels as X-Remote-* headers over a
  // connection presenting this certificate.
  std::string proxy_client_cert_file;
  std::string proxy_client_key_file;
  // Audit log (one audit.k8s.io/v1 Event per request, level Metadata); empty path: none.
  std::string audit_log_path;
  int audit_log_maxsize = 100;   // MB before rotation; 0: never
  int audit_log_maxbackup = 10;  // rotated files kept

  // True when any authentication flag was given (else the admin token is generated).
  bool authentication_configured() const;
};

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses argv (and --config). Throws ConfigError with a message naming the bad flag.
// Sets `help` when --help/-h was given; the caller prints usage().
Config parse_config(int argc, char** argv, bool& help);
std::string usage();

}  // namespace dpa::app
