#include "aggregator/dataplane/conversion_handler.h"

#include "aggregator/dataplane/query_handler.h"

#include <boost/beast/core/string.hpp>

namespace dpa::dataplane {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

ojson result_json(const std::string& status, const std::string& message) {
  ojson r = ojson::object();
  r["metadata"] = ojson::object();
  r["status"] = status;
  if (!message.empty()) r["message"] = message;
  return r;
}

}  // namespace

api::Expected<ParsedConversionReview> parse_conversion_review(std::string_view content_type,
                                                              std::string_view body) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  if (!boost::beast::iequals(media, "application/json")) {
    return api::ApiError::unsupported_media_type("contentType=" + std::string(content_type) +
                                                 ", expect application/json");
  }
  auto decoded = decode_first_json_value(body);
  if (!decoded) return std::move(decoded).error();
  const json& root = *decoded;
  if (!root.is_object()) return api::ApiError::bad_request("expected a ConversionReview object");
  const std::string api_version =
      root.contains("apiVersion") && root["apiVersion"].is_string() ? root["apiVersion"].get<std::string>() : "";
  const std::string kind =
      root.contains("kind") && root["kind"].is_string() ? root["kind"].get<std::string>() : "";
  if (kind != "ConversionReview" || (api_version != "apiextensions.k8s.io/v1" &&
                                     api_version != "apiextensions.k8s.io/v1beta1")) {
    return api::ApiError::bad_request("expected ConversionReview apiextensions.k8s.io/v1, got " +
                                      (kind.empty() ? std::string("no kind") : kind) + " " +
                                      api_version);
  }
  auto req = root.find("request");
  if (req == root.end() || !req->is_object()) {
    return api::ApiError::bad_request("conversion review request is nil");
  }
  ParsedConversionReview out;
  out.api_version = api_version;
  auto uid = req->find("uid");
  if (uid == req->end() || !uid->is_string() || uid->get<std::string>().empty()) {
    return api::ApiError::bad_request("conversion review request.uid is required");
  }
  out.uid = uid->get<std::string>();
  auto desired = req->find("desiredAPIVersion");
  if (desired == req->end() || !desired->is_string() || desired->get<std::string>().empty()) {
    return api::ApiError::bad_request("conversion review request.desiredAPIVersion is required");
  }
  const std::string gv = desired->get<std::string>();
  const auto slash = gv.find('/');
  auto* target = out.request.mutable_target_version();
  if (slash == std::string::npos) {
    target->set_version(gv);  // core group: "v1"
  } else {
    target->set_group(gv.substr(0, slash));
    target->set_version(gv.substr(slash + 1));
  }
  out.request.set_uid(out.uid);
  if (auto objects = req->find("objects"); objects != req->end() && !objects->is_null()) {
    if (!objects->is_array()) return api::ApiError::bad_request("request.objects must be an array");
    for (const auto& o : *objects) {
      auto* raw = out.request.add_objects();
      raw->set_raw(o.dump(-1, ' ', false, json::error_handler_t::replace));
      raw->set_content_type("application/json");
    }
  }
  return out;
}

std::string conversion_review(const ParsedConversionReview& review,
                              const pluginv2::ConversionResponse& response) {
  ojson out = ojson::object();
  out["kind"] = "ConversionReview";
  out["apiVersion"] = review.api_version;
  ojson body = ojson::object();
  body["uid"] = review.uid;
  ojson converted = ojson::array();
  std::string failure;
  const bool plugin_failed = response.has_result() && (response.result().status() == "Failure" ||
                                                       response.result().code() >= 400);
  if (plugin_failed) {
    failure = response.result().message().empty() ? "conversion failed"
                                                  : response.result().message();
  } else if (response.objects_size() != review.request.objects_size()) {
    failure = "plugin returned " + std::to_string(response.objects_size()) + " objects for " +
              std::to_string(review.request.objects_size());
  } else {
    for (const auto& raw : response.objects()) {
      auto parsed = decode_first_json_value(raw.raw());
      if (!parsed || !parsed->is_object()) {
        failure = "plugin returned an object that is not JSON";
        converted = ojson::array();
        break;
      }
      converted.push_back(ojson::parse(parsed->dump()));
    }
  }
  body["convertedObjects"] = failure.empty() ? std::move(converted) : ojson::array();
  body["result"] = failure.empty() ? result_json("Success", "") : result_json("Failure", failure);
  out["response"] = std::move(body);
  return out.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

void handle_conversion(std::shared_ptr<const DataPlaneContext> context,
                       std::shared_ptr<http::Exchange> exchange, RouteMatch match) {
  auto timeout = request_timeout(*exchange, context->options.call_timeout,
                                 context->options.max_timeout);
  if (!timeout) return exchange->respond_error(timeout.error());
  exchange->read_body(context->options.max_body_bytes, [context, exchange, match = std::move(match),
                                                        timeout = *timeout](
                                                           api::Expected<std::string> body) {
    if (!body) return exchange->respond_error(body.error());
    std::string content_type;
    if (auto it = exchange->header().find(boost::beast::http::field::content_type);
        it != exchange->header().end()) {
      content_type = std::string(it->value());
    }
    auto parsed = parse_conversion_review(content_type, *body);
    if (!parsed) return exchange->respond_error(parsed.error());
    const auto& user = match.user;
    auto target = resolve_plugin(*context, match.service->spec.plugin_id, nullptr, nullptr,
                                 user ? &*user : nullptr, "");
    if (!target) return exchange->respond_error(target.error());
    auto review = std::make_shared<ParsedConversionReview>(std::move(parsed.value()));
    pluginv2::ConversionRequest request = review->request;
    *request.mutable_plugincontext() = std::move(target->plugin_context);
    target->client->convert_objects(
        std::move(request), {timeout, exchange->trace_context()},
        [context, exchange, review](api::Expected<pluginv2::ConversionResponse> r) {
          if (!r) return exchange->respond_error(r.error());
          // Off the gRPC thread: re-encoding every converted object is sized by the reply.
          context->encode([exchange, review, r = std::move(*r)] {
            exchange->respond(http::Response::json(200, conversion_review(*review, r)));
          });
        });
  });
}

}  // namespace dpa::dataplane
