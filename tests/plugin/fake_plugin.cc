#include "tests/plugin/fake_plugin.h"

#include "plugins/proto/backend.grpc.pb.h"
#include "plugins/proto/grpc_controller.grpc.pb.h"
#include "plugins/proto/health.grpc.pb.h"

#include <nlohmann/json.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

namespace dpa::plugin::testing {
namespace {

nlohmann::json env_value(const char* name) {
  const char* v = std::getenv(name);
  return v ? nlohmann::json(v) : nlohmann::json(nullptr);
}

class FakeData final : public pluginv2::Data::Service {
  grpc::Status QueryData(grpc::ServerContext* ctx, const pluginv2::QueryDataRequest* req,
                         pluginv2::QueryDataResponse* resp) override {
    for (const auto& q : req->queries()) {
      if (q.refid() == "slow") {
        for (int i = 0; i < 300 && !ctx->IsCancelled(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      if (q.refid() == "fail") return grpc::Status(grpc::StatusCode::INTERNAL, "boom");
      // gRPC percent-encodes such a message on the wire; the client must decode it.
      if (q.refid() == "fail-text") {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad: 100% \xE2\x9C\x97\nnext line");
      }
      if (q.refid().starts_with("big:")) {  // a reply of about N bytes
        auto& r = (*resp->mutable_responses())[q.refid()];
        r.add_frames(std::string(std::stoul(q.refid().substr(4)), 'x'));
        continue;
      }
      auto& r = (*resp->mutable_responses())[q.refid()];
      r.set_status(200);
      nlohmann::json j = {
          {"pid", static_cast<int>(getpid())},
          {"pluginId", req->plugincontext().pluginid()},
          {"datasourceUid", req->plugincontext().datasourceinstancesettings().uid()},
          {"env",
           {{"GF_VERSION", env_value("GF_VERSION")},
            {"grafana_plugin_type", env_value("grafana_plugin_type")},
            {"PLUGIN_PROTOCOL_VERSIONS", env_value("PLUGIN_PROTOCOL_VERSIONS")},
            {"PLUGIN_MIN_PORT", env_value("PLUGIN_MIN_PORT")},
            {"PLUGIN_MAX_PORT", env_value("PLUGIN_MAX_PORT")},
            {"PLUGIN_CLIENT_CERT", env_value("PLUGIN_CLIENT_CERT")},
            {"PLUGIN_MULTIPLEX_GRPC", env_value("PLUGIN_MULTIPLEX_GRPC")},
            {"GF_PLUGIN_CUSTOM_SETTING", env_value("GF_PLUGIN_CUSTOM_SETTING")}}}};
      r.add_frames(j.dump());
    }
    return grpc::Status::OK;
  }
};

class FakeResource final : public pluginv2::Resource::Service {
  grpc::Status CallResource(grpc::ServerContext*, const pluginv2::CallResourceRequest* req,
                            grpc::ServerWriter<pluginv2::CallResourceResponse>* writer) override {
    pluginv2::CallResourceResponse first;
    first.set_code(200);
    (*first.mutable_headers())["Content-Type"].add_values("text/plain");
    first.set_body("path=" + req->path() + ";");
    writer->Write(first);
    for (const char* chunk : {"b;", "c;"}) {
      pluginv2::CallResourceResponse more;
      more.set_body(chunk);
      writer->Write(more);
    }
    return grpc::Status::OK;
  }
};

class FakeStream final : public pluginv2::Stream::Service {
  grpc::Status RunStream(grpc::ServerContext* ctx, const pluginv2::RunStreamRequest* req,
                         grpc::ServerWriter<pluginv2::StreamPacket>* writer) override {
    for (int i = 0; !ctx->IsCancelled(); ++i) {
      pluginv2::StreamPacket p;
      p.set_data(nlohmann::json{{"path", req->path()}, {"n", i}}.dump());
      if (!writer->Write(p)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return grpc::Status::OK;
  }
};

class FakeDiagnostics final : public pluginv2::Diagnostics::Service {
  grpc::Status CheckHealth(grpc::ServerContext*, const pluginv2::CheckHealthRequest*,
                           pluginv2::CheckHealthResponse* resp) override {
    resp->set_status(pluginv2::CheckHealthResponse::OK);
    resp->set_message("fake plugin is fine");
    return grpc::Status::OK;
  }
};

class FakeHealth final : public grpc::health::v1::Health::Service {
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest*,
                     grpc::health::v1::HealthCheckResponse* resp) override {
    resp->set_status(grpc::health::v1::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

class FakeController final : public ::plugin::GRPCController::Service {
 public:
  grpc::Status Shutdown(grpc::ServerContext*, const ::plugin::Empty*, ::plugin::Empty*) override {
    if (const char* dir = std::getenv("DPA_TEST_MARKER_DIR")) {
      std::ofstream(std::string(dir) + "/shutdown-" + std::to_string(getpid())) << "1";
    }
    if (std::getenv("DPA_TEST_IGNORE_SHUTDOWN")) return grpc::Status::OK;
    std::lock_guard<std::mutex> lock(mu);
    shutdown = true;
    cv.notify_all();
    return grpc::Status::OK;
  }
  std::mutex mu;
  std::condition_variable cv;
  bool shutdown = false;
};

struct Services {
  FakeData data;
  FakeResource resource;
  FakeStream stream;
  FakeDiagnostics diagnostics;
  FakeHealth health;
  FakeController controller;

  void register_all(grpc::ServerBuilder& b) {
    b.RegisterService(&data);
    b.RegisterService(&resource);
    b.RegisterService(&stream);
    b.RegisterService(&diagnostics);
    b.RegisterService(&health);
    b.RegisterService(&controller);
  }
};

}  // namespace

int run_fake_plugin_process() {
  const char* cookie = std::getenv("grafana_plugin_type");
  if (!cookie || std::string(cookie) != "datasource") {
    std::fprintf(stderr, "This binary is a plugin. These are not meant to be executed directly.\n");
    return 1;
  }
  signal(SIGINT, SIG_IGN);  // like go-plugin: the host decides when plugins stop
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/dpa-fake-plugin-" +
                     std::to_string(getpid()) + ".sock";
  unlink(path.c_str());
  Services services;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
  services.register_all(builder);
  auto server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "[ERROR] cannot listen on %s\n", path.c_str());
    return 2;
  }
  std::fprintf(stderr, "{\"@level\":\"info\",\"@message\":\"fake plugin serving\",\"@module\":"
                       "\"fake\",\"socket\":\"%s\"}\n", path.c_str());
  std::fflush(stderr);
  std::printf("1|2|unix|%s|grpc|\n", path.c_str());
  std::fflush(stdout);
  std::printf("anything after the handshake line is drained\n");
  std::fflush(stdout);
  {
    std::unique_lock<std::mutex> lock(services.controller.mu);
    services.controller.cv.wait(lock, [&] { return services.controller.shutdown; });
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  unlink(path.c_str());
  return 0;
}

struct InProcessFakePlugin::Impl {
  Services services;
  std::unique_ptr<grpc::Server> server;
};

InProcessFakePlugin::InProcessFakePlugin() : impl_(std::make_unique<Impl>()) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  impl_->services.register_all(builder);
  impl_->server = builder.BuildAndStart();
}

InProcessFakePlugin::~InProcessFakePlugin() { shutdown(); }

void InProcessFakePlugin::shutdown() {
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    impl_->server->Wait();
    impl_->server.reset();
  }
}

}  // namespace dpa::plugin::testing
