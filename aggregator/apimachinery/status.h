// Kubernetes Status errors, the one error type of the data path (DESIGN §2: every error, everywhere,
// is a Status with HTTP code == code). Components return Expected<T>; the HTTP layer turns an
// ApiError into a response in exactly one place (ApiError::to_response_body + code).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace dpa::api {

// One entry of details.causes[]: {reason, message, field}.
struct StatusCause {
  std::string reason;  // FieldValueInvalid, FieldValueRequired, FieldValueDuplicate, ...
  std::string message;
  std::string field;   // e.g. "spec.services[1].type"
};

struct ApiError {
  int code = 500;
  std::string reason;   // BadRequest, NotFound, Conflict, Invalid, ServiceUnavailable, ...
  std::string message;
  // details: {name, group, kind, uid, causes[], retryAfterSeconds}. Null = omitted; an object is
  // written even when empty, as kube writes a non-resource 403 (`"details":{}`).
  nlohmann::json details;

  // The Status JSON object: {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",...}.
  // body() keeps Kubernetes' key order (kind, apiVersion, metadata, status, message, reason,
  // details, code); to_json() is the same object for embedding (e.g. a watch ERROR event).
  nlohmann::ordered_json to_ordered_json() const;
  nlohmann::json to_json() const;
  std::string body() const;

  // Constructors for the reasons of the reference §2.5 table.
  static ApiError bad_request(std::string message);
  static ApiError unauthorized(std::string message = "Unauthorized");
  static ApiError forbidden(std::string message);
  static ApiError not_found(std::string message);
  // `<resource>.<group> "<name>" not found`, with details {name, group, kind=resource}.
  static ApiError not_found(const std::string& resource, const std::string& group,
                            const std::string& name);
  static ApiError already_exists(const std::string& resource, const std::string& group,
                                 const std::string& name);
  static ApiError conflict(const std::string& resource, const std::string& group,
                           const std::string& name);  // the optimistic-concurrency message
  static ApiError conflict_message(std::string message);
  static ApiError method_not_allowed(std::string message);
  static ApiError not_acceptable(std::string message);
  static ApiError gone(std::string message);     // reason Gone
  static ApiError expired(std::string message);  // reason Expired, code 410
  static ApiError too_large(std::string message);            // 413 RequestEntityTooLarge
  static ApiError header_too_large(std::string message);     // 431 RequestHeaderFieldsTooLarge
  static ApiError unsupported_media_type(std::string message);  // 415
  // `<Kind>.<group> "<name>" is invalid: <field>: <message>, ...` with causes.
  static ApiError invalid(const std::string& kind, const std::string& group,
                          const std::string& name, std::vector<StatusCause> causes);
  static ApiError too_many_requests(std::string message, int retry_after_seconds);
  static ApiError internal(std::string message);        // "Internal error occurred: ..."
  static ApiError bad_gateway(std::string message);     // 502, reason BadGateway
  static ApiError unavailable(std::string message, int retry_after_seconds = 0);  // 503
  static ApiError timeout(std::string message);         // 504, reason Timeout
};

// A value or an ApiError: the std::expected of this C++20 code base.
template <class T>
class Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Expected(ApiError error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const ApiError& error() const& { return std::get<1>(v_); }
  ApiError&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, ApiError> v_;
};

// Expected<void>: success or an error.
struct Ok {};
using Outcome = Expected<Ok>;

}  // namespace dpa::api
