// The reverse proxy to the next API server (DESIGN §2.3): everything the aggregator does not serve
// itself goes here unchanged and streaming, with hop-by-hop headers dropped, X-Forwarded-* set,
// Upgrade tunnelled after a 101, and every failure answered as a Kubernetes Status.
#pragma once

#include "aggregator/apimachinery/status.h"
#include "aggregator/auth/auth.h"
#include "aggregator/http/client.h"
#include "aggregator/http/exchange.h"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dpa::delegate {

struct DelegateOptions {
  std::string url;  // "https://host:port[/prefix]"; empty = no delegate
  std::string ca_file, client_cert_file, client_key_file;
  std::chrono::seconds connect_timeout{5};
  // Time allowed for the delegate's response head (not the body: watches stream for hours).
  std::chrono::seconds response_timeout{60};
  // Front-proxy mode (kube-aggregator's): the user travels as X-Remote-User/-Uid/-Group/-Extra-*
  // over a connection presenting client_cert_file (the proxy client certificate), and the
  // client's Authorization and Impersonate-* headers are dropped. Otherwise (pass-through) the
  // client's own credentials go through for the delegate to judge. A client's X-Remote-* headers
  // never go through.
  bool front_proxy = false;
};

class DelegateProxy {
 public:
  DelegateProxy(boost::asio::io_context& io, DelegateOptions options);  // url empty = none
  ~DelegateProxy();

  bool configured() const;
  // Configuration errors (bad URL, unreadable CA/cert): the process refuses to start on them.
  // While an error stands, forward() answers 503 with it.
  const api::Outcome& status() const { return status_; }
  // Reads the CA and client (proxy) certificate files again; new connections use them.
  api::Outcome reload_tls();

  // Proxies the request (404 Status when no delegate is configured) on behalf of `user`.
  void forward(std::shared_ptr<http::Exchange> exchange,
               std::shared_ptr<const auth::UserInfo> user = nullptr);

  // For the /apis discovery merge: GET path with headers, whole body (16 MiB max), within
  // timeout. `done` runs on an io_context thread.
  void fetch(std::string path, std::vector<std::pair<std::string, std::string>> headers,
             std::chrono::milliseconds timeout,
             std::function<void(api::Expected<http::Response>)> done);

  const http::Endpoint& endpoint() const { return endpoint_; }
  std::size_t idle_connections() const;

 private:
  boost::asio::io_context& io_;
  DelegateOptions options_;
  http::Endpoint endpoint_;
  api::Outcome status_ = api::Ok{};
  std::unique_ptr<http::HttpClient> client_;
};

}  // namespace dpa::delegate
