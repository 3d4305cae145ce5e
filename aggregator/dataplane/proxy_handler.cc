// The whole exchange runs on the session's strand (the HttpClient call is started on the
// Exchange's executor), so the relay needs no locks. The next upstream read starts only after the
// previous chunk was handed to the client's socket: a slow client slows the upstream instead of
// filling memory.
#include "aggregator/dataplane/proxy_handler.h"

#include "aggregator/dataplane/resource_handler.h"
#include "aggregator/http/wire.h"
#include "aggregator/observability/log.h"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/core/string.hpp>

#include <openssl/evp.h>

namespace dpa::dataplane {
namespace {

std::string base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

bool climbs_out(std::string_view sub_path) {
  while (!sub_path.empty()) {
    const auto slash = sub_path.find('/');
    const std::string segment = http::percent_decode(sub_path.substr(0, slash));
    if (segment == "." || segment == "..") return true;
    if (slash == std::string_view::npos) break;
    sub_path.remove_prefix(slash + 1);
  }
  return false;
}

bool drop_request_header(std::string_view name, const http::Header& request) {
  if (is_hop_by_hop(name, request)) return true;
  for (std::string_view dropped :
       {"Host", "Cookie", "Authorization", "Content-Length", "X-Forwarded-For",
        "X-Forwarded-Proto", "X-Forwarded-Host", "traceparent", "tracestate"}) {
    if (boost::beast::iequals(name, dropped)) return true;
  }
  return false;
}

// Upstream response headers the client gets: no hop-by-hop ones, no Set-Cookie (Grafana drops
// it: a datasource must not set cookies on the API server's origin).
std::vector<std::pair<std::string, std::string>> response_headers(const http::ResponseHead& head,
                                                                  bool keep_length) {
  static const http::Header kNoConnection;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : head.headers) {
    if (is_hop_by_hop(name, kNoConnection) || boost::beast::iequals(name, "Set-Cookie")) continue;
    if (!keep_length && boost::beast::iequals(name, "Content-Length")) continue;
    out.emplace_back(name, value);
  }
  return out;
}

api::ApiError map_upstream_error(const api::ApiError& error, const std::string& uid) {
  // The client reports a failed connect as 503; for a datasource proxy the datasource is the
  // upstream that is down, which is a bad gateway, not this server being unavailable.
  if (error.code == 503) {
    return api::ApiError::bad_gateway("datasource \"" + uid + "\" unreachable: " + error.message);
  }
  if (error.code == 504) {
    return api::ApiError::timeout("datasource \"" + uid + "\" did not answer in time: " +
                                  error.message);
  }
  if (error.code == 502) {
    return api::ApiError::bad_gateway("datasource \"" + uid + "\": " + error.message);
  }
  return error;
}

void relay_body(std::shared_ptr<http::ClientCall> call, std::shared_ptr<http::Exchange> exchange) {
  call->read_body_some([call, exchange](bool ok, std::string chunk, bool last) {
    if (!ok) {
      // Headers are out: a truncated response is the only way to report it.
      exchange->abort();
      return;
    }
    if (exchange->closed()) {
      call->cancel();
      return;
    }
    auto next = [call, exchange, last](bool written) {
      if (!written) {
        call->cancel();
        return;
      }
      if (last) {
        exchange->finish();
        return;
      }
      relay_body(call, exchange);
    };
    if (chunk.empty()) {
      next(true);
      return;
    }
    exchange->write(std::move(chunk), std::move(next));
  });
}

}  // namespace

