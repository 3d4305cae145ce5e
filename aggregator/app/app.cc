#include "aggregator/app/app.h"

#include "aggregator/app/access_control.h"
#include "aggregator/app/config.h"
#include "aggregator/app/datasource_exchange.h"
#include "aggregator/app/front_router.h"
#include "aggregator/app/inflight_limits.h"
#include "aggregator/app/health.h"
#include "aggregator/app/instrumented_store.h"
#include "aggregator/app/kubeconfig.h"
#include "aggregator/app/validate.h"
#include "aggregator/auth/webhook.h"
#include "aggregator/controller/availability_controller.h"
#include "aggregator/controller/registration_controller.h"
#include "aggregator/dataplane/dispatcher.h"
#include "aggregator/dataplane/proxy_handler.h"
#include "aggregator/dataplane/resource_handler.h"
#include "aggregator/dataplane/stream_handler.h"
#include "aggregator/dataplane/stream_hub.h"
#include "aggregator/http/client.h"
#include "aggregator/dataplaneservice/rest_handler.h"
#include "aggregator/delegate/delegate_proxy.h"
#include "aggregator/http/server.h"
#include "aggregator/http/tls.h"
#include "aggregator/observability/coalescer.h"
#include "aggregator/observability/containment.h"
#include "aggregator/observability/file_watch.h"
#include "aggregator/observability/log.h"
#include "aggregator/observability/metrics.h"
#include "aggregator/plugin/datasources.h"
#include "aggregator/plugin/process_plugin_host.h"
#include "aggregator/storage/etcd/etcd_store.h"
#include "aggregator/storage/etcd/leader_election.h"
#include "aggregator/storage/sqlite_store.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>
#include <vector>

#include <unistd.h>

namespace dpa::app {
namespace {

namespace fs = std::filesystem;

// Refuses to start on configuration that cannot work, with a message naming the input.
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The I/O contexts: `main` runs the acceptors, controllers, timers and clients, and connections
// are spread over it and the workers. An operation queued on one context can own an object bound
// to another (an accept on `main` holds the new connection's socket, made on a worker's context),
// and destroying a context destroys its queued operations: were a worker's context gone first,
// that socket's destruction would reach freed memory. So when serve() ends, by return or by
// throw, every context first drops its queued operations (asio's shutdown, protected in
// io_context) while all of them still exist, and only then are they destroyed.
class IoContexts {
 public:
  explicit IoContexts(int threads) {
    for (int i = 1; i < threads; ++i) workers_.push_back(std::make_unique<Context>());
  }
  ~IoContexts() {
    main_.shutdown();
    for (auto& worker : workers_) worker->shutdown();
  }
  IoContexts(const IoContexts&) = delete;
  IoContexts& operator=(const IoContexts&) = delete;

  boost::asio::io_context& main() { return main_; }
  // Every context, `main` first.
  std::vector<boost::asio::io_context*> all() {
    std::vector<boost::asio::io_context*> out{&main_};
    for (auto& worker : workers_) out.push_back(worker.get());
    return out;
  }
  std::vector<boost::asio::io_context*> workers() {
    auto out = all();
    out.erase(out.begin());
    return out;
  }

