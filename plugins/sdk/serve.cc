#include "plugins/sdk/serve.h"

#include "plugins/proto/backend.grpc.pb.h"
#include "plugins/proto/grpc_controller.grpc.pb.h"
#include "plugins/sdk/log.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

namespace dpa::sdk {

const char* const kNotAPluginHostMessage =
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically\n";

namespace {

// go-plugin handshake constants (§2.2).
constexpr const char* kMagicCookieKey = "grafana_plugin_type";
constexpr const char* kMagicCookieValue = "datasource";
constexpr const char* kAppProtocolVersion = "2";
// sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxUnixPath = 107;

std::atomic<bool> g_stopping{false};

// Set once by the Shutdown RPC or SIGTERM; serve() waits on it.
class StopLatch {
 public:
  void request(const std::string& why) {
    {
      std::lock_guard lock(mutex_);
      if (requested_) return;
      requested_ = true;
      reason_ = why;
    }
    cv_.notify_all();
  }
  bool requested() const {
    std::lock_guard lock(mutex_);
    return requested_;
  }
  std::string wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return requested_; });
    return reason_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool requested_ = false;
  std::string reason_;
};

// Runs a handler, turning an escaped exception into INTERNAL rather than killing the plugin.
grpc::Status guarded(const char* method, const std::function<grpc::Status()>& call) {
  try {
    return call();
  } catch (const std::exception& e) {
    log_error("handler threw", {{"method", method}, {"error", e.what()}});
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(method) + ": " + e.what());
  } catch (...) {
    log_error("handler threw", {{"method", method}});
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(method) + ": unknown exception");
  }
}

class DataService final : public pluginv2::Data::Service {
 public:
  explicit DataService(QueryDataHandler& handler) : handler_(handler) {}
  grpc::Status QueryData(grpc::ServerContext* context, const pluginv2::QueryDataRequest* request,
                         pluginv2::QueryDataResponse* response) override {
    const CallContext ctx(*context);
    return guarded("QueryData", [&] { return handler_.query_data(ctx, *request, *response); });
  }

 private:
  QueryDataHandler& handler_;
};

class DiagnosticsService final : public pluginv2::Diagnostics::Service {
 public:
  DiagnosticsService(CheckHealthHandler* health, CollectMetricsHandler* metrics)
      : health_(health), metrics_(metrics) {}
  grpc::Status CheckHealth(grpc::ServerContext* context,
                           const pluginv2::CheckHealthRequest* request,
                           pluginv2::CheckHealthResponse* response) override {
    if (health_ == nullptr) {
      response->set_status(pluginv2::CheckHealthResponse::OK);
      return grpc::Status::OK;
    }
    const CallContext ctx(*context);
    return guarded("CheckHealth", [&] { return health_->check_health(ctx, *request, *response); });
  }
  grpc::Status CollectMetrics(grpc::ServerContext* context,
                              const pluginv2::CollectMetricsRequest* request,
                              pluginv2::CollectMetricsResponse* response) override {
    if (metrics_ == nullptr) {
      response->mutable_metrics()->set_prometheus("");
      return grpc::Status::OK;
    }
    const CallContext ctx(*context);
    return guarded("CollectMetrics",
                   [&] { return metrics_->collect_metrics(ctx, *request, *response); });
  }

 private:
  CheckHealthHandler* health_;
  CollectMetricsHandler* metrics_;
};

class GrpcResourceSender final : public ResourceSender {
 public:
  explicit GrpcResourceSender(grpc::ServerWriter<pluginv2::CallResourceResponse>& writer)
      : writer_(writer) {}
  using ResourceSender::send;
  bool send(const pluginv2::CallResourceResponse& message) override {
    ++sent_;
    return writer_.Write(message);
  }
  int sent() const { return sent_; }

 private:
  grpc::ServerWriter<pluginv2::CallResourceResponse>& writer_;
  int sent_ = 0;
};

class ResourceService final : public pluginv2::Resource::Service {
 public:
  explicit ResourceService(CallResourceHandler& handler) : handler_(handler) {}
  grpc::Status CallResource(grpc::ServerContext* context,
                            const pluginv2::CallResourceRequest* request,
                            grpc::ServerWriter<pluginv2::CallResourceResponse>* writer) override {
    const CallContext ctx(*context);
    GrpcResourceSender sender(*writer);
    grpc::Status status =
        guarded("CallResource", [&] { return handler_.call_resource(ctx, *request, sender); });
    if (status.ok() && sender.sent() == 0) {
      // Hosts reject an empty response stream; answer something well-formed instead.
      sender.send(500, {{"Content-Type", "text/plain"}}, "plugin sent no resource response");
    }
    return status;
  }

 private:
  CallResourceHandler& handler_;
};

class GrpcPacketSender final : public PacketSender {
 public:
  explicit GrpcPacketSender(grpc::ServerWriter<pluginv2::StreamPacket>& writer)
      : writer_(writer) {}
  bool send(std::string json) override {
    pluginv2::StreamPacket packet;
    packet.set_data(std::move(json));
    return writer_.Write(packet);
  }

