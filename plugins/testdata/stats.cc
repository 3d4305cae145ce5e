#include "plugins/testdata/stats.h"

namespace dpa::testdata {

std::string Stats::prometheus_text() const {
  std::string out;
  auto family = [&out](const char* name, const char* type, const char* help, auto value) {
    out += std::string("# HELP ") + name + " " + help + "\n";
    out += std::string("# TYPE ") + name + " " + type + "\n";
    out += std::string(name) + " " + std::to_string(value) + "\n";
  };
  family("testdata_queries_served_total", "counter", "Data queries answered (one per refId).",
         queries_served.load());
  family("testdata_resource_calls_total", "counter", "CallResource calls handled.",
         resource_calls.load());
  family("testdata_streams_running", "gauge", "RunStream calls currently running.",
         streams_running.load());
  family("testdata_stream_packets_sent_total", "counter", "Stream packets sent by RunStream.",
         packets_sent.load());
  return out;
}

}  // namespace dpa::testdata