 private:
  struct Context : boost::asio::io_context {
    Context() : boost::asio::io_context(1) {}
    using boost::asio::execution_context::shutdown;
  };
  Context main_;
  std::vector<std::unique_ptr<Context>> workers_;
};

bool is_loopback(const std::string& address) {
  return address == "127.0.0.1" || address == "::1" || address == "localhost" ||
         address.rfind("127.", 0) == 0;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

std::string server_url(const std::string& scheme, const std::string& bind, int port) {
  std::string host = bind == "0.0.0.0" || bind == "::" || bind.empty() ? "127.0.0.1" : bind;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return scheme + "://" + host + ":" + std::to_string(port);
}

// The etcd3 backend (DESIGN §7): history and compaction are etcd's, so only the memory limit of
// the store options applies.
api::Expected<std::unique_ptr<storage::Store>> open_etcd(
    const Config& config, const storage::StoreOptions& options,
    std::shared_ptr<storage::etcd::Client>& client_out) {
  auto client = storage::etcd::Client::create({.servers = config.etcd_servers,
                                               .ca_file = config.etcd_cafile,
                                               .cert_file = config.etcd_certfile,
                                               .key_file = config.etcd_keyfile});
  if (!client.ok()) return std::move(client).error();
  client_out = *client;
  storage::etcd::EtcdStoreOptions etcd_options;
  etcd_options.prefix = config.etcd_prefix;
  etcd_options.compaction_interval = config.etcd_compaction_interval;
  auto store = storage::etcd::EtcdStore::open(std::move(client).value(), etcd_options, options);
  if (!store.ok()) return std::move(store).error();
  return std::unique_ptr<storage::Store>(std::move(store).value());
}

int serve(const Config& config) {
  // What `validate` reports, the server refuses to start with (the same lines, in its log).
  if (auto report = validate_configuration(config, {}); !report.problems.empty()) {
    for (const auto& problem : report.problems) {
      obs::error("invalid configuration", {{"problem", to_string(problem)}});
    }
    throw StartupError(std::to_string(report.problems.size()) +
                       " configuration problem(s); `dataplane-aggregator validate` with the same "
                       "flags lists them");
  }
  obs::Metrics metrics;
  std::error_code ec;
  fs::create_directories(config.data_dir, ec);
  if (ec) throw StartupError("--data-dir " + config.data_dir + ": " + ec.message());

  // Store: every write blocks on fsync, so writes run on `blocking`, never on an I/O thread.
  storage::StoreOptions store_options;
  store_options.retain_revisions = config.store_history_revisions;
  store_options.retain_duration = config.store_history_duration;
  store_options.compaction_interval = config.store_compaction_interval;
  // Watches and lists are served by the REST handler's watch cache, which keeps its own ring of
  // recent events; the store's in-memory history only has to bridge the start of the cache and
  // of the controllers' watches (list, then watch from the list's revision), and anything older
  // is read from disk. A short one saves a copy of every recent object.
  store_options.memory_history_limit = 100;
  std::shared_ptr<storage::etcd::Client> etcd_client;  // set with --storage-backend=etcd3
  auto opened = config.storage_backend == "etcd3"
                    ? open_etcd(config, store_options, etcd_client)
                    : storage::open_sqlite_store(config.data_dir, store_options);
  if (!opened.ok()) throw StartupError(opened.error().message);
  if (auto* etcd_store = dynamic_cast<storage::etcd::EtcdStore*>(opened->get())) {
    metrics.on_scrape(
        [&metrics, etcd_store] { metrics.etcd_watches().Set(etcd_store->etcd_watches()); });
  }
  InstrumentedStore store(std::move(opened).value(), metrics);

  const int threads = config.threads > 0 ? config.threads
                                         : std::max(1u, std::thread::hardware_concurrency());
  // One io_context per I/O thread: `io` (this thread) runs the controllers, timers and clients;
  // connections are spread over it and the others, so each connection stays on one thread and no
  // scheduler is shared (a shared multi-threaded scheduler costs a lock and a wake-up per handler).
  IoContexts contexts(threads);
  boost::asio::io_context& io = contexts.main();
  const std::vector<boost::asio::io_context*> io_workers = contexts.workers();
  // With etcd a write waits for a network round trip (and up to two request timeouts while etcd
  // has no quorum): more threads, so a stalled etcd holds requests, not the pool.
  obs::WorkerPool blocking(config.storage_backend == "etcd3" ? 16 : 2, "blocking pool");
  // Large query replies are encoded here, not on the I/O thread that received them.
  obs::WorkerPool encoding(static_cast<std::size_t>(threads), "encoding pool");

  dataplaneservice::RestOptions rest_options;
  rest_options.max_body_bytes = config.max_body_bytes;
  rest_options.bookmark_interval = config.bookmark_interval;
  dataplaneservice::RestHandler api(store, blocking.get_executor(), rest_options);
  metrics.on_scrape([&] {
    metrics.watch_cache_watchers().Set(static_cast<double>(api.watch_cache().watchers()));
    metrics.watch_cache_objects().Set(static_cast<double>(api.watch_cache().size()));
  });

  // Plugins and datasources.
  plugin::PluginHostOptions plugin_options;
  for (const auto& dir : config.plugins_dirs) plugin_options.plugins_dirs.emplace_back(dir);
  plugin_options.plugin_addresses = config.plugin_addresses;
  plugin_options.start_timeout = config.plugin_start_timeout;
  plugin_options.grafana_version = config.grafana_version;
  plugin::ProcessPluginHost plugins(plugin_options);
  plugins.on_status_change([&metrics](const std::string& id, plugin::PluginStatus status) {
    metrics.set_plugin_up(id, status.state == plugin::PluginState::kRunning);
  });

  std::unique_ptr<plugin::DatasourceProvider> datasources;
  if (!config.datasources.empty()) {
    datasources = std::make_unique<plugin::DatasourceProvider>(config.datasources);
    if (auto loaded = datasources->reload(); !loaded.ok()) {
      throw StartupError("--datasources " + config.datasources + ": " + loaded.error().message);
    }
    datasources->start_watching();
  }

  dataplane::DataPlaneOptions dataplane_options;
  dataplane_options.grafana_version = config.grafana_version;
  dataplane_options.max_body_bytes = config.max_dataplane_body_bytes;
  dataplane_options.query_timeout = config.request_timeout;
  dataplane_options.max_datasource_inflight = config.max_datasource_requests_inflight;
  dataplane::DatasourceSnapshotFn snapshot = [provider = datasources.get()]() {
    return provider ? provider->snapshot() : std::shared_ptr<const plugin::DatasourceSet>();
  };
  dataplane::DataPlane dataplane(
      dataplane::DataPlaneContext{plugins, snapshot, dataplane_options, encoding.get_executor()});
  // The streaming endpoints: one RunStream per channel fanned out by the hub; resources and
  // routes relayed chunk by chunk; the datasource proxy over a pooled HTTP client.
  auto hub = dataplane::StreamHub::create(io.get_executor());
  auto proxy_client = std::make_shared<http::HttpClient>(http::ClientOptions{});
  auto resources = std::make_shared<dataplane::ResourceHandler>(dataplane.context());
  auto streams = std::make_shared<dataplane::StreamHandler>(dataplane.context(), hub);
  auto proxy = std::make_shared<dataplane::ProxyHandler>(dataplane.context(), proxy_client);
  auto relay = [resources](std::shared_ptr<http::Exchange> ex, dataplane::RouteMatch match) {
    resources->handle(std::move(ex), std::move(match));
  };
  dataplane.set_handler(dataplane::Endpoint::kResource, relay);
  dataplane.set_handler(dataplane::Endpoint::kRoute, relay);
  dataplane.set_handler(dataplane::Endpoint::kStream,
                        [streams](std::shared_ptr<http::Exchange> ex, dataplane::RouteMatch match) {
                          streams->handle(std::move(ex), std::move(match));
                        });
  dataplane.set_handler(dataplane::Endpoint::kDatasourceProxy,
                        [proxy](std::shared_ptr<http::Exchange> ex, dataplane::RouteMatch match) {
                          proxy->handle(std::move(ex), std::move(match));
                        });
  metrics.on_scrape([&] {
    const auto stats = hub->stats();
    metrics.stream_subscribers().Set(static_cast<double>(stats.subscribers));
    metrics.set_slow_subscribers_dropped(stats.slow_dropped);
  });

  // Availability: plugin state and health -> status.conditions[Available]. The writer runs on the
  // controller's own thread, so the blocking store write is fine there.
  // With etcd, several replicas share the objects: one of them, elected (DESIGN §7), writes the
  // condition; every replica keeps its own view in its metrics and logs.
  std::atomic<bool> writes_conditions{!etcd_client};
  // The datasource exchange document follows availability, datasources and registrations; it is
  // recomputed (refresh_exchange_now, set below once everything it reads exists) after changes.
  // A pass reads every service, and a burst of 10,000 creates changes availability 10,000 times:
  // passes are coalesced, at most one per 100 ms, on `blocking` (a pass may write the file).
  DatasourceExchange exchange(config.grafana_uid, config.datasource_exchange_file);
  std::function<void()> refresh_exchange_now;
  obs::Coalescer exchange_passes(blocking.get_executor(), std::chrono::milliseconds(100),
                                 [&] { refresh_exchange_now(); });
  auto refresh_exchange = [&] {
    if (!config.grafana_uid.empty()) exchange_passes.request();
  };
  controller::AvailabilityController availability(
      dataplane.context(), [&api, &writes_conditions, &refresh_exchange](
                               const std::string& name, bool available, const std::string& reason,
                               const std::string& message) {
        refresh_exchange();
        if (!writes_conditions.load()) return;
        auto written = api.set_available_condition(name, available, reason, message);
        if (!written.ok() && written.error().code != 404) {
          obs::warn("cannot write the Available condition",
                    {{"dataplaneservice", name}, {"error", written.error().message}});
        }
      });

  metrics.set_availability_source([&availability] {
    std::vector<std::pair<std::string, bool>> available;
    for (const auto& [name, condition] : availability.conditions()) {
      available.emplace_back(name, condition.available);
    }
    return available;
  });

  // Registration: store watch -> route table (and the availability controller's service list).
  controller::RegistrationController registration(store);
  std::mutex exchange_mutex;  // one refresh at a time, so an older view never overwrites a newer
  refresh_exchange_now = [&] {
    std::lock_guard<std::mutex> lock(exchange_mutex);
    std::vector<ExchangeEntry> served;
    if (datasources) {
      // Datasource plugins whose DataPlaneService this replica sees Available.
      std::set<std::string> available;
      for (const auto& entry : registration.table()->services()) {
        if (entry->spec.plugin_type != "datasource" || available.count(entry->spec.plugin_id)) {
          continue;
        }
        auto condition = availability.condition(entry->name);
        if (condition && condition->available) available.insert(entry->spec.plugin_id);
      }
      for (const auto& ds : datasources->snapshot()->all()) {
        if (available.count(ds.type) && plugins.info(ds.type)) served.push_back({ds.type, ds.uid});
      }
    }
    exchange.update(std::move(served));
  };
  refresh_exchange_now();
  if (datasources) {
    datasources->on_change([&availability, &refresh_exchange](auto) {
      availability.resync();
      refresh_exchange();
    });
  }
  registration.on_table_change(
      [&availability, &refresh_exchange](std::shared_ptr<const dataplane::RouteTable> table) {
        availability.set_services(std::move(table));
        refresh_exchange();
      });
  // From here a pass may be queued or running on `blocking`, reading the registration, the
  // availability controller, the datasources and the plugins: if serve() throws (a port in use),
  // the pool finishes before any of them is destroyed. (On return it is joined below.)
  struct JoinOnUnwind {
    obs::WorkerPool& pool;
    ~JoinOnUnwind() { pool.join(); }
  } join_blocking{blocking};
  if (auto started = registration.start(); !started.ok()) throw StartupError(started.error().message);
  metrics.on_scrape([&] { metrics.route_table_size().Set(static_cast<double>(registration.size())); });

  delegate::DelegateOptions delegate_options;
  delegate_options.url = config.delegate_url;
  delegate_options.ca_file = config.delegate_ca_file;
  delegate_options.client_cert_file = config.delegate_client_cert_file;
  delegate_options.client_key_file = config.delegate_client_key_file;
  if (!config.proxy_client_cert_file.empty()) {
    // Front-proxy mode: the proxy client certificate is what the delegate trusts X-Remote-* on.
    delegate_options.client_cert_file = config.proxy_client_cert_file;
    delegate_options.client_key_file = config.proxy_client_key_file;
    delegate_options.front_proxy = true;
  }
  delegate::DelegateProxy delegate(io, delegate_options);
  if (!delegate.status().ok()) throw StartupError("--delegate-url: " + delegate.status().error().message);

  // Certificates, CA bundles and the token file are read again when they change (DESIGN §6);
  // SIGHUP checks at once.
  obs::FileWatcher files(std::chrono::seconds(1));
  auto reload_message = [](const api::Outcome& outcome) {
    return outcome.ok() ? std::string() : outcome.error().message;
  };

  // Who may do what (DESIGN §6). Without any authentication flag, the way in is a generated admin
  // token, written into the kubeconfig: anonymous requests get 401. kube's order: front-proxy
  // headers, client certificates, bearer tokens, then the same tokens as a WebSocket subprotocol.
  std::vector<std::shared_ptr<const auth::Authenticator>> authenticators;
  std::vector<std::shared_ptr<const auth::Authenticator>> token_authenticators;
  // An authenticator built from `file`, rebuilt when it changes.
  auto from_file = [&](const char* flag, const std::string& file,
                       auth::ReloadableAuthenticator::Build build) {
    auto made = auth::ReloadableAuthenticator::create(std::move(build));
    if (!made) throw StartupError(std::string(flag) + ": " + made.error().message);
    std::shared_ptr<auth::ReloadableAuthenticator> reloadable = std::move(made).value();
    files.add(std::string(flag) + " " + file, {file},
              [reloadable, reload_message] { return reload_message(reloadable->reload()); });
    return reloadable;
  };
  if (!config.requestheader_client_ca_file.empty()) {
    auth::RequestHeaderOptions options;
    options.client_ca_file = config.requestheader_client_ca_file;
    options.allowed_names = config.requestheader_allowed_names;
    options.username_headers = config.requestheader_username_headers;
    options.uid_headers = config.requestheader_uid_headers;
    options.group_headers = config.requestheader_group_headers;
    options.extra_headers_prefix = config.requestheader_extra_headers_prefix;
    authenticators.push_back(
        from_file("--requestheader-client-ca-file", config.requestheader_client_ca_file,
                  [options] { return auth::make_request_header_authenticator(options); }));
  }
  if (!config.client_ca_file.empty()) {
    authenticators.push_back(from_file("--client-ca-file", config.client_ca_file, [&config] {
      return auth::make_x509_authenticator(config.client_ca_file);
    }));
  }
  if (!config.token_auth_file.empty()) {
    token_authenticators.push_back(from_file("--token-auth-file", config.token_auth_file, [&config] {
      return auth::load_token_file(config.token_auth_file);
    }));
  }
  auth::WebhookOptions webhook_options;
  webhook_options.timeout = config.webhook_timeout;
  if (!config.authentication_token_webhook_config_file.empty()) {
    auto options = webhook_options;
    options.config_file = config.authentication_token_webhook_config_file;
    options.allowed_ttl = config.authentication_token_webhook_cache_ttl;
    auto webhook = auth::make_token_webhook(std::move(options), io.get_executor());
    if (!webhook) {
      throw StartupError("--authentication-token-webhook-config-file: " + webhook.error().message);
    }
    token_authenticators.push_back(std::move(webhook).value());
  }
  std::string admin_token;
  if (!config.authentication_configured()) {
    admin_token = load_or_create_admin_token((fs::path(config.data_dir) / "admin.token").string());
    token_authenticators.push_back(auth::make_token_authenticator(
        {{admin_token, auth::UserInfo{"admin", "", {auth::kSystemMasters}, {}}}}));
  }
  if (!token_authenticators.empty()) {
    auto tokens = auth::make_authenticator_chain(std::move(token_authenticators), false);
    authenticators.push_back(tokens);
    authenticators.push_back(auth::make_websocket_protocol_authenticator(tokens));
  }
  std::vector<std::shared_ptr<const auth::Authorizer>> authorizers;
  for (const auto& mode : config.authorization_modes) {
    if (mode == "AlwaysAllow") authorizers.push_back(auth::make_always_allow());
    if (mode == "AlwaysDeny") authorizers.push_back(auth::make_always_deny());
    if (mode == "Webhook") {
      auto options = webhook_options;
      options.config_file = config.authorization_webhook_config_file;
      options.allowed_ttl = config.authorization_webhook_cache_authorized_ttl;
      options.denied_ttl = config.authorization_webhook_cache_unauthorized_ttl;
      auto webhook = auth::make_authorization_webhook(std::move(options), io.get_executor());
      if (!webhook) throw StartupError("--authorization-webhook-config-file: " + webhook.error().message);
      authorizers.push_back(std::move(webhook).value());
    }
    if (mode == "ABAC") {
      auto policy = auth::load_abac_policy(config.authorization_policy_file);
      if (!policy) throw StartupError("--authorization-policy-file: " + policy.error().message);
      authorizers.push_back(std::move(policy).value());
    }
  }
  const bool allows_everyone =
      config.anonymous_auth && std::find(config.authorization_modes.begin(),
                                         config.authorization_modes.end(),
                                         "AlwaysAllow") != config.authorization_modes.end();
  if (allows_everyone && !is_loopback(config.bind_address)) {
    obs::warn("INSECURE: anyone who reaches " + config.bind_address +
              " may do anything: --anonymous-auth=true with --authorization-mode AlwaysAllow on a "
              "non-loopback address");
  }
  std::unique_ptr<auth::AuditLog> audit;
  if (!config.audit_log_path.empty()) {
    auto opened = auth::AuditLog::open({config.audit_log_path,
                                        static_cast<std::uint64_t>(config.audit_log_maxsize),
                                        config.audit_log_maxbackup});
    if (!opened) throw StartupError("--audit-log-path: " + opened.error().message);
    audit = std::move(opened).value();
    metrics.on_scrape([&metrics, log = audit.get()] {
      metrics.set_audit_events(log->written(), log->dropped());
    });
  }
  AccessControl access(auth::make_authenticator_chain(std::move(authenticators), config.anonymous_auth),
                       auth::make_authorizer_chain(std::move(authorizers)), audit.get());

  // Set once the server listens (the default names its port) / with --storage-backend=etcd3.
  std::string replica_id;
  std::unique_ptr<storage::etcd::LeaderElection> election;
  HealthChecks health;
  health.add_liveness("ping", [] { return std::string(); });
  health.add_readiness("store", [&store] {
    return store.current_revision() >= 0 ? std::string() : std::string("store unavailable");
  });
  health.add_readiness("poststarthook/dataplaneservice-registration-controller", [&registration] {
    return registration.ready() ? std::string() : std::string("initial sync not finished");
  });
  // This replica's own view of availability (with etcd, the written condition is the leader's).
  health.add_report("dataplaneservice-available", [&availability, &replica_id, &election] {
    std::vector<std::pair<std::string, std::string>> lines;
    const std::string who =
        replica_id + (election ? (election->is_leader() ? ", leader" : ", follower of " + election->holder())
                               : std::string());
    for (const auto& [name, condition] : availability.conditions()) {
      lines.emplace_back(name, std::string(condition.available ? "True" : "False") + " (" +
                                   condition.reason + ") as seen by " + who);
    }
    return lines;
  });

  InflightLimits limits(config.max_requests_inflight, config.max_mutating_requests_inflight);
  FrontRouter router(
      {health, metrics, api, registration, dataplane, delegate, access, limits, exchange});

  http::ServerOptions server_options;
  server_options.bind_address = config.bind_address;
  server_options.port = config.port;
  server_options.secure_port = config.secure_port;
  for (const auto& ca : {config.client_ca_file, config.requestheader_client_ca_file}) {
    if (!ca.empty()) server_options.client_ca_files.push_back(ca);
  }
  server_options.max_header_bytes = config.max_header_bytes;
  server_options.header_timeout = config.header_timeout;
  server_options.idle_timeout = config.idle_timeout;
  server_options.body_timeout = config.request_timeout;
  server_options.max_connections = config.max_connections;
  server_options.access_log = config.access_log;
  std::string ca_for_kubeconfig;
  if (config.secure_port >= 0) {
    if (config.tls_cert_file.empty()) {
      server_options.tls_cert_file = (fs::path(config.data_dir) / "apiserver.crt").string();
      server_options.tls_key_file = (fs::path(config.data_dir) / "apiserver.key").string();
      if (auto made = http::ensure_self_signed_certificate(server_options.tls_cert_file,
                                                          server_options.tls_key_file);
          !made.ok()) {
        throw StartupError("self-signed certificate: " + made.error().message);
      }
      ca_for_kubeconfig = fs::absolute(server_options.tls_cert_file).string();
    } else {
      server_options.tls_cert_file = config.tls_cert_file;
      server_options.tls_key_file = config.tls_private_key_file;
    }
  }
  http::Server server(io, server_options,
                      [&router](std::shared_ptr<http::Exchange> exchange) {
                        router.handle(std::move(exchange));
                      });
  // The reloads touch the server and the delegate: the watcher stops before either goes away.
  struct StopWatching {
    obs::FileWatcher& files;
    ~StopWatching() { files.stop(); }
  } stop_watching{files};
  std::vector<boost::asio::io_context*> session_contexts = contexts.all();
  server.set_session_contexts(std::move(session_contexts));
  server.set_observer([&metrics](const http::RequestRecord& record) {
    auto [verb, resource] = FrontRouter::classify(record.method, record.path, record.query);
    metrics.observe_request(verb, resource, record.status,
                            std::chrono::duration<double>(record.duration).count());
  });
  metrics.on_scrape([&] { metrics.open_connections().Set(static_cast<double>(server.open_connections())); });
  if (auto started = server.start(); !started.ok()) throw StartupError(started.error().message);
  if (server.secure_port() >= 0) {
    std::vector<std::string> serving{server_options.tls_cert_file, server_options.tls_key_file};
    serving.insert(serving.end(), server_options.client_ca_files.begin(),
                   server_options.client_ca_files.end());
    files.add("serving certificate", std::move(serving),
              [&server, reload_message] { return reload_message(server.reload_tls()); });
  }
  if (delegate.configured() && delegate.endpoint().tls()) {
    std::vector<std::string> client{delegate_options.ca_file, delegate_options.client_cert_file,
                                    delegate_options.client_key_file};
    client.erase(std::remove(client.begin(), client.end(), std::string()), client.end());
    if (!client.empty()) {
      files.add("delegate client certificate", std::move(client),
                [&delegate, reload_message] { return reload_message(delegate.reload_tls()); });
    }
  }
  files.start();

  replica_id =
      !config.replica_id.empty()
          ? config.replica_id
          : host_name() + ":" + std::to_string(server.secure_port() >= 0 ? server.secure_port()
                                                                         : server.port());
  metrics.set_replica(replica_id);
  plugins.start_all();
  availability.start();
  if (etcd_client) {
    storage::etcd::LeaderElectionOptions election_options;
    // Beside the objects, not among them: a leadership change is not a change of the API's state.
    election_options.key = config.etcd_prefix + "-leases/dataplaneservice-availability-controller";
    election_options.identity = replica_id;
    election = std::make_unique<storage::etcd::LeaderElection>(
        etcd_client, election_options, [&](bool leader) {
          metrics.set_leader(leader);
          writes_conditions = leader;
          if (leader) availability.rewrite();
        });
    election->start();
  }

  const std::string url = server.port() >= 0
                              ? server_url("http", config.bind_address, server.port())
                              : server_url("https", config.bind_address, server.secure_port());
  // client-go sends a bearer token only over TLS, so the kubeconfig names the HTTPS port when
  // there is one (and the generated certificate as its CA).
  const bool kubeconfig_tls = server.secure_port() >= 0;
  const std::string kubeconfig_url =
      kubeconfig_tls ? server_url("https", config.bind_address, server.secure_port()) : url;
  const std::string kubeconfig = (fs::path(config.data_dir) / "aggregator.kubeconfig").string();
  write_kubeconfig(kubeconfig, kubeconfig_url, kubeconfig_tls ? ca_for_kubeconfig : std::string(),
                   admin_token);
  obs::info("serving", {{"url", url},
                        {"kubeconfig_server", kubeconfig_url},
                        {"secure_port", server.secure_port()},
                        {"kubeconfig", kubeconfig},
                        {"threads", threads},
                        {"delegate", config.delegate_url}});

  // SIGHUP re-reads the datasource provisioning files, and any changed certificate, CA or token
  // file, at once (all are also re-read when they change); the process keeps serving. The read touches the disk, so it runs on `blocking`.
  boost::asio::signal_set reload_signal(io, SIGHUP);
  std::function<void()> await_reload = [&] {
    reload_signal.async_wait([&](const boost::system::error_code& error, int) {
      if (error) return;
      files.check_now();
      boost::asio::post(blocking.get_executor(), [&datasources] {
        if (!datasources) return obs::info("SIGHUP: no datasource provisioning to reload");
        auto reloaded = datasources->reload();
        if (reloaded.ok()) {
          obs::info("SIGHUP: datasource provisioning reloaded");
        } else {
          obs::warn("SIGHUP: datasource provisioning not reloaded",
                    {{"error", reloaded.error().message}});
        }
      });
      await_reload();
    });
  };
  await_reload();

  // SIGTERM/SIGINT: stop accepting, finish in-flight requests, end watches and streams cleanly.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
    if (error) return;
    obs::info("shutting down", {{"signal", signal_number}});
    reload_signal.cancel();
    hub->stop_all();  // ends every subscriber's stream cleanly and cancels the RunStreams
    server.shutdown(config.shutdown_grace, [&io] { io.stop(); });
  });

