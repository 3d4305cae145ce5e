#include "aggregator/storage/etcd/etcd_client.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dpa::storage::etcd {
namespace {

// gRPC's keepalive: a member that stops answering (SIGSTOP, a partition) is noticed on an open
// watch stream within about 15 s. etcd refuses pings closer than 5 s apart.
constexpr int kKeepaliveMs = 10'000;
constexpr int kKeepaliveTimeoutMs = 5'000;
// A list of every object arrives in one RangeResponse: raise gRPC's 4 MiB receive limit.
constexpr int kMaxReceiveBytes = 512 * 1024 * 1024;

api::Expected<std::string> read_pem(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return api::ApiError::internal(flag + " " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "http://host:port" / "https://host:port" / "host:port" -> {"host:port", tls?}.
api::Expected<std::pair<std::string, bool>> parse_server(const std::string& server) {
  std::string rest = server;
  bool tls = false;
  if (rest.rfind("https://", 0) == 0) {
    tls = true;
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return api::ApiError::bad_request("--etcd-servers: " + server + ": scheme must be http or https");
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find('/') != std::string::npos || rest.find(':') == std::string::npos) {
    return api::ApiError::bad_request("--etcd-servers: " + server + ": expected http(s)://host:port");
  }
  return std::make_pair(rest, tls);
}

}  // namespace

api::ApiError etcd_error(const grpc::Status& status, const std::string& what) {
  const std::string& message = status.error_message();
  const std::string cause = what + ": " + (message.empty() ? "no reply" : message);
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return api::ApiError::unavailable("storage unavailable: " + cause, 1);
    case grpc::StatusCode::OUT_OF_RANGE:
      if (message.find("compacted") != std::string::npos) {
        return api::ApiError::expired("storage: " + cause);
      }
      return api::ApiError::internal("storage: " + cause);
    case grpc::StatusCode::INVALID_ARGUMENT:
      if (message.find("request is too large") != std::string::npos) {
        return api::ApiError::too_large("storage: " + cause);
      }
      return api::ApiError::internal("storage: " + cause);
    case grpc::StatusCode::UNKNOWN:
      // Debian's 3.4 answers a write without a leader with UNKNOWN "context deadline exceeded".
      if (message.find("deadline") != std::string::npos ||
          message.find("timed out") != std::string::npos) {
        return api::ApiError::unavailable("storage unavailable: " + cause, 1);
      }
      return api::ApiError::internal("storage: " + cause);
    default:
      return api::ApiError::internal("storage: " + cause);
  }
}

bool outcome_unknown(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return true;
    case grpc::StatusCode::UNKNOWN:
      return status.error_message().find("deadline") != std::string::npos ||
             status.error_message().find("timed out") != std::string::npos;
    default:
      return false;
  }
}

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every byte 0xff: to the end of the keyspace
}

api::Expected<std::shared_ptr<Client>> Client::create(ClientOptions options) {
  if (options.servers.empty()) {
    return api::ApiError::bad_request("--etcd-servers: at least one server is required");
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return api::ApiError::bad_request("--etcd-certfile and --etcd-keyfile go together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.ca_file.empty()) {
    auto ca = read_pem("--etcd-cafile", options.ca_file);
    if (!ca) return std::move(ca).error();
    ssl.pem_root_certs = std::move(*ca);
  }
  if (!options.cert_file.empty()) {
    auto cert = read_pem("--etcd-certfile", options.cert_file);
    if (!cert) return std::move(cert).error();
    auto key = read_pem("--etcd-keyfile", options.key_file);
    if (!key) return std::move(key).error();
    ssl.pem_cert_chain = std::move(*cert);
    ssl.pem_private_key = std::move(*key);
  }
  const bool tls_files = !options.ca_file.empty() || !options.cert_file.empty();

  std::shared_ptr<Client> client(new Client(options));
  for (const std::string& server : options.servers) {
    auto parsed = parse_server(server);
    if (!parsed) return std::move(parsed).error();
    const auto& [endpoint, https] = *parsed;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    // Reconnect to a member that came back within a second or two, not gRPC's default 20 s+.
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
    auto credentials = (https || tls_files) ? grpc::SslCredentials(ssl)
                                            : grpc::InsecureChannelCredentials();
    Stubs stubs;
    stubs.endpoint = endpoint;
    stubs.channel = grpc::CreateCustomChannel("dns:///" + endpoint, credentials, args);
    stubs.kv = etcdserverpb::KV::NewStub(stubs.channel);
    stubs.watch = etcdserverpb::Watch::NewStub(stubs.channel);
    stubs.lease = etcdserverpb::Lease::NewStub(stubs.channel);
    client->stubs_.push_back(std::move(stubs));
  }
  return client;
}

std::unique_ptr<grpc::ClientContext> Client::context(std::chrono::milliseconds timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (timeout.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  // Refused at once by a member without a leader, as kube-apiserver's client asks.
  ctx->AddMetadata("hasleader", "true");
  return ctx;
}

bool Client::fail_over(std::size_t member, const grpc::Status& status) {
  const bool members_fault = outcome_unknown(status) ||
                             status.error_message().find("leader") != std::string::npos;
  if (!members_fault) return false;
  std::size_t seen = current_.load();
  // Another call may have moved on from this member already: move at most once per failure.
  if (seen % stubs_.size() == member) current_.compare_exchange_strong(seen, seen + 1);
  return true;
}

grpc::Status Client::range(const etcdserverpb::RangeRequest& request,
                           etcdserverpb::RangeResponse* response) {
  grpc::Status status;
  for (std::size_t attempt = 0; attempt < stubs_.size(); ++attempt) {
    const std::size_t m = member();
    auto ctx = context();
    status = kv(m).Range(ctx.get(), request, response);
    if (status.ok() || !fail_over(m, status)) return status;
  }
  return status;
}

grpc::Status Client::txn(const etcdserverpb::TxnRequest& request,
                         etcdserverpb::TxnResponse* response, std::size_t* member_used) {
  const std::size_t m = member();
  if (member_used) *member_used = m;
  auto ctx = context();
  grpc::Status status = kv(m).Txn(ctx.get(), request, response);
  if (!status.ok()) fail_over(m, status);
  return status;
}

grpc::Status Client::compact(const etcdserverpb::CompactionRequest& request,
                             etcdserverpb::CompactionResponse* response) {
  const std::size_t m = member();
  auto ctx = context();
  grpc::Status status = kv(m).Compact(ctx.get(), request, response);
  if (!status.ok()) fail_over(m, status);
  return status;
}

}  // namespace dpa::storage::etcd
