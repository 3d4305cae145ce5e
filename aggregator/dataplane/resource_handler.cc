// The reply is relayed as it arrives: the gRPC callbacks (sequential, in order) write straight
// into the Exchange, which posts to the session's strand, so no chunk waits for the next one. A
// client that goes away cancels the gRPC call; one that stops reading is cut off past a limit.
#include "aggregator/dataplane/resource_handler.h"

#include "aggregator/http/wire.h"
#include "aggregator/observability/log.h"

#include <boost/beast/core/string.hpp>

#include <array>
#include <cctype>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

namespace dpa::dataplane {
namespace {

constexpr std::array<std::string_view, 9> kHopByHop{
    "Connection", "Keep-Alive",        "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
    "TE",         "Trailer",           "Transfer-Encoding",  "Upgrade"};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Keeps only the cookies `keep` names ("a=1; b=2" -> "b=2"); empty when none is kept.
std::string filter_cookies(std::string_view cookie_header, const std::set<std::string>& keep) {
  std::string out;
  while (!cookie_header.empty()) {
    const auto semi = cookie_header.find(';');
    const std::string_view pair = trim(cookie_header.substr(0, semi));
    const std::string_view name = trim(pair.substr(0, pair.find('=')));
    if (!name.empty() && keep.count(std::string(name)) > 0) {
      if (!out.empty()) out += "; ";
      out += pair;
    }
    if (semi == std::string_view::npos) break;
    cookie_header.remove_prefix(semi + 1);
  }
  return out;
}

std::set<std::string> keep_cookies(const plugin::Datasource* ds) {
  std::set<std::string> names;
  if (!ds) return names;
  const auto it = ds->json_data.find("keepCookies");
  if (it == ds->json_data.end() || !it->is_array()) return names;
  for (const auto& name : *it) {
    if (name.is_string()) names.insert(name.get<std::string>());
  }
  return names;
}

bool oauth_pass_through(const plugin::Datasource* ds) {
  if (!ds) return false;
  const auto it = ds->json_data.find("oauthPassThru");
  return it != ds->json_data.end() && it->is_boolean() && it->get<bool>();
}

// Response headers the client must not get from the plugin: hop-by-hop ones, Content-Length (the
// reply is re-framed as chunks) and Set-Cookie (Grafana drops it: plugins must not set cookies
// on the API server's origin).
bool drop_response_header(std::string_view canonical) {
  if (canonical == "Set-Cookie" || canonical == "Content-Length") return true;
  for (auto hop : kHopByHop) {
    if (boost::beast::iequals(canonical, hop)) return true;
  }
  return false;
}

// Shared by the gRPC callbacks (sequential) and the client-gone callback (session strand).
struct ResourceCall {
  std::shared_ptr<http::Exchange> exchange;
  std::string plugin_id;
  bool head_request = false;

  std::mutex mutex;
  std::unique_ptr<plugin::StreamCall> call;
  bool cancelled = false;

  // gRPC callbacks only.
  bool started = false;
  bool failed = false;  // the first message was unusable: the error was answered already
  bool slow = false;
  bool deferred = false;  // no body allowed: answer with respond() once the call ends
  http::ResponseHead head;

  void cancel() {
    std::lock_guard lock(mutex);
    cancelled = true;
    if (call) call->cancel();
  }
};

api::ApiError map_resource_error(api::ApiError error, const std::string& plugin_id) {
  // §1.3: Unimplemented means the plugin has no resource handler: 404, as Grafana answers.
  if (error.code == 501) {
    return api::ApiError::not_found("plugin " + plugin_id + " does not serve resources");
  }
  return error;
}

void on_first_message(ResourceCall& state, const pluginv2::CallResourceResponse& message) {
  int status = message.code();
  // A zero code is a plugin that did not set one; Go's SDK defaults it the same way.
  if (status == 0) status = 200;
  if (status < 200 || status > 599) {
    state.failed = true;
    state.exchange->respond_error(api::ApiError::bad_gateway(
        "plugin " + state.plugin_id + " returned an invalid HTTP status " + std::to_string(status)));
    state.cancel();
    return;
  }
  state.head.status = status;
  bool has_content_type = false;
  for (const auto& [name, values] : message.headers()) {
    const std::string canonical = canonical_header_name(name);
    if (drop_response_header(canonical)) continue;
    if (canonical == "Content-Type") has_content_type = true;
    for (const auto& value : values.values()) state.head.headers.emplace_back(canonical, value);
  }
  if (!has_content_type && status != 204) {
    state.head.headers.emplace_back("Content-Type", "application/json");
  }
  state.deferred = state.head_request || status == 204 || status == 304;
  if (!state.deferred) state.exchange->begin_stream(state.head);
}

}  // namespace

std::string canonical_header_name(std::string_view name) {
  std::string out(name);
  bool upper = true;
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    c = static_cast<char>(upper ? std::toupper(u) : std::tolower(u));
    upper = c == '-';
  }
  return out;
}

