// A DataPlane over fake plugins and a fixed datasource set, plus request helpers, for the unary
// handler tests.
#pragma once

#include "aggregator/dataplane/dispatcher.h"
#include "aggregator/dataplane/route_table.h"
#include "tests/dataplane/fakes.h"

#include <gtest/gtest.h>

namespace dpa::testing {

inline plugin::Datasource datasource(const std::string& uid, const std::string& type,
                                     std::int64_t org = 1) {
  plugin::Datasource ds;
  ds.uid = uid;
  ds.name = uid + "-name";
  ds.type = type;
  ds.url = "http://localhost:9090";
  ds.org_id = org;
  ds.json_data = {{"k", "v"}};
  return ds;
}

struct DataPlaneFixture {
  FakePluginHost host;
  std::shared_ptr<FakePluginClient> plugin = host.add("testds");
  std::shared_ptr<const plugin::DatasourceSet> datasources =
      std::make_shared<const plugin::DatasourceSet>(std::vector<plugin::Datasource>{
          datasource("123", "testds"), datasource("other", "otherds"),
          datasource("org2ds", "testds", 2)});
  dataplane::DataPlane data_plane{dataplane::DataPlaneContext{
      host, [this] { return datasources; }, dataplane::DataPlaneOptions{}}};
  std::shared_ptr<const dataplane::RouteTable> table = dataplane::RouteTable::build(
      {dataplane::ServiceEntry{"v1.testds.example.com",
                               {"testds", "datasource", "testds.example.com", "v1",
                                {{"query", "", ""},
                                 {"health", "", ""},
                                 {"metrics", "", ""},
                                 {"admission", "", ""},
                                 {"conversion", "", ""}}}}});

  // Routes and runs one request as `user` (what the front router sets after authentication);
  // waits for the response.
  std::shared_ptr<FakeExchange> run(boost::beast::http::verb method, const std::string& target,
                                    std::string body = {},
                                    std::vector<std::pair<std::string, std::string>> headers = {},
                                    std::optional<plugin::RequestUser> user = std::nullopt) {
    auto exchange = make_exchange(method, target, std::move(body), std::move(headers));
    const std::string path(exchange->path());
    auto match = table->match(std::string(boost::beast::http::to_string(method)), path);
    EXPECT_TRUE(match.has_value()) << target;
    if (!match) return exchange;
    match->user = std::move(user);
    data_plane.handle(exchange, std::move(*match));
    EXPECT_TRUE(exchange->wait()) << "no response for " << target;
    return exchange;
  }
};

}  // namespace dpa::testing
