#include "aggregator/app/discovery.h"

#include <gtest/gtest.h>

namespace dpa::app {
namespace {

using nlohmann::json;

const json kOwn = {{"name", "aggregation.grafana.app"},
                   {"versions", {{{"groupVersion", "aggregation.grafana.app/v0alpha1"},
                                  {"version", "v0alpha1"}}}},
                   {"preferredVersion", {{"groupVersion", "aggregation.grafana.app/v0alpha1"},
                                         {"version", "v0alpha1"}}}};

TEST(DiscoveryTest, AcceptNegotiation) {
  EXPECT_EQ(aggregated_discovery_version(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                "application/json"),
            "v2");
  EXPECT_EQ(aggregated_discovery_version(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
            "v2beta1");
  EXPECT_EQ(aggregated_discovery_version("application/json"), std::nullopt);
  EXPECT_EQ(aggregated_discovery_version(""), std::nullopt);
  EXPECT_EQ(aggregated_discovery_version(
                "application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"),
            std::nullopt);
}

TEST(DiscoveryTest, LegacyMergeHasNoDuplicates) {
  json delegate = {{"kind", "APIGroupList"},
                   {"groups",
                    {{{"name", "foo.example.com"},
                      {"versions", {{{"groupVersion", "foo.example.com/v1"}, {"version", "v1"}}}}},
                     {{"name", "prometheus.grafana.app"},
                      {"versions", {{{"groupVersion", "prometheus.grafana.app/v0alpha1"},
                                     {"version", "v0alpha1"}}}}}}}};
  json merged = merge_group_list(kOwn, {{"prometheus.grafana.app", "v0alpha1"},
                                        {"prometheus.grafana.app", "v1"}},
                                 delegate);
  ASSERT_EQ(merged["kind"], "APIGroupList");
  ASSERT_EQ(merged["groups"].size(), 3u);
  EXPECT_EQ(merged["groups"][0]["name"], "aggregation.grafana.app");
  EXPECT_EQ(merged["groups"][1]["name"], "prometheus.grafana.app");
  EXPECT_EQ(merged["groups"][1]["versions"].size(), 2u);
  EXPECT_EQ(merged["groups"][1]["preferredVersion"]["version"], "v0alpha1");
  EXPECT_EQ(merged["groups"][2]["name"], "foo.example.com");
}

TEST(DiscoveryTest, AggregatedMergeWithoutDelegate) {
  json own = {{"metadata", {{"name", "aggregation.grafana.app"}}},
              {"versions", {{{"version", "v0alpha1"}, {"resources", json::array()}}}}};
  json merged = merge_discovery_list(own, {{"testdata.datasource.grafana.app", "v0alpha1"}},
                                     nullptr, "v2");
  EXPECT_EQ(merged["apiVersion"], "apidiscovery.k8s.io/v2");
  ASSERT_EQ(merged["items"].size(), 2u);
  EXPECT_EQ(merged["items"][1]["metadata"]["name"], "testdata.datasource.grafana.app");
  EXPECT_EQ(merged["items"][1]["versions"][0]["freshness"], "Current");
}

}  // namespace
}  // namespace dpa::app
