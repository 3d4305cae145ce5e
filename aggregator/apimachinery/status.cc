#include "aggregator/apimachinery/status.h"

#include "aggregator/apimachinery/codec.h"

namespace dpa::api {
namespace {

ApiError make(int code, std::string reason, std::string message) {
  ApiError e;
  e.code = code;
  e.reason = std::move(reason);
  e.message = std::move(message);
  return e;
}

std::string qualified(const std::string& resource, const std::string& group) {
  return group.empty() ? resource : resource + "." + group;
}

}  // namespace

nlohmann::ordered_json ApiError::to_ordered_json() const {
  // Key order as Kubernetes writes it: kind, apiVersion, metadata, status, message, reason,
  // details, code (nlohmann::ordered_json keeps insertion order).
  nlohmann::ordered_json j;
  j["kind"] = "Status";
  j["apiVersion"] = "v1";
  j["metadata"] = nlohmann::ordered_json::object();
  j["status"] = "Failure";
  j["message"] = message;
  if (!reason.empty()) j["reason"] = reason;
  if (details.is_object()) j["details"] = details;
  j["code"] = code;
  return j;
}

nlohmann::json ApiError::to_json() const { return nlohmann::json::parse(body()); }

std::string ApiError::body() const { return dump_json(to_ordered_json()); }

ApiError ApiError::bad_request(std::string message) {
  return make(400, "BadRequest", std::move(message));
}
ApiError ApiError::unauthorized(std::string message) {
  return make(401, "Unauthorized", std::move(message));
}
ApiError ApiError::forbidden(std::string message) {
  return make(403, "Forbidden", std::move(message));
}
ApiError ApiError::not_found(std::string message) {
  return make(404, "NotFound", std::move(message));
}
ApiError ApiError::not_found(const std::string& resource, const std::string& group,
                             const std::string& name) {
  ApiError e = make(404, "NotFound", qualified(resource, group) + " \"" + name + "\" not found");
  e.details = {{"name", name}, {"group", group}, {"kind", resource}};
  return e;
}
ApiError ApiError::already_exists(const std::string& resource, const std::string& group,
                                  const std::string& name) {
  ApiError e =
      make(409, "AlreadyExists", qualified(resource, group) + " \"" + name + "\" already exists");
  e.details = {{"name", name}, {"group", group}, {"kind", resource}};
  return e;
}
ApiError ApiError::conflict(const std::string& resource, const std::string& group,
                            const std::string& name) {
  ApiError e = make(409, "Conflict",
                    "Operation cannot be fulfilled on " + qualified(resource, group) + " \"" +
                        name +
                        "\": the object has been modified; please apply your changes to the "
                        "latest version and try again");
  e.details = {{"name", name}, {"group", group}, {"kind", resource}};
  return e;
}
ApiError ApiError::conflict_message(std::string message) {
  return make(409, "Conflict", std::move(message));
}
ApiError ApiError::method_not_allowed(std::string message) {
  return make(405, "MethodNotAllowed", std::move(message));
}
ApiError ApiError::not_acceptable(std::string message) {
  return make(406, "NotAcceptable", std::move(message));
}
ApiError ApiError::gone(std::string message) { return make(410, "Gone", std::move(message)); }
ApiError ApiError::expired(std::string message) {
  return make(410, "Expired", std::move(message));
}
ApiError ApiError::too_large(std::string message) {
  return make(413, "RequestEntityTooLarge", "Request entity too large: " + message);
}
ApiError ApiError::header_too_large(std::string message) {
  return make(431, "RequestHeaderFieldsTooLarge", std::move(message));
}
ApiError ApiError::unsupported_media_type(std::string message) {
  return make(415, "UnsupportedMediaType", std::move(message));
}
ApiError ApiError::invalid(const std::string& kind, const std::string& group,
                           const std::string& name, std::vector<StatusCause> causes) {
  std::string message = qualified(kind, group) + " \"" + name + "\" is invalid: ";
  nlohmann::json list = nlohmann::json::array();
  for (std::size_t i = 0; i < causes.size(); ++i) {
    if (i > 0) message += ", ";
    message += causes[i].field + ": " + causes[i].message;
    list.push_back({{"reason", causes[i].reason},
                    {"message", causes[i].message},
                    {"field", causes[i].field}});
  }
  ApiError e = make(422, "Invalid", std::move(message));
  e.details = {{"name", name}, {"group", group}, {"kind", kind}, {"causes", list}};
  return e;
}
ApiError ApiError::too_many_requests(std::string message, int retry_after_seconds) {
  ApiError e = make(429, "TooManyRequests", std::move(message));
  e.details = {{"retryAfterSeconds", retry_after_seconds}};
  return e;
}
ApiError ApiError::internal(std::string message) {
  return make(500, "InternalError", "Internal error occurred: " + message);
}
ApiError ApiError::bad_gateway(std::string message) {
  return make(502, "BadGateway", std::move(message));
}
ApiError ApiError::unavailable(std::string message, int retry_after_seconds) {
  ApiError e = make(503, "ServiceUnavailable", std::move(message));
  if (retry_after_seconds > 0) e.details = {{"retryAfterSeconds", retry_after_seconds}};
  return e;
}
ApiError ApiError::timeout(std::string message) {
  return make(504, "Timeout", "Timeout: " + message);
}

}  // namespace dpa::api
