#include "plugins/testdata/resources.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <string>

namespace dpa::testdata {
namespace {

constexpr int kDefaultChunks = 3;
constexpr int kMaxChunks = 10000;
constexpr auto kChunkDelay = std::chrono::milliseconds(20);

const std::map<std::string, std::string> kJsonHeaders = {{"Content-Type", "application/json"}};

// Value of `name` in the query string of a relative URL ("stream?chunks=4"), undecoded.
std::string query_param(const std::string& url, const std::string& name) {
  const auto q = url.find('?');
  if (q == std::string::npos) return "";
  std::size_t pos = q + 1;
  while (pos <= url.size()) {
    auto end = url.find('&', pos);
    if (end == std::string::npos) end = url.size();
    const std::string pair = url.substr(pos, end - pos);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    pos = end + 1;
  }
  return "";
}

int parse_int(const std::string& text, int fallback) {
  if (text.empty() || text.size() > 9 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fallback;
  }
  return std::stoi(text);
}

}  // namespace

grpc::Status ResourceHandler::call_resource(const sdk::CallContext& ctx,
                                            const pluginv2::CallResourceRequest& request,
                                            sdk::ResourceSender& sender) {
  stats_.resource_calls.fetch_add(1);
  std::string path = request.path();
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);

  if (path == "echo" || path.rfind("echo/", 0) == 0) {
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& [name, list] : request.headers()) {
      headers[name] = nlohmann::json(std::vector<std::string>(list.values().begin(), list.values().end()));
    }
    // The user the host says is calling (PluginContext.user), to show whom the plugin believes.
    const auto& user = request.plugincontext().user();
    const nlohmann::json body = {{"method", request.method()},
                                 {"path", request.path()},
                                 {"url", request.url()},
                                 {"headers", headers},
                                 {"body", request.body()},
                                 {"user",
                                  {{"login", user.login()},
                                   {"name", user.name()},
                                   {"email", user.email()},
                                   {"role", user.role()}}}};
    sender.send(200, kJsonHeaders, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return grpc::Status::OK;
  }

  if (path == "stream") {
    const int chunks =
        std::clamp(parse_int(query_param(request.url(), "chunks"), kDefaultChunks), 1, kMaxChunks);
    // The first message carries status and headers; later ones only body (reference §1.3).
    if (!sender.send(200, {{"Content-Type", "text/plain; charset=utf-8"}}, "chunk 1\n")) {
      return grpc::Status::OK;
    }
    for (int i = 2; i <= chunks; ++i) {
      if (!ctx.sleep_for(kChunkDelay)) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      if (!sender.send_body("chunk " + std::to_string(i) + "\n")) return grpc::Status::OK;
    }
    return grpc::Status::OK;
  }

  if (path.rfind("status/", 0) == 0) {
    const int code = parse_int(path.substr(7), 0);
    if (code < 100 || code > 599) {
      sender.send(400, kJsonHeaders, R"({"message":"status code must be 100..599"})");
      return grpc::Status::OK;
    }
    sender.send(code, kJsonHeaders,
                code == 204 || code == 304 ? "" : nlohmann::json{{"status", code}}.dump());
    return grpc::Status::OK;
  }

  sender.send(404, kJsonHeaders,
              nlohmann::json{{"message", "no such resource: " + request.path()}}.dump(
                  -1, ' ', false, nlohmann::json::error_handler_t::replace));
  return grpc::Status::OK;
}

}  // namespace dpa::testdata
