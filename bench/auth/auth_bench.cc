// Per-request cost of the authn/authz stage (DESIGN §5: under 10 us p50), measured on what
// AccessControl::check runs for a query: request attributes, the authenticator chain, the
// authorizer chain. Modes: static token + ABAC, and the webhooks with their caches warm (the
// review server answers once, every later request is a cache hit).
#include "aggregator/auth/auth.h"
#include "aggregator/auth/webhook.h"

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

namespace {

using namespace dpa;

constexpr const char* kTarget =
    "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources/testdata/query";

http::Header query_header(const std::string& token) {
  http::Header header;
  header.method(boost::beast::http::verb::post);
  header.target(kTarget);
  header.set(boost::beast::http::field::host, "127.0.0.1");
  header.set(boost::beast::http::field::authorization, "Bearer " + token);
  return header;
}

// One request through both chains, as AccessControl does it; false when it was not allowed.
bool check(const auth::Authenticator& authn, const auth::Authorizer& authz,
           const http::Header& header) {
  auth::Credentials credentials{&header, nullptr};
  bool allowed = false;
  authn.authenticate(credentials, [&](auth::AuthnResult result) {
    if (result.kind != auth::AuthnResult::Kind::kAuthenticated) return;
    auth::Attributes attributes = auth::request_attributes(
        header.method_string(), header.target(), std::string_view());
    attributes.user = std::move(result.user);
    authz.authorize(attributes, [&](auth::AuthzResult r) {
      allowed = r.decision == auth::AuthzResult::Decision::kAllow;
    });
  });
  return allowed;
}

std::string write_file(const std::string& name, const std::string& text) {
  std::string path = "/tmp/dpa-auth-bench-" + std::to_string(getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

void BM_StaticTokenAndAbac(benchmark::State& state) {
  auto tokens = auth::load_token_file(write_file("tokens.csv", "bench-token-0123456789,bench,1\n"));
  auto policy = auth::load_abac_policy(write_file(
      "abac.jsonl",
      R"({"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{"user":"bench","apiGroup":"testdata.datasource.grafana.app","namespace":"default","resource":"datasources"}})"
      "\n"));
  auto authn = auth::make_authenticator_chain({tokens.value()}, false);
  auto authz = auth::make_authorizer_chain({policy.value()});
  const auto header = query_header("bench-token-0123456789");
  for (auto _ : state) {
    if (!check(*authn, *authz, header)) state.SkipWithError("not allowed");
  }
}
BENCHMARK(BM_StaticTokenAndAbac);

// A review server that answers every TokenReview with user "bench" and every
// SubjectAccessReview with allowed; only the first request of each reaches it.
class ReviewServer {
 public:
  ReviewServer() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { serve(); });
  }
  ~ReviewServer() {
    io_.stop();
    acceptor_.close();
    thread_.detach();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  int reviews() const { return reviews_.load(); }

 private:
  void serve() {
    for (;;) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      boost::asio::streambuf buffer;
      while (boost::asio::read_until(socket, buffer, "\r\n\r\n", ec) && !ec) {
        std::string head(boost::asio::buffers_begin(buffer.data()),
                         boost::asio::buffers_begin(buffer.data()) + buffer.size());
        const auto length_at = head.find("Content-Length: ");
        const std::size_t end = head.find("\r\n\r\n") + 4;
        const std::size_t length = std::stoul(head.substr(length_at + 16));
        if (buffer.size() < end + length) {
          boost::asio::read(socket, buffer, boost::asio::transfer_exactly(end + length - buffer.size()), ec);
        }
        head.assign(boost::asio::buffers_begin(buffer.data()),
                    boost::asio::buffers_begin(buffer.data()) + end + length);
        buffer.consume(end + length);
        ++reviews_;
        const bool token = head.find("TokenReview") != std::string::npos;
        const std::string body =
            token ? R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"bench","groups":["bench"]}}})"
                  : R"({"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","status":{"allowed":true}})";
        // One review per connection: the client opens a new one for the next.
        const std::string reply =
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n"
            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        boost::asio::write(socket, boost::asio::buffer(reply), ec);
        break;
      }
    }
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<int> reviews_{0};
  std::thread thread_;
};

void BM_WebhooksWarmCache(benchmark::State& state) {
  ReviewServer server;
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::thread runner([&io] { io.run(); });
  auto kubeconfig = [&](const char* name, const char* path) {
    return write_file(name, "apiVersion: v1\nkind: Config\nclusters: [{name: w, cluster: {server: "
                            "\"http://127.0.0.1:" + std::to_string(server.port()) + path +
                                "\"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: c, "
                                "context: {cluster: w, user: u}}]\ncurrent-context: c\n");
  };
  auth::WebhookOptions authn_options, authz_options;
  authn_options.config_file = kubeconfig("authn.yaml", "/authenticate");
  authz_options.config_file = kubeconfig("authz.yaml", "/authorize");
  auto authn = auth::make_authenticator_chain(
      {auth::make_token_webhook(authn_options, io.get_executor()).value()}, false);
  auto authz = auth::make_authorizer_chain(
      {auth::make_authorization_webhook(authz_options, io.get_executor()).value()});
  const auto header = query_header("bench-token-0123456789");
  {
    // Warm both caches: the first check waits for the two reviews.
    std::promise<bool> warmed;
    auth::Credentials credentials{&header, nullptr};
    authn->authenticate(credentials, [&](auth::AuthnResult result) {
      if (result.kind != auth::AuthnResult::Kind::kAuthenticated) {
        std::fprintf(stderr, "token webhook: %s\n", result.error.c_str());
        return warmed.set_value(false);
      }
      auth::Attributes attributes = auth::request_attributes(
          header.method_string(), header.target(), std::string_view());
      attributes.user = std::move(result.user);
      authz->authorize(attributes, [&](auth::AuthzResult r) {
        if (!r.error.empty()) std::fprintf(stderr, "authorization webhook: %s\n", r.error.c_str());
        warmed.set_value(r.decision == auth::AuthzResult::Decision::kAllow);
      });
    });
    if (!warmed.get_future().get()) state.SkipWithError("webhook did not allow");
  }
  for (auto _ : state) {
    if (!check(*authn, *authz, header)) state.SkipWithError("not answered from the cache");
  }
  state.counters["reviews"] = server.reviews();
  guard.reset();
  io.stop();
  runner.join();
}
BENCHMARK(BM_WebhooksWarmCache);

}  // namespace

BENCHMARK_MAIN();