  std::vector<std::thread> pool;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> keep_running;
  for (auto* worker : io_workers) {
    keep_running.push_back(boost::asio::make_work_guard(*worker));
    pool.emplace_back([worker] { obs::run_contained(*worker, "I/O thread"); });
  }
  obs::run_contained(io, "main I/O thread");
  // The server has drained (or the grace period ended): the workers have nothing left to finish.
  keep_running.clear();
  for (auto* worker : io_workers) worker->stop();
  for (auto& t : pool) t.join();
  encoding.join();  // replies still being encoded go nowhere now, but must not outlive the server

  if (election) election->stop();  // revokes the lease: another replica takes over at once
  availability.stop();
  registration.stop();
  plugins.stop_all();
  if (datasources) datasources->stop_watching();
  blocking.join();
  obs::info("stopped");
  return 0;
}

}  // namespace

int run(int argc, char** argv) {
  // A client that disconnects mid-write must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && std::string_view(argv[1]) == "validate") {
    obs::set_log_level(obs::parse_level("error"));  // the report is the output
    return validate_command(argc - 2, argv + 2);
  }
  Config config;
  try {
    bool help = false;
    config = parse_config(argc, argv, help);
    if (help) {
      std::cout << usage();
      return 0;
    }
  } catch (const ConfigError& e) {
    std::cerr << "dataplane-aggregator: " << e.what() << "\n";
    return 2;
  }
  obs::set_log_level(obs::parse_level(config.log_level));
  try {
    return serve(config);
  } catch (const std::exception& e) {
    obs::error("cannot start", {{"error", e.what()}});
    return 1;
  }
}

}  // namespace dpa::app