 private:
  grpc::ServerWriter<pluginv2::StreamPacket>& writer_;
};

class StreamService final : public pluginv2::Stream::Service {
 public:
  explicit StreamService(StreamHandler& handler) : handler_(handler) {}
  grpc::Status SubscribeStream(grpc::ServerContext* context,
                               const pluginv2::SubscribeStreamRequest* request,
                               pluginv2::SubscribeStreamResponse* response) override {
    const CallContext ctx(*context);
    return guarded("SubscribeStream",
                   [&] { return handler_.subscribe_stream(ctx, *request, *response); });
  }
  grpc::Status PublishStream(grpc::ServerContext* context,
                             const pluginv2::PublishStreamRequest* request,
                             pluginv2::PublishStreamResponse* response) override {
    const CallContext ctx(*context);
    return guarded("PublishStream",
                   [&] { return handler_.publish_stream(ctx, *request, *response); });
  }
  grpc::Status RunStream(grpc::ServerContext* context, const pluginv2::RunStreamRequest* request,
                         grpc::ServerWriter<pluginv2::StreamPacket>* writer) override {
    const CallContext ctx(*context);
    GrpcPacketSender sender(*writer);
    return guarded("RunStream", [&] { return handler_.run_stream(ctx, *request, sender); });
  }

 private:
  StreamHandler& handler_;
};

class AdmissionService final : public pluginv2::AdmissionControl::Service {
 public:
  explicit AdmissionService(AdmissionHandler& handler) : handler_(handler) {}
  grpc::Status ValidateAdmission(grpc::ServerContext* context,
                                 const pluginv2::AdmissionRequest* request,
                                 pluginv2::ValidationResponse* response) override {
    const CallContext ctx(*context);
    return guarded("ValidateAdmission",
                   [&] { return handler_.validate_admission(ctx, *request, *response); });
  }
  grpc::Status MutateAdmission(grpc::ServerContext* context,
                               const pluginv2::AdmissionRequest* request,
                               pluginv2::MutationResponse* response) override {
    const CallContext ctx(*context);
    return guarded("MutateAdmission",
                   [&] { return handler_.mutate_admission(ctx, *request, *response); });
  }

 private:
  AdmissionHandler& handler_;
};

class ConversionService final : public pluginv2::ResourceConversion::Service {
 public:
  explicit ConversionService(ConversionHandler& handler) : handler_(handler) {}
  grpc::Status ConvertObjects(grpc::ServerContext* context,
                              const pluginv2::ConversionRequest* request,
                              pluginv2::ConversionResponse* response) override {
    const CallContext ctx(*context);
    return guarded("ConvertObjects",
                   [&] { return handler_.convert_objects(ctx, *request, *response); });
  }

 private:
  ConversionHandler& handler_;
};

class ControllerService final : public plugin::GRPCController::Service {
 public:
  explicit ControllerService(StopLatch& latch) : latch_(latch) {}
  // Only records the request: stopping the server from inside one of its own calls would wait
  // for this very call to finish.
  grpc::Status Shutdown(grpc::ServerContext*, const plugin::Empty*, plugin::Empty*) override {
    latch_.request("GRPCController.Shutdown");
    return grpc::Status::OK;
  }

 private:
  StopLatch& latch_;
};

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string(v) == value;
}

// PLUGIN_PROTOCOL_VERSIONS is a comma list of versions the host speaks; absent means "whatever
// the plugin serves" (go-plugin falls back to its default version then).
bool host_speaks_version_2() {
  const char* v = std::getenv("PLUGIN_PROTOCOL_VERSIONS");
  if (v == nullptr || *v == '\0') return true;
  std::stringstream list(v);
  std::string item;
  while (std::getline(list, item, ',')) {
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos && item.substr(b, e - b + 1) == kAppProtocolVersion) return true;
  }
  return false;
}

// <dir>/plugin<random digits>, dir = PLUGIN_UNIX_SOCKET_DIR, TMPDIR or /tmp (§2.4.3).
std::string unix_socket_path() {
  std::string dir = "/tmp";
  for (const char* name : {"PLUGIN_UNIX_SOCKET_DIR", "TMPDIR"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') {
      dir = v;
      break;
    }
  }
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(getpid()));
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string path = dir + "/plugin" + std::to_string(rng() % 10000000000ULL);
    if (path.size() > kMaxUnixPath) {
      dir = "/tmp";
      continue;
    }
    if (::access(path.c_str(), F_OK) != 0) return path;
  }
  return "/tmp/plugin" + std::to_string(rng() % 10000000000ULL);
}

void write_stdout_line(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

bool CallContext::cancelled() const { return g_stopping.load() || context_.IsCancelled(); }

bool CallContext::sleep_for(std::chrono::milliseconds duration) const {
  constexpr auto kSlice = std::chrono::milliseconds(10);
  const auto end = std::chrono::steady_clock::now() + duration;
  while (!cancelled()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(kSlice, end - now));
  }
  return false;
}

