// Response building follows Grafana's tested behaviour (reference §4.2, §10): `status` only when
// not allowed, starting from {Failure, "Internal error", InternalError, 500} and overwritten by the
// plugin's Result fields (even empty ones) when it sent one; the status string stays "Failure".
#include "aggregator/dataplane/admission_handler.h"

#include "aggregator/apimachinery/codec.h"
#include "aggregator/dataplane/json_patch_diff.h"
#include "aggregator/dataplane/query_handler.h"

#include <boost/beast/core/string.hpp>

namespace dpa::dataplane {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr const char* kAdmissionApiVersion = "admission.k8s.io/v1";

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

bool is_json_media_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  std::string_view media = content_type.substr(0, semi);
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
  return boost::beast::iequals(media, "application/json");
}

ojson status_json(const pluginv2::StatusResult* result) {
  std::string message = "Internal error";
  std::string reason = "InternalError";
  int code = 500;
  if (result != nullptr) {
    message = result->message();
    reason = result->reason();
    code = result->code();
  }
  ojson s = ojson::object();
  s["metadata"] = ojson::object();
  s["status"] = "Failure";
  if (!message.empty()) s["message"] = message;
  if (!reason.empty()) s["reason"] = reason;
  if (code != 0) s["code"] = code;
  return s;
}

ojson review_shell(const ParsedAdmissionReview& review, bool allowed) {
  ojson out = ojson::object();
  out["kind"] = "AdmissionReview";
  out["apiVersion"] = review.api_version;
  ojson response = ojson::object();
  response["uid"] = review.uid;
  response["allowed"] = allowed;
  out["response"] = std::move(response);
  return out;
}

void add_warnings(ojson& response, const google::protobuf::RepeatedPtrField<std::string>& warnings) {
  if (warnings.empty()) return;
  ojson list = ojson::array();
  for (const auto& w : warnings) list.push_back(w);
  response["warnings"] = std::move(list);
}

}  // namespace

