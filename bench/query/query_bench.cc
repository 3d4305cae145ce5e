// Query-path benchmark driver: the same QueryData request (a) as an HTTP POST through the
// aggregator (keep-alive connection) and (b) straight to the plugin over gRPC, sequentially, so
// the difference of the latency distributions is what the aggregator adds (DESIGN §5: p50 added
// latency < 150 us). Prints one JSON object with both measurements and the difference.
//
// Usage: query_bench --url http://127.0.0.1:PORT --grpc unix:/path --requests N --warmup W [--token T]
#include "plugins/proto/backend.grpc.pb.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr const char* kPlugin = "grafana-testdata-datasource";
constexpr const char* kQueryJson =
    R"({"refId":"A","datasource":{"type":"grafana-testdata-datasource","uid":"testdata"},)"
    R"("scenarioId":"random_walk","seriesCount":1,"intervalMs":1000,"maxDataPoints":60})";

struct Stats {
  double p50_us = 0, p90_us = 0, p99_us = 0, mean_us = 0, throughput_rps = 0;
  int errors = 0;
};

Stats summarize(std::vector<double> us, double seconds, int errors) {
  Stats s;
  s.errors = errors;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))]; };
  s.p50_us = at(0.50);
  s.p90_us = at(0.90);
  s.p99_us = at(0.99);
  double sum = 0;
  for (double v : us) sum += v;
  s.mean_us = sum / us.size();
  s.throughput_rps = us.size() / seconds;
  return s;
}

nlohmann::json to_json(const Stats& s) {
  return {{"p50_us", s.p50_us}, {"p90_us", s.p90_us}, {"p99_us", s.p99_us},
          {"mean_us", s.mean_us}, {"throughput_rps", s.throughput_rps}, {"errors", s.errors}};
}

// One measurement series: latencies of every request and the wall time they took together.
struct Samples {
  std::vector<double> us;
  double seconds = 0;
  int errors = 0;
};

// HTTP through the aggregator over one keep-alive connection, kept open across rounds.
class HttpPath {
 public:
  HttpPath(const std::string& host, const std::string& port, std::string token)
      : host_(host), token_(std::move(token)), stream_(io_) {
    tcp::resolver resolver(io_);
    stream_.connect(resolver.resolve(host, port));
    stream_.socket().set_option(tcp::no_delay(true));
  }
  void run(int warmup, int n, Samples& out);

 private:
  std::string host_;
  std::string token_;  // sent as a bearer token when not empty
  boost::asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

void HttpPath::run(int warmup, int n, Samples& out) {
  const std::string& host = host_;
  auto& stream = stream_;
  auto& buffer = buffer_;
  const std::string body = std::string(R"({"from":"now-5m","to":"now","queries":[)") + kQueryJson + "]}";
  bhttp::request<bhttp::string_body> req{
      bhttp::verb::post,
      "/apis/testdata.grafana.app/v0alpha1/namespaces/default/datasources/testdata/query", 11};
  req.set(bhttp::field::host, host);
  req.set(bhttp::field::content_type, "application/json");
  if (!token_.empty()) req.set(bhttp::field::authorization, "Bearer " + token_);
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();
  Clock::time_point start;
  for (int i = 0; i < warmup + n; ++i) {
    if (i == warmup) start = Clock::now();
    auto t0 = Clock::now();
    bhttp::write(stream, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream, buffer, res);
    auto t1 = Clock::now();
    if (res.result_int() != 200 && out.errors++ == 0) {
      std::fprintf(stderr, "query_bench: HTTP %u: %.300s\n", res.result_int(), res.body().c_str());
    }
    if (i >= warmup) out.us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  out.seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

// QueryData straight to the plugin over one gRPC channel, kept open across rounds.
class GrpcPath {
 public:
  explicit GrpcPath(const std::string& target) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT32_MAX);
    stub_ = pluginv2::Data::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }
  void run(int warmup, int n, Samples& out);

 private:
  std::unique_ptr<pluginv2::Data::Stub> stub_;
};

void GrpcPath::run(int warmup, int n, Samples& out) {
  auto& stub = stub_;
  pluginv2::QueryDataRequest request;
  auto* ctx = request.mutable_plugincontext();
  ctx->set_orgid(1);
  ctx->set_pluginid(kPlugin);
  auto* ds = ctx->mutable_datasourceinstancesettings();
  ds->set_uid("testdata");
  ds->set_name("TestData");
  ds->set_jsondata(R"({"greeting":"hello"})");
  auto* q = request.add_queries();
  q->set_refid("A");
  q->set_maxdatapoints(60);
  q->set_intervalms(1000);
  q->set_json(kQueryJson);
  Clock::time_point start;
  for (int i = 0; i < warmup + n; ++i) {
    if (i == warmup) start = Clock::now();
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    q->mutable_timerange()->set_fromepochms(now_ms - 300000);
    q->mutable_timerange()->set_toepochms(now_ms);
    auto t0 = Clock::now();
    grpc::ClientContext context;
    pluginv2::QueryDataResponse response;
    auto status = stub->QueryData(&context, request, &response);
    auto t1 = Clock::now();
    if (!status.ok()) ++out.errors;
    if (i >= warmup) out.us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  out.seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, grpc_target, token;
  int n = 5000, warmup = 500;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--url") url = argv[i + 1];
    else if (flag == "--grpc") grpc_target = argv[i + 1];
    else if (flag == "--token") token = argv[i + 1];
    else if (flag == "--requests") n = std::atoi(argv[i + 1]);
    else if (flag == "--warmup") warmup = std::atoi(argv[i + 1]);
  }
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0 || grpc_target.empty() || n <= 0) {
    std::fprintf(stderr, "usage: query_bench --url http://HOST:PORT --grpc TARGET [--requests N] [--warmup W] [--token T]\n");
    return 2;
  }
  const std::string hostport = url.substr(prefix.size());
  const auto colon = hostport.rfind(':');
  const std::string host = hostport.substr(0, colon);
  const std::string port = hostport.substr(colon + 1);
  // Alternate the two in rounds so drift (other load, frequency) affects both alike.
  constexpr int kRounds = 5;
  GrpcPath grpc_path(grpc_target);
  HttpPath http_path(host, port, token);
  Samples direct_samples, via_samples;
  for (int round = 0; round < kRounds; ++round) {
    const int per_round = n / kRounds + (round < n % kRounds ? 1 : 0);
    const int round_warmup = round == 0 ? warmup : warmup / 10;
    grpc_path.run(round_warmup, per_round, direct_samples);
    http_path.run(round_warmup, per_round, via_samples);
  }
  Stats direct = summarize(std::move(direct_samples.us), direct_samples.seconds, direct_samples.errors);
  Stats via = summarize(std::move(via_samples.us), via_samples.seconds, via_samples.errors);
  nlohmann::json out = {
      {"requests", n},
      {"direct_grpc", to_json(direct)},
      {"via_aggregator", to_json(via)},
      {"added_p50_us", via.p50_us - direct.p50_us},
      {"added_p99_us", via.p99_us - direct.p99_us},
  };
  std::printf("%s\n", out.dump(2).c_str());
  return direct.errors + via.errors == 0 ? 0 : 1;
}