api::Expected<std::pair<http::Endpoint, http::ClientRequest>> make_proxy_request(
    const http::Exchange& exchange, const RouteMatch& match, const plugin::Datasource& datasource,
    std::string body) {
  if (datasource.url.empty()) {
    return api::ApiError::bad_request("datasource \"" + datasource.uid + "\" has no url");
  }
  auto endpoint = http::Endpoint::parse(datasource.url);
  if (!endpoint.ok()) {
    return api::ApiError::bad_request("datasource \"" + datasource.uid +
                                      "\" has an invalid url: " + endpoint.error().message);
  }
  if (climbs_out(match.sub_path)) {
    return api::ApiError::bad_request("proxy path must not contain \".\" or \"..\" segments");
  }

  const auto& header = exchange.header();
  http::ClientRequest request;
  request.method = std::string(header.method_string());
  request.target = "/" + match.sub_path;
  if (!exchange.query().empty()) {
    request.target += '?';
    request.target += exchange.query();
  }
  std::string forwarded_for;
  for (const auto& field : header) {
    const std::string_view name = field.name_string();
    if (boost::beast::iequals(name, "X-Forwarded-For")) {
      forwarded_for = std::string(field.value());
      continue;
    }
    if (drop_request_header(name, header)) continue;
    request.headers.emplace_back(std::string(name), std::string(field.value()));
  }
  const std::string ip(http::address_of(exchange.remote_address()));
  if (!ip.empty()) forwarded_for = forwarded_for.empty() ? ip : forwarded_for + ", " + ip;
  if (!forwarded_for.empty()) request.headers.emplace_back("X-Forwarded-For", forwarded_for);
  request.headers.emplace_back("X-Forwarded-Proto", exchange.is_tls() ? "https" : "http");
  if (auto host = header.find(boost::beast::http::field::host); host != header.end()) {
    request.headers.emplace_back("X-Forwarded-Host", std::string(host->value()));
  }
  const auto& trace = exchange.trace_context();
  request.headers.emplace_back("traceparent", trace.traceparent);
  if (!trace.tracestate.empty()) request.headers.emplace_back("tracestate", trace.tracestate);
  if (datasource.basic_auth) {
    std::string password;
    if (auto it = datasource.secure_json_data.find("basicAuthPassword");
        it != datasource.secure_json_data.end()) {
      password = it->second;
    }
    request.headers.emplace_back("Authorization",
                                 "Basic " + base64(datasource.basic_auth_user + ":" + password));
  }
  request.body = std::move(body);
  return std::make_pair(std::move(*endpoint), std::move(request));
}

ProxyHandler::ProxyHandler(std::shared_ptr<const DataPlaneContext> context,
                           std::shared_ptr<http::HttpClient> client)
    : context_(std::move(context)), client_(std::move(client)) {}

void ProxyHandler::handle(std::shared_ptr<http::Exchange> exchange, RouteMatch match) const {
  auto snapshot = context_->datasources ? context_->datasources() : nullptr;
  const plugin::Datasource* ds =
      snapshot ? snapshot->find(match.datasource_uid,
                                plugin::org_id_from_namespace(match.namespace_name))
               : nullptr;
  if (ds == nullptr) {
    auto error = api::ApiError::not_found("datasource \"" + match.datasource_uid + "\" not found");
    error.details = {{"name", match.datasource_uid}, {"kind", "datasources"}};
    exchange->respond_error(error);
    return;
  }
  if (ds->type != match.service->spec.plugin_id) {
    exchange->respond_error(api::ApiError::bad_request("invalid datasource type"));
    return;
  }
  auto timeout = request_timeout(*exchange, context_->options.resource_timeout,
                                 context_->options.max_timeout);
  if (!timeout.ok()) {
    exchange->respond_error(timeout.error());
    return;
  }
  auto client = client_;
  exchange->read_body(
      context_->options.max_body_bytes,
      [exchange, client, snapshot, ds, match = std::move(match),
       timeout = *timeout](api::Expected<std::string> body) {
        if (!body.ok()) {
          exchange->respond_error(body.error());
          return;
        }
        auto prepared = make_proxy_request(*exchange, match, *ds, std::move(*body));
        if (!prepared.ok()) {
          exchange->respond_error(prepared.error());
          return;
        }
        prepared->second.timeout = timeout;
        const std::string uid = ds->uid;
        // ClientCall methods must run on the executor the call was started on: the session's.
        boost::asio::dispatch(exchange->executor(), [exchange, client, uid,
                                                     prepared = std::move(*prepared)]() mutable {
          auto call = client->start(prepared.first, std::move(prepared.second),
                                    exchange->executor());
          exchange->on_close([call] { call->cancel(); });
          call->read_head([call, exchange, uid](api::Outcome outcome) {
            if (!outcome.ok()) {
              exchange->respond_error(map_upstream_error(outcome.error(), uid));
              return;
            }
            const http::ResponseHead upstream = call->copy_head();
            if (auto body = call->take_buffered_body()) {
              http::Response response;
              response.status = upstream.status;
              response.headers = response_headers(upstream, /*keep_length=*/false);
              response.body = std::move(*body);
              exchange->respond(std::move(response));
              return;
            }
            http::ResponseHead head;
            head.status = upstream.status;
            head.headers = response_headers(upstream, /*keep_length=*/true);
            exchange->begin_stream(std::move(head));
            relay_body(call, exchange);
          });
        });
      });
}

}  // namespace dpa::dataplane
