// CPU cost of the aggregator's own work on the query path, without sockets or the plugin: parsing
// the Grafana query body, building the QueryDataRequest, and encoding the plugin's answer (Arrow
// IPC -> frame JSON, 2-space indented). The end-to-end figure is bench/query/run.sh; this one says
// how much of it is our code.
//   ninja -C build-release dpa_query_codec_bench && build-release/bench/query/dpa_query_codec_bench
#include "aggregator/dataplane/query_handler.h"
#include "aggregator/frames/arrow_codec.h"

#include "plugins/proto/backend.pb.h"

#include <benchmark/benchmark.h>

#include <cmath>
#include <string>

namespace {

constexpr const char* kBody = R"({
  "queries": [
    {
      "refId": "A",
      "datasource": { "type": "grafana-testdata-datasource", "uid": "testdata" },
      "queryType": "random_walk",
      "seriesCount": 1,
      "intervalMs": 1000,
      "maxDataPoints": 60
    }
  ],
  "from": "now-1m",
  "to": "now"
})";

// What testdata's random walk answers for the body above: a time and a float64 column, 60 rows.
pluginv2::QueryDataResponse random_walk_response(int rows) {
  dpa::frames::Frame frame;
  frame.name = "A-series";
  frame.ref_id = "A";
  dpa::frames::Field time{.name = "time", .type = dpa::frames::FieldType::kTime};
  dpa::frames::Field value{.name = "A-series", .type = dpa::frames::FieldType::kFloat64};
  value.labels = {{"series", "0"}};
  double walk = 50;
  const int64_t start_ns = 1'700'000'000'000'000'000;
  for (int i = 0; i < rows; ++i) {
    time.ints.push_back(start_ns + int64_t{i} * 1'000'000'000);
    walk += std::sin(i * 0.7) * 3.1415926535;
    value.floats.push_back(walk);
  }
  frame.fields = {std::move(time), std::move(value)};
  pluginv2::QueryDataResponse response;
  auto& answer = (*response.mutable_responses())["A"];
  answer.add_frames(dpa::frames::write_arrow(frame));
  answer.set_status(200);
  return response;
}

void BM_ParseQueryRequest(benchmark::State& state) {
  for (auto _ : state) {
    auto parsed = dpa::dataplane::parse_query_request(kBody, 1'700'000'000'000);
    benchmark::DoNotOptimize(parsed);
  }
}
BENCHMARK(BM_ParseQueryRequest);

void BM_EncodeQueryResponse(benchmark::State& state) {
  const auto response = random_walk_response(static_cast<int>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto encoded = dpa::dataplane::encode_query_response(response);
    bytes += encoded->size();
    benchmark::DoNotOptimize(encoded);
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_EncodeQueryResponse)->Arg(60)->Arg(1000);

void BM_ReadArrow(benchmark::State& state) {
  const auto response = random_walk_response(static_cast<int>(state.range(0)));
  const std::string& bytes = response.responses().at("A").frames(0);
  for (auto _ : state) {
    auto frame = dpa::frames::read_arrow(bytes);
    benchmark::DoNotOptimize(frame);
  }
}
BENCHMARK(BM_ReadArrow)->Arg(60)->Arg(1000);

void BM_IndentJson(benchmark::State& state) {
  const auto response = random_walk_response(static_cast<int>(state.range(0)));
  auto encoded = dpa::dataplane::encode_query_response(response);
  // Compact it again so indent_json has the input encode_query_response gives it.
  std::string compact;
  bool in_string = false;
  for (std::size_t i = 0; i < encoded->size(); ++i) {
    const char c = (*encoded)[i];
    if (in_string) {
      compact.push_back(c);
      if (c == '\\') compact.push_back((*encoded)[++i]);
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
      compact.push_back(c);
    } else if (c != ' ' && c != '\n') {
      compact.push_back(c);
    }
  }
  for (auto _ : state) {
    auto indented = dpa::dataplane::indent_json(compact);
    benchmark::DoNotOptimize(indented);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * compact.size()));
}
BENCHMARK(BM_IndentJson)->Arg(60)->Arg(1000);

}  // namespace

BENCHMARK_MAIN();