std::string base64_encode(std::string_view in) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < in.size()) {
    uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

api::Expected<ParsedAdmissionReview> parse_admission_review(std::string_view content_type,
                                                            std::string_view body) {
  if (!is_json_media_type(content_type)) {
    return api::ApiError::unsupported_media_type("contentType=" + std::string(content_type) +
                                                 ", expect application/json");
  }
  auto decoded = decode_first_json_value(body);
  if (!decoded) return std::move(decoded).error();
  const json& root = *decoded;
  if (!root.is_object()) return api::ApiError::bad_request("failed to decode request: expected an AdmissionReview object");
  const std::string api_version = api::string_field(root, "apiVersion");
  const std::string kind = api::string_field(root, "kind");
  if (api_version != kAdmissionApiVersion || kind != "AdmissionReview") {
    return api::ApiError::bad_request("failed to decode request: expected AdmissionReview " +
                                      std::string(kAdmissionApiVersion) + ", got " +
                                      (kind.empty() ? "no kind" : kind) + " " +
                                      (api_version.empty() ? "(no apiVersion)" : api_version));
  }
  auto req = root.find("request");
  if (req == root.end() || !req->is_object()) {
    return api::ApiError::bad_request(
        "unable to convert admission request: admission review request is nil");
  }
  ParsedAdmissionReview out;
  out.api_version = api_version;
  auto str = [&](const char* key) { return api::string_field(*req, key); };
  out.uid = str("uid");
  out.ns = str("namespace");
  const std::string operation = str("operation");
  if (operation == "CREATE") {
    out.request.set_operation(pluginv2::AdmissionRequest::CREATE);
  } else if (operation == "UPDATE") {
    out.request.set_operation(pluginv2::AdmissionRequest::UPDATE);
  } else if (operation == "DELETE") {
    out.request.set_operation(pluginv2::AdmissionRequest::DELETE);
  } else if (operation == "CONNECT") {
    // Grafana forwards CONNECT as 3, a value the SDK does not name (open proto3 enum).
    out.request.set_operation(static_cast<pluginv2::AdmissionRequest::Operation>(3));
  } else {
    return api::ApiError::bad_request(
        "unable to convert admission request: unknown admission review operation");
  }
  if (auto k = req->find("kind"); k != req->end() && k->is_object()) {
    auto* gvk = out.request.mutable_kind();
    gvk->set_group(api::string_field(*k, "group"));
    gvk->set_version(api::string_field(*k, "version"));
    gvk->set_kind(api::string_field(*k, "kind"));
  }
  if (auto o = req->find("object"); o != req->end() && !o->is_null()) {
    out.object = *o;
    out.request.set_object_bytes(o->dump(-1, ' ', false, json::error_handler_t::replace));
  }
  if (auto o = req->find("oldObject"); o != req->end() && !o->is_null()) {
    out.request.set_old_object_bytes(o->dump(-1, ' ', false, json::error_handler_t::replace));
  }
  return out;
}

api::Expected<std::string> validation_review(const ParsedAdmissionReview& review,
                                             const pluginv2::ValidationResponse& response) {
  ojson out = review_shell(review, response.allowed());
  if (!response.allowed()) {
    out["response"]["status"] = status_json(response.has_result() ? &response.result() : nullptr);
  }
  add_warnings(out["response"], response.warnings());
  return dump(out);
}

api::Expected<std::string> mutation_review(const ParsedAdmissionReview& review,
                                           const pluginv2::MutationResponse& response) {
  ojson out = review_shell(review, response.allowed());
  if (!response.allowed()) {
    out["response"]["status"] = status_json(response.has_result() ? &response.result() : nullptr);
  } else if (!review.object.is_null()) {
    if (response.object_bytes().empty()) {
      return api::ApiError::bad_gateway("empty mutation response object bytes");
    }
    auto mutated = decode_first_json_value(response.object_bytes());
    if (!mutated) {
      return api::ApiError::bad_gateway("invalid mutation response object from plugin: " +
                                        mutated.error().message);
    }
    const ojson patch = json_patch_diff(review.object, *mutated);
    out["response"]["patch"] = base64_encode(dump(patch));
    out["response"]["patchType"] = "JSONPatch";
  }
  // A mutation of an object-less request (DELETE/CONNECT) has nothing to patch.
  add_warnings(out["response"], response.warnings());
  return dump(out);
}

void handle_admission(std::shared_ptr<const DataPlaneContext> context,
                      std::shared_ptr<http::Exchange> exchange, RouteMatch match,
                      AdmissionKind kind) {
  auto timeout = request_timeout(*exchange, context->options.call_timeout,
                                 context->options.max_timeout);
  if (!timeout) return exchange->respond_error(timeout.error());
  exchange->read_body(context->options.max_body_bytes, [context, exchange, match = std::move(match),
                                                        kind, timeout = *timeout](
                                                           api::Expected<std::string> body) {
    if (!body) return exchange->respond_error(body.error());
    std::string content_type;
    if (auto it = exchange->header().find(boost::beast::http::field::content_type);
        it != exchange->header().end()) {
      content_type = std::string(it->value());
    }
    auto parsed = parse_admission_review(content_type, *body);
    if (!parsed) return exchange->respond_error(parsed.error());
    const auto& user = match.user;
    auto target = resolve_plugin(*context, match.service->spec.plugin_id, nullptr, nullptr,
                                 user ? &*user : nullptr, parsed->ns);
    if (!target) return exchange->respond_error(target.error());
    auto review = std::make_shared<ParsedAdmissionReview>(std::move(parsed.value()));
    pluginv2::AdmissionRequest request = review->request;
    *request.mutable_plugincontext() = std::move(target->plugin_context);
    auto respond = [exchange](api::Expected<std::string> out) {
      if (!out) return exchange->respond_error(out.error());
      exchange->respond(http::Response::json(200, std::move(out.value())));
    };
    // The reply arrives on a gRPC thread; decoding it and diffing the objects is CPU work sized
    // by the plugin's reply, so it runs on the encoder pool, as query replies do.
    if (kind == AdmissionKind::kValidate) {
      target->client->validate_admission(
          std::move(request), {timeout, exchange->trace_context()},
          [context, review, respond](api::Expected<pluginv2::ValidationResponse> r) {
            if (!r) return respond(std::move(r).error());
            context->encode([review, respond, r = std::move(*r)] {
              respond(validation_review(*review, r));
            });
          });
    } else {
      target->client->mutate_admission(
          std::move(request), {timeout, exchange->trace_context()},
          [context, review, respond](api::Expected<pluginv2::MutationResponse> r) {
            if (!r) return respond(std::move(r).error());
            context->encode([review, respond, r = std::move(*r)] {
              respond(mutation_review(*review, r));
            });
          });
    }
  });
}

}  // namespace dpa::dataplane
