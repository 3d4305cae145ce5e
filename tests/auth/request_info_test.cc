// kube's RequestInfo for our own API and the data plane (reference §4, DESIGN §6).
#include "aggregator/auth/auth.h"

#include <gtest/gtest.h>

namespace dpa::auth {
namespace {

// The attributes that matter to authorizers, in one comparable line.
std::string describe(const Attributes& a) {
  if (!a.resource_request) return "nonresource verb=" + a.verb + " path=" + a.path;
  return "verb=" + a.verb + " group=" + a.api_group + " version=" + a.api_version +
         " ns=" + a.namespace_name + " resource=" + a.resource + " sub=" + a.subresource +
         " name=" + a.name;
}

std::string info(std::string_view method, std::string_view path, std::string_view query = "") {
  return describe(request_attributes(method, path, query));
}

constexpr const char* kOwn = "/apis/aggregation.grafana.app/v0alpha1/dataplaneservices";
constexpr const char* kDatasource =
    "/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources/uid1";

TEST(RequestInfoTest, OwnApi) {
  const std::string own = kOwn;
  const std::string base =
      "group=aggregation.grafana.app version=v0alpha1 ns= "
      "resource=dataplaneservices";
  EXPECT_EQ(info("GET", own), "verb=list " + base + " sub= name=");
  EXPECT_EQ(info("GET", own, "watch=true&resourceVersion=5"), "verb=watch " + base + " sub= name=");
  EXPECT_EQ(info("GET", own + "/prom"), "verb=get " + base + " sub= name=prom");
  EXPECT_EQ(info("HEAD", own + "/prom"), "verb=get " + base + " sub= name=prom");
  EXPECT_EQ(info("POST", own), "verb=create " + base + " sub= name=");
  EXPECT_EQ(info("PUT", own + "/prom/status"), "verb=update " + base + " sub=status name=prom");
  EXPECT_EQ(info("PATCH", own + "/prom"), "verb=patch " + base + " sub= name=prom");
  EXPECT_EQ(info("DELETE", own + "/prom"), "verb=delete " + base + " sub= name=prom");
  EXPECT_EQ(info("DELETE", own), "verb=deletecollection " + base + " sub= name=");
  EXPECT_EQ(info("OPTIONS", own), "verb= " + base + " sub= name=");
}

TEST(RequestInfoTest, WatchQueryParameter) {
  auto verb = [](std::string_view query) { return request_attributes("GET", kOwn, query).verb; };
  EXPECT_EQ(verb("watch"), "watch");
  EXPECT_EQ(verb("watch="), "watch");
  EXPECT_EQ(verb("watch=1"), "watch");
  EXPECT_EQ(verb("watch=yes"), "watch");
  EXPECT_EQ(verb("watch=0"), "list");
  EXPECT_EQ(verb("watch=false"), "list");
  EXPECT_EQ(verb("watch=FALSE"), "list");
  EXPECT_EQ(verb("watch=false&watch=true"), "list");  // the first value decides
  EXPECT_EQ(verb("limit=5&wat%63h=true"), "watch");   // keys are unescaped
  EXPECT_EQ(verb("watching=true"), "list");
}

TEST(RequestInfoTest, FieldSelectorOnMetadataNameNamesTheObject) {
  auto name = [](std::string_view query) { return request_attributes("GET", kOwn, query).name; };
  EXPECT_EQ(name("fieldSelector=metadata.name%3Dprom"), "prom");
  EXPECT_EQ(name("fieldSelector=metadata.name==prom"), "prom");
  EXPECT_EQ(name("watch=1&fieldSelector=metadata.namespace%3Dx,metadata.name%3Dprom"), "prom");
  EXPECT_EQ(name("fieldSelector=metadata.name!%3Dprom"), "");
  EXPECT_EQ(name("fieldSelector=metadata.name%3Da%2Fb"), "");       // not a path segment
  EXPECT_EQ(name("fieldSelector=metadata.name%3Dprom,bogus"), "");  // does not parse
  EXPECT_EQ(name("fieldSelector=spec.x%3Dprom"), "");
  EXPECT_EQ(request_attributes("GET", kOwn, "watch=1&fieldSelector=metadata.name%3Dp").verb,
            "watch");
  // Only list/watch take a name from the selector.
  EXPECT_EQ(request_attributes("DELETE", kOwn, "fieldSelector=metadata.name%3Dp").verb,
            "deletecollection");
}

TEST(RequestInfoTest, DataPlane) {
  const std::string ds = kDatasource;
  const std::string base =
      "group=testdata.datasource.grafana.app version=v0alpha1 ns=default "
      "resource=datasources";
  EXPECT_EQ(info("POST", ds + "/query"), "verb=create " + base + " sub=query name=uid1");
  EXPECT_EQ(info("GET", ds + "/health"), "verb=get " + base + " sub=health name=uid1");
  EXPECT_EQ(info("GET", ds + "/resources/a/b"), "verb=get " + base + " sub=resources name=uid1");
  EXPECT_EQ(info("POST", ds + "/resources/a/b"),
            "verb=create " + base + " sub=resources name=uid1");
  EXPECT_EQ(info("GET", ds + "/proxy/x"), "verb=get " + base + " sub=proxy name=uid1");
  // DESIGN §6: subscribing to a stream is a watch; publishing to it is not.
  EXPECT_EQ(info("GET", ds + "/stream/x"), "verb=watch " + base + " sub=stream name=uid1");
  EXPECT_EQ(info("POST", ds + "/stream/x"), "verb=create " + base + " sub=stream name=uid1");
  EXPECT_EQ(info("HEAD", ds + "/stream/x"), "verb=get " + base + " sub=stream name=uid1");
  EXPECT_EQ(info("GET", ds), "verb=get " + base + " sub= name=uid1");
}

TEST(RequestInfoTest, GroupLevelRoutes) {
  EXPECT_EQ(info("GET", "/apis/g/v/metrics"),
            "verb=list group=g version=v ns= resource=metrics sub= name=");
  EXPECT_EQ(info("POST", "/apis/g/v/admission/validate"),
            "verb=create group=g version=v ns= resource=admission sub= name=validate");
  EXPECT_EQ(info("POST", "/apis/g/v/conversion/x"),
            "verb=create group=g version=v ns= resource=conversion sub= name=x");
}

TEST(RequestInfoTest, NonResourcePaths) {
  EXPECT_EQ(info("GET", "/healthz"), "nonresource verb=get path=/healthz");
  EXPECT_EQ(info("HEAD", "/healthz"), "nonresource verb=head path=/healthz");
  EXPECT_EQ(info("GET", "/apis"), "nonresource verb=get path=/apis");
  EXPECT_EQ(info("GET", "/apis/g"), "nonresource verb=get path=/apis/g");
  EXPECT_EQ(info("GET", "/apis/g/v"), "nonresource verb=get path=/apis/g/v");
  EXPECT_EQ(info("GET", "/apis/g/v/"), "nonresource verb=get path=/apis/g/v/");
  EXPECT_EQ(info("GET", "/api"), "nonresource verb=get path=/api");
  EXPECT_EQ(info("GET", "/api/v1"), "nonresource verb=get path=/api/v1");
  EXPECT_EQ(info("POST", "/metrics"), "nonresource verb=post path=/metrics");
  EXPECT_EQ(info("GET", "/openapi/v2/x/y"), "nonresource verb=get path=/openapi/v2/x/y");
  EXPECT_EQ(info("GET", "/version", "watch=1"), "nonresource verb=get path=/version");
}

TEST(RequestInfoTest, CoreGroupAndNamespaces) {
  EXPECT_EQ(info("GET", "/api/v1/pods"),
            "verb=list group= version=v1 ns= resource=pods sub= name=");
  EXPECT_EQ(info("POST", "/api/v1/namespaces/default/pods/web/exec"),
            "verb=create group= version=v1 ns=default resource=pods sub=exec name=web");
  // The Namespace object itself is in its own namespace.
  EXPECT_EQ(info("GET", "/api/v1/namespaces/foo"),
            "verb=get group= version=v1 ns=foo resource=namespaces sub= name=foo");
  EXPECT_EQ(info("PUT", "/api/v1/namespaces/foo/finalize"),
            "verb=update group= version=v1 ns=foo resource=namespaces sub=finalize name=foo");
  EXPECT_EQ(info("GET", "/api/v1/namespaces"),
            "verb=list group= version=v1 ns= resource=namespaces sub= name=");
}

TEST(RequestInfoTest, DeprecatedWatchAndProxyPrefixes) {
  EXPECT_EQ(info("GET", "/api/v1/watch/namespaces/default/pods"),
            "verb=watch group= version=v1 ns=default resource=pods sub= name=");
  EXPECT_EQ(info("GET", "/apis/g/v/watch/things/a"),
            "verb=watch group=g version=v ns= resource=things sub= name=a");
  // proxy has no subresource: what follows the name is the proxied path.
  EXPECT_EQ(info("GET", "/api/v1/proxy/namespaces/default/pods/web/x/y"),
            "verb=proxy group= version=v1 ns=default resource=pods sub= name=web");
  EXPECT_EQ(info("GET", "/api/v1/watch"), "verb=watch group= version=v1 ns= resource= sub= name=");
}

TEST(RequestInfoTest, SegmentsArePercentDecoded) {
  Attributes a =
      request_attributes("GET", "/apis/g/v/namespaces/team%20a/datasources/uid%2F1/health", "");
  EXPECT_EQ(a.namespace_name, "team a");
  EXPECT_EQ(a.name, "uid/1");  // an escaped slash stays inside the name, as the router reads it
  EXPECT_EQ(a.subresource, "health");
  EXPECT_EQ(a.path, "/apis/g/v/namespaces/team a/datasources/uid/1/health");
  EXPECT_EQ(request_attributes("GET", "/apis/g/v/things/a%zz", "").name, "a%zz");
  EXPECT_EQ(request_attributes("GET", "/metrics%2Fx", "").path, "/metrics/x");
}

}  // namespace
}  // namespace dpa::auth