bool is_hop_by_hop(std::string_view name, const http::Header& request) {
  for (auto hop : kHopByHop) {
    if (boost::beast::iequals(name, hop)) return true;
  }
  const auto [first, last] = request.equal_range(boost::beast::http::field::connection);
  for (auto it = first; it != last; ++it) {
    std::string_view value = it->value();
    while (!value.empty()) {
      const auto comma = value.find(',');
      if (boost::beast::iequals(trim(value.substr(0, comma)), name)) return true;
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> forwardable_headers(
    const http::Exchange& exchange, const plugin::Datasource* datasource) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto keep = keep_cookies(datasource);
  const bool keep_authorization = oauth_pass_through(datasource);
  for (const auto& field : exchange.header()) {
    const std::string_view name = field.name_string();
    if (is_hop_by_hop(name, exchange.header())) continue;
    // Go moves Host out of the header map; plugins read it from the URL, not from headers.
    if (boost::beast::iequals(name, "Host")) continue;
    if (boost::beast::iequals(name, "Authorization") && !keep_authorization) continue;
    std::string value(field.value());
    if (boost::beast::iequals(name, "Cookie")) {
      value = filter_cookies(value, keep);
      if (value.empty()) continue;
    }
    out.emplace_back(canonical_header_name(name), std::move(value));
  }
  return out;
}

pluginv2::CallResourceRequest make_call_resource_request(const http::Exchange& exchange,
                                                         const RouteMatch& match,
                                                         const PluginTarget& target,
                                                         std::string body) {
  pluginv2::CallResourceRequest request;
  *request.mutable_plugincontext() = target.plugin_context;
  // §1.3: the part after resources/ without a leading slash; a route service's own path.
  std::string_view raw = match.sub_path;
  while (!raw.empty() && raw.front() == '/') raw.remove_prefix(1);
  request.set_path(http::percent_decode(raw));
  request.set_method(std::string(exchange.header().method_string()));
  std::string url(raw);
  if (!exchange.query().empty()) {
    url += '?';
    url += exchange.query();
  }
  request.set_url(std::move(url));

  auto& headers = *request.mutable_headers();
  for (auto& [name, value] : forwardable_headers(exchange, target.datasource)) {
    headers[name].add_values(std::move(value));
  }
  request.set_body(std::move(body));
  return request;
}

ResourceHandler::ResourceHandler(std::shared_ptr<const DataPlaneContext> context)
    : context_(std::move(context)) {}

void ResourceHandler::handle(std::shared_ptr<http::Exchange> exchange, RouteMatch match) const {
  auto target = resolve_target(*context_, match);
  if (!target.ok()) {
    exchange->respond_error(target.error());
    return;
  }
  auto context = context_;
  exchange->read_body(
      context->options.max_body_bytes,
      [context, exchange, match = std::move(match),
       target = std::move(*target)](api::Expected<std::string> body) {
        if (!body.ok()) {
          exchange->respond_error(body.error());
          return;
        }
        auto state = std::make_shared<ResourceCall>();
        state->exchange = exchange;
        state->plugin_id = target.client->plugin_id();
        state->head_request = exchange->header().method() == boost::beast::http::verb::head;
        auto request = make_call_resource_request(*exchange, match, target, std::move(*body));

        auto on_message = [state](pluginv2::CallResourceResponse message) {
          if (state->failed || state->slow) return;
          if (!state->started) {
            state->started = true;
            on_first_message(*state, message);
            if (state->failed) return;
          }
          if (state->deferred || message.body().empty()) return;
          if (state->exchange->pending_bytes() > ResourceHandler::kMaxPendingBytes) {
            state->slow = true;
            obs::warn("resource response dropped: client too slow",
                      {{"plugin", state->plugin_id},
                       {"request_id", state->exchange->request_id()}});
            state->cancel();
            return;
          }
          state->exchange->write(std::move(*message.mutable_body()));
        };
        auto done = [state](api::Outcome outcome) {
          if (state->failed) return;
          if (!state->started) {
            state->exchange->respond_error(
                outcome.ok() ? api::ApiError::bad_gateway("received empty resource response")
                             : map_resource_error(outcome.error(), state->plugin_id));
            return;
          }
          if (state->deferred) {
            http::Response response;
            response.status = state->head.status;
            response.headers = std::move(state->head.headers);
            state->exchange->respond(std::move(response));
            return;
          }
          if (!outcome.ok() || state->slow) {
            // Headers are out: the only way to tell the client is a truncated response.
            if (!outcome.ok() && !state->exchange->closed()) {
              obs::warn("resource response broken off",
                        {{"plugin", state->plugin_id},
                         {"request_id", state->exchange->request_id()},
                         {"error", outcome.error().message}});
            }
            state->exchange->abort();
            return;
          }
          state->exchange->finish();
        };

        exchange->on_close([state] { state->cancel(); });
        auto call = target.client->call_resource(
            std::move(request),
            {context->options.resource_timeout, state->exchange->trace_context()},
            std::move(on_message), std::move(done));
        std::lock_guard lock(state->mutex);
        state->call = std::move(call);
        if (state->cancelled && state->call) state->call->cancel();
      });
}

}  // namespace dpa::dataplane
