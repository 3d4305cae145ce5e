#include "aggregator/auth/webhook.h"

#include "aggregator/apimachinery/codec.h"
#include "aggregator/http/client.h"
#include "aggregator/observability/log.h"

#include <nlohmann/json.hpp>
#include <openssl/sha.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <list>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace dpa::auth {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kReplyLimit = 1 << 20;

// Where the webhook lives and what we present to it, read from its kubeconfig.
struct Target {
  http::Endpoint endpoint;  // without a base path: `path` is posted to as written
  std::string path;
  std::string token;
  std::unique_ptr<http::HttpClient> client;
};

// node[key] when node is an object holding key, else null: lookups never throw, whatever the
// file's shape.
const json& field(const json& node, const char* key) {
  static const json kNull;
  if (!node.is_object()) return kNull;
  auto it = node.find(key);
  return it == node.end() ? kNull : *it;
}

// The current context's cluster and user (the first of each without one). Read with libyaml
// (api::decode_yaml, every scalar as the text it spells), which returns on any input.
api::Expected<std::unique_ptr<Target>> load_target(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return api::ApiError::bad_request(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  auto documents = api::decode_yaml(text.str(), api::YamlScalars::kText, 1);
  if (!documents) return api::ApiError::bad_request(path + ": " + documents.error().message);
  const json root = documents->empty() ? json() : std::move(documents->front());
  if (!root.is_object()) return api::ApiError::bad_request(path + ": not a kubeconfig");
  auto pick = [&](const char* list, const char* item, const std::string& name) -> json {
    const json& entries = field(root, list);
    if (!entries.is_array()) return json();
    for (const auto& entry : entries) {
      if (name.empty() || api::string_field(entry, "name") == name) return field(entry, item);
    }
    return json();
  };
  std::string cluster_name, user_name;
  const std::string current = api::string_field(root, "current-context");
  if (const json& contexts = field(root, "contexts"); contexts.is_array()) {
    for (const auto& entry : contexts) {
      if (current.empty() || api::string_field(entry, "name") == current) {
        cluster_name = api::string_field(field(entry, "context"), "cluster");
        user_name = api::string_field(field(entry, "context"), "user");
        break;
      }
    }
  }
  const json cluster = pick("clusters", "cluster", cluster_name);
  if (!cluster.is_object()) return api::ApiError::bad_request(path + ": no cluster");
  auto endpoint = http::Endpoint::parse(api::string_field(cluster, "server"));
  if (!endpoint) return api::ApiError::bad_request(path + ": server: " + endpoint.error().message);
  if (!api::string_field(cluster, "certificate-authority-data").empty()) {
    return api::ApiError::bad_request(path + ": certificate-authority-data is not supported; "
                                             "name the file with certificate-authority");
  }
  http::ClientOptions options;
  options.ca_file = api::string_field(cluster, "certificate-authority");
  auto target = std::make_unique<Target>();
  if (const json user = pick("users", "user", user_name); user.is_object()) {
    options.client_cert_file = api::string_field(user, "client-certificate");
    options.client_key_file = api::string_field(user, "client-key");
    target->token = api::string_field(user, "token");
  }
  target->endpoint = std::move(endpoint).value();
  target->path = target->endpoint.base_path.empty() ? "/" : target->endpoint.base_path;
  target->endpoint.base_path.clear();
  target->client = std::make_unique<http::HttpClient>(std::move(options));
  if (target->endpoint.tls() && !target->client->tls_status()) {
    return api::ApiError::bad_request(path + ": " + target->client->tls_status().error().message);
  }
  return target;
}

// A bounded map with an expiry per entry; thread-safe.
template <class Value>
class TtlCache {
 public:
  explicit TtlCache(std::size_t capacity) : capacity_(capacity) {}

  std::optional<Value> get(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    if (Clock::now() >= it->second.expires) {
      order_.erase(it->second.position);
      entries_.erase(it);
      return std::nullopt;
    }
    return it->second.value;
  }

  void put(const std::string& key, Value value, std::chrono::seconds ttl) {
    if (ttl.count() <= 0 || capacity_ == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      order_.erase(it->second.position);
      entries_.erase(it);
    }
    while (entries_.size() >= capacity_) {
      entries_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(key);
    entries_.emplace(key, Entry{std::move(value), Clock::now() + ttl, std::prev(order_.end())});
  }

 private:
  struct Entry {
    Value value;
    Clock::time_point expires;
    std::list<std::string>::iterator position;
  };
  const std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::string> order_;
  std::unordered_map<std::string, Entry> entries_;
};

// POSTs `body` to the webhook; done(reply JSON) or done(error text).
void post_review(const Target& target, std::chrono::milliseconds timeout,
                 const boost::asio::any_io_executor& executor, std::string body,
                 std::function<void(api::Expected<json>)> done) {
  http::ClientRequest request;
  request.method = "POST";
  request.target = target.path;
  request.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  if (!target.token.empty()) request.headers.emplace_back("Authorization", "Bearer " + target.token);
  request.body = std::move(body);
  request.timeout = timeout;
  target.client->fetch(target.endpoint, std::move(request), kReplyLimit, executor,
                       [done = std::move(done)](api::Expected<http::Response> reply) {
                         if (!reply) return done(std::move(reply).error());
                         if (reply->status < 200 || reply->status > 299) {
                           return done(api::ApiError::bad_gateway(
                               "webhook answered " + std::to_string(reply->status)));
                         }
                         json doc = json::parse(reply->body, nullptr, false);
                         if (doc.is_discarded() || !doc.is_object()) {
                           return done(api::ApiError::bad_gateway("webhook answered no JSON object"));
                         }
                         done(std::move(doc));
                       });
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::vector<std::string> string_list(const json& value) {
  std::vector<std::string> out;
  if (!value.is_array()) return out;
  for (const auto& v : value) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

class TokenWebhook final : public Authenticator,
                           public std::enable_shared_from_this<TokenWebhook> {
 public:
  TokenWebhook(WebhookOptions options, std::unique_ptr<Target> target,
               boost::asio::any_io_executor executor)
      : options_(std::move(options)),
        target_(std::move(target)),
        executor_(std::move(executor)),
        cache_(options_.cache_entries) {}

  void authenticate(const Credentials& credentials,
                    std::function<void(AuthnResult)> done) const override {
    std::string warning;
    auto token = credentials.header ? bearer_token(*credentials.header, &warning) : std::nullopt;
    if (!token) return done(AuthnResult{});
    // Keyed by digest: the cache never holds a token in clear.
    const std::string key = sha256_hex(*token);
    if (auto cached = cache_.get(key)) return done(*cached);
    json review = {{"apiVersion", "authentication.k8s.io/v1"},
                   {"kind", "TokenReview"},
                   {"spec", {{"token", *token}}}};
    auto self = shared_from_this();
    post_review(*target_, options_.timeout, executor_, api::dump_json(review),
                [self, key, done = std::move(done)](api::Expected<json> reply) {
                  if (!reply) {
                    AuthnResult failed;
                    failed.kind = AuthnResult::Kind::kFailed;
                    failed.error = "token webhook: " + reply.error().message;
                    return done(std::move(failed));
                  }
                  AuthnResult result = self->read(*reply);
                  self->cache_.put(key, result, self->options_.allowed_ttl);
                  done(std::move(result));
                });
  }

 private:
  static AuthnResult read(const json& reply) {
    AuthnResult result;
    const json status = reply.contains("status") ? reply["status"] : json();
    const json user = status.is_object() && status.contains("user") ? status["user"] : json();
    const bool authenticated = status.is_object() && status.contains("authenticated") &&
                               status["authenticated"].is_boolean() && status["authenticated"].get<bool>();
    if (!authenticated || api::string_field(user, "username").empty()) {
      result.kind = AuthnResult::Kind::kFailed;
      result.error = "token webhook: not authenticated: " + api::string_field(status, "error");
      return result;
    }
    result.kind = AuthnResult::Kind::kAuthenticated;
    result.user.name = api::string_field(user, "username");
    result.user.uid = api::string_field(user, "uid");
    result.user.groups = string_list(user.contains("groups") ? user["groups"] : json());
    if (user.contains("extra") && user["extra"].is_object()) {
      for (const auto& [key, values] : user["extra"].items()) {
        result.user.extra[key] = string_list(values);
      }
    }
    return result;
  }

  const WebhookOptions options_;
  const std::unique_ptr<Target> target_;
  const boost::asio::any_io_executor executor_;
  mutable TtlCache<AuthnResult> cache_;
};

class AuthorizationWebhook final : public Authorizer,
                                   public std::enable_shared_from_this<AuthorizationWebhook> {
 public:
  AuthorizationWebhook(WebhookOptions options, std::unique_ptr<Target> target,
                       boost::asio::any_io_executor executor)
      : options_(std::move(options)),
        target_(std::move(target)),
        executor_(std::move(executor)),
        cache_(options_.cache_entries) {}

  void authorize(const Attributes& a, std::function<void(AuthzResult)> done) const override {
    json spec = {{"user", a.user.name}, {"groups", a.user.groups}};
    if (!a.user.uid.empty()) spec["uid"] = a.user.uid;
    if (!a.user.extra.empty()) spec["extra"] = a.user.extra;
    if (a.resource_request) {
      spec["resourceAttributes"] = {{"namespace", a.namespace_name}, {"verb", a.verb},
                                    {"group", a.api_group},          {"version", a.api_version},
                                    {"resource", a.resource},        {"subresource", a.subresource},
                                    {"name", a.name}};
    } else {
      spec["nonResourceAttributes"] = {{"path", a.path}, {"verb", a.verb}};
    }
    // The whole spec is the cache key, as kube's webhook authorizer keys it.
    const std::string key = api::dump_json(spec);
    if (auto cached = cache_.get(key)) return done(*cached);
    json review = {{"apiVersion", "authorization.k8s.io/v1"},
                   {"kind", "SubjectAccessReview"},
                   {"spec", spec}};
    auto self = shared_from_this();
    post_review(*target_, options_.timeout, executor_, api::dump_json(review),
                [self, key, done = std::move(done)](api::Expected<json> reply) {
                  if (!reply) {
                    AuthzResult failed;
                    failed.error = "authorization webhook: " + reply.error().message;
                    return done(std::move(failed));
                  }
                  AuthzResult result = read(*reply);
                  self->cache_.put(key, result,
                                   result.decision == AuthzResult::Decision::kAllow
                                       ? self->options_.allowed_ttl
                                       : self->options_.denied_ttl);
                  done(std::move(result));
                });
  }

 private:
  // allowed -> Allow; denied -> Deny; both -> Deny with an error; neither -> NoOpinion.
  static AuthzResult read(const json& reply) {
    AuthzResult result;
    const json status = reply.contains("status") ? reply["status"] : json();
    auto flag = [&](const char* key) {
      return status.is_object() && status.contains(key) && status[key].is_boolean() &&
             status[key].get<bool>();
    };
    const bool allowed = flag("allowed"), denied = flag("denied");
    result.reason = api::string_field(status, "reason");
    if (allowed && denied) {
      result.decision = AuthzResult::Decision::kDeny;
      result.error = "authorization webhook: allowed and denied";
    } else if (allowed) {
      result.decision = AuthzResult::Decision::kAllow;
    } else if (denied) {
      result.decision = AuthzResult::Decision::kDeny;
    }
    return result;
  }

  const WebhookOptions options_;
  const std::unique_ptr<Target> target_;
  const boost::asio::any_io_executor executor_;
  mutable TtlCache<AuthzResult> cache_;
};

}  // namespace

api::Expected<std::shared_ptr<const Authenticator>> make_token_webhook(
    WebhookOptions options, boost::asio::any_io_executor executor) {
  auto target = load_target(options.config_file);
  if (!target) return target.error();
  return std::shared_ptr<const Authenticator>(std::make_shared<TokenWebhook>(
      std::move(options), std::move(target).value(), std::move(executor)));
}

api::Expected<std::shared_ptr<const Authorizer>> make_authorization_webhook(
    WebhookOptions options, boost::asio::any_io_executor executor) {
  auto target = load_target(options.config_file);
  if (!target) return target.error();
  return std::shared_ptr<const Authorizer>(std::make_shared<AuthorizationWebhook>(
      std::move(options), std::move(target).value(), std::move(executor)));
}

}  // namespace dpa::auth
