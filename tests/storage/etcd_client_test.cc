// The etcd client's pure parts: the prefix rule, server URLs, and the one mapping from etcd's gRPC
// errors to Kubernetes Status codes.
#include "aggregator/storage/etcd/etcd_client.h"

#include <gtest/gtest.h>

namespace dpa::storage::etcd {
namespace {

TEST(EtcdPrefixEnd, IncrementsTheLastByteBelow0xff) {
  EXPECT_EQ(prefix_end("/registry/pods/"), "/registry/pods0");
  EXPECT_EQ(prefix_end("a\xff"), "b");
  EXPECT_EQ(prefix_end("a\xff\xff"), "b");
  EXPECT_EQ(prefix_end(std::string("\xff\xff")), std::string(1, '\0'));  // everything after
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

TEST(EtcdError, MapsEtcdFailuresToStatusCodes) {
  using grpc::Status;
  using grpc::StatusCode;
  EXPECT_EQ(etcd_error(Status(StatusCode::UNAVAILABLE, "etcdserver: no leader"), "w").code, 503);
  EXPECT_EQ(etcd_error(Status(StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"), "w").code, 503);
  // Debian's 3.4 answers a write without quorum this way after 7 s.
  EXPECT_EQ(etcd_error(Status(StatusCode::UNKNOWN, "context deadline exceeded"), "w").code, 503);
  auto compacted = etcd_error(
      Status(StatusCode::OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"), "w");
  EXPECT_EQ(compacted.code, 410);
  EXPECT_EQ(compacted.reason, "Expired");
  EXPECT_EQ(etcd_error(Status(StatusCode::OUT_OF_RANGE,
                              "etcdserver: mvcc: required revision is a future revision"), "w").code,
            500);
  EXPECT_EQ(etcd_error(Status(StatusCode::INVALID_ARGUMENT, "etcdserver: request is too large"),
                       "w").code,
            413);
  EXPECT_EQ(etcd_error(Status(StatusCode::RESOURCE_EXHAUSTED,
                              "etcdserver: mvcc: database space exceeded"), "w").code,
            500);
  auto unavailable = etcd_error(Status(StatusCode::UNAVAILABLE, "connection refused"), "write /k");
  EXPECT_EQ(unavailable.message, "storage unavailable: write /k: connection refused");
}

TEST(EtcdError, OnlyTransportFailuresLeaveTheOutcomeUnknown) {
  using grpc::Status;
  using grpc::StatusCode;
  EXPECT_TRUE(outcome_unknown(Status(StatusCode::UNAVAILABLE, "x")));
  EXPECT_TRUE(outcome_unknown(Status(StatusCode::DEADLINE_EXCEEDED, "x")));
  EXPECT_TRUE(outcome_unknown(Status(StatusCode::UNKNOWN, "context deadline exceeded")));
  EXPECT_FALSE(outcome_unknown(Status(StatusCode::INVALID_ARGUMENT, "etcdserver: request is too large")));
  EXPECT_FALSE(outcome_unknown(Status(StatusCode::UNKNOWN, "something else")));
}

TEST(EtcdClient, RejectsBadServersAndHalfAClientCertificate) {
  EXPECT_EQ(Client::create({.servers = {}}).error().code, 400);
  EXPECT_EQ(Client::create({.servers = {"ftp://etcd:2379"}}).error().code, 400);
  EXPECT_EQ(Client::create({.servers = {"http://etcd"}}).error().code, 400);
  EXPECT_EQ(Client::create({.servers = {"http://etcd:2379/path"}}).error().code, 400);
  EXPECT_EQ(Client::create({.servers = {"https://etcd:2379"}, .cert_file = "/c.pem"}).error().code,
            400);
  EXPECT_EQ(Client::create({.servers = {"https://etcd:2379"}, .ca_file = "/nonexistent/ca.pem"})
                .error()
                .code,
            500);
  auto ok = Client::create({.servers = {"http://127.0.0.1:2379", "etcd-1:2379"}});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ((*ok)->endpoint(1), "etcd-1:2379");
}

}  // namespace
}  // namespace dpa::storage::etcd
