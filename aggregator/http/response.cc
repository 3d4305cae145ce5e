// Response constructors declared in exchange.h: the one place an ApiError becomes HTTP.
#include "aggregator/http/exchange.h"

namespace dpa::http {

std::size_t Response::body_size() const {
  std::size_t size = body.size();
  for (const auto& part : body_parts) size += part->size();
  return size;
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

Response Response::error(const api::ApiError& error) {
  Response r = json(error.code, error.body());
  // Kubernetes clients back off by Retry-After on 429/503 (reference §5: 503 with Retry-After).
  if (error.details.is_object()) {
    auto it = error.details.find("retryAfterSeconds");
    if (it != error.details.end() && it->is_number_integer()) {
      r.headers.emplace_back("Retry-After", std::to_string(it->get<long long>()));
    }
  }
  return r;
}

}  // namespace dpa::http