std::multimap<std::string, std::string> CallContext::metadata() const {
  std::multimap<std::string, std::string> out;
  for (const auto& [key, value] : context_.client_metadata()) {
    out.emplace(std::string(key.data(), key.size()), std::string(value.data(), value.size()));
  }
  return out;
}

bool ResourceSender::send(int code, const std::map<std::string, std::string>& headers,
                          std::string body) {
  pluginv2::CallResourceResponse message;
  message.set_code(code);
  for (const auto& [name, value] : headers) {
    (*message.mutable_headers())[name].add_values(value);
  }
  message.set_body(std::move(body));
  return send(message);
}

bool ResourceSender::send_body(std::string chunk) {
  pluginv2::CallResourceResponse message;
  message.set_body(std::move(chunk));
  return send(message);
}

int serve(const ServeOptions& options) {
  set_log_module(options.plugin_id.empty() ? "plugin" : "plugin." + options.plugin_id);

  if (!env_is(kMagicCookieKey, kMagicCookieValue)) {
    std::fputs(kNotAPluginHostMessage, stderr);
    return 1;
  }
  if (!host_speaks_version_2()) {
    std::fprintf(stderr, "plugin host offers protocol versions %s; this plugin serves only %s\n",
                 std::getenv("PLUGIN_PROTOCOL_VERSIONS"), kAppProtocolVersion);
    return 1;
  }

  // The host decides when plugins stop: Ctrl-C in its terminal must not kill us (§2.4.6). SIGTERM
  // is taken by a dedicated thread; block it before gRPC starts its threads so they inherit the
  // mask and the signal is never delivered anywhere else.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t term_set;
  sigemptyset(&term_set);
  sigaddset(&term_set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term_set, nullptr);

  StopLatch latch;
  std::thread signal_thread([&latch, term_set] {
    const timespec slice{0, 100 * 1000 * 1000};
    while (!latch.requested()) {
      if (sigtimedwait(&term_set, nullptr, &slice) == SIGTERM) latch.request("SIGTERM");
    }
  });

  std::unique_ptr<DataService> data;
  std::unique_ptr<ResourceService> resource;
  std::unique_ptr<StreamService> stream;
  std::unique_ptr<AdmissionService> admission;
  std::unique_ptr<ConversionService> conversion;
  DiagnosticsService diagnostics(options.check_health, options.collect_metrics);
  ControllerService controller(latch);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(options.max_receive_bytes);
  builder.SetMaxSendMessageSize(-1);
  builder.RegisterService(&diagnostics);
  builder.RegisterService(&controller);
  if (options.query_data != nullptr) {
    data = std::make_unique<DataService>(*options.query_data);
    builder.RegisterService(data.get());
  }
  if (options.call_resource != nullptr) {
    resource = std::make_unique<ResourceService>(*options.call_resource);
    builder.RegisterService(resource.get());
  }
  if (options.stream != nullptr) {
    stream = std::make_unique<StreamService>(*options.stream);
    builder.RegisterService(stream.get());
  }
  if (options.admission != nullptr) {
    admission = std::make_unique<AdmissionService>(*options.admission);
    builder.RegisterService(admission.get());
  }
  if (options.conversion != nullptr) {
    conversion = std::make_unique<ConversionService>(*options.conversion);
    builder.RegisterService(conversion.get());
  }

  std::string network;
  std::string address;
  std::string socket_path;
  int tcp_port = 0;
  const bool use_tcp = options.use_tcp || env_is("DPA_PLUGIN_NETWORK", "tcp");
  if (use_tcp) {
    network = "tcp";
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &tcp_port);
  } else {
    network = "unix";
    socket_path = unix_socket_path();
    ::unlink(socket_path.c_str());
    builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  }

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || (use_tcp && tcp_port == 0)) {
    log_error("cannot start gRPC server",
              {{"network", network}, {"address", use_tcp ? "127.0.0.1:0" : socket_path}});
    latch.request("start failure");
    signal_thread.join();
    return 1;
  }
  address = use_tcp ? "127.0.0.1:" + std::to_string(tcp_port) : socket_path;
  // go-plugin's ping checks exactly this service name.
  server->GetHealthCheckService()->SetServingStatus("plugin", true);

  // The handshake line must be the first thing on stdout (§2.4.5); the empty sixth field is the
  // (absent) AutoMTLS certificate, as go-plugin prints it.
  write_stdout_line("1|" + std::string(kAppProtocolVersion) + "|" + network + "|" + address +
                    "|grpc|\n");
  log_info("plugin started", {{"network", network}, {"address", address}, {"pid", getpid()}});

  const std::string reason = latch.wait();
  log_info("plugin stopping", {{"reason", reason}});
  server->GetHealthCheckService()->SetServingStatus("plugin", false);
  g_stopping.store(true);
  server->Shutdown(std::chrono::system_clock::now() + options.shutdown_grace);
  server->Wait();
  server.reset();
  signal_thread.join();
  if (!socket_path.empty()) ::unlink(socket_path.c_str());
  log_info("plugin stopped");
  return 0;
}

}  // namespace dpa::sdk
