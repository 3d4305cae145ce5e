#include "plugins/testdata/kube.h"

#include <nlohmann/json.hpp>

namespace dpa::testdata {
namespace {

using ordered_json = nlohmann::ordered_json;

// Objects keep their key order through a round trip (ordered_json), as users compare them.
bool parse_object(const std::string& bytes, ordered_json& out) {
  out = ordered_json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  return !out.is_discarded() && out.is_object();
}

void set_result(pluginv2::StatusResult* result, const char* status, std::string message,
                const char* reason, int code) {
  result->set_status(status);
  result->set_message(std::move(message));
  result->set_reason(reason);
  result->set_code(code);
}

std::string dump(const ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

grpc::Status AdmissionHandler::validate_admission(const sdk::CallContext&,
                                                  const pluginv2::AdmissionRequest& request,
                                                  pluginv2::ValidationResponse& response) {
  if (request.operation() == pluginv2::AdmissionRequest::DELETE) {
    response.set_allowed(true);
    set_result(response.mutable_result(), "Success", "", "", 200);
    return grpc::Status::OK;
  }
  ordered_json object;
  if (!parse_object(request.object_bytes(), object)) {
    response.set_allowed(false);
    set_result(response.mutable_result(), "Failure", "object is not a JSON object", "BadRequest",
               400);
    return grpc::Status::OK;
  }
  const auto spec = object.find("spec");
  const bool deny = spec != object.end() && spec->is_object() && spec->contains("deny") &&
                    (*spec)["deny"] == true;
  if (deny) {
    response.set_allowed(false);
    set_result(response.mutable_result(), "Failure",
               "testdata admission denied the object: spec.deny is true", "Forbidden", 403);
    response.add_warnings("spec.deny is set: this object is rejected by the testdata plugin");
    response.add_warnings("remove spec.deny to have the object admitted");
    return grpc::Status::OK;
  }
  response.set_allowed(true);
  set_result(response.mutable_result(), "Success", "", "", 200);
  return grpc::Status::OK;
}

grpc::Status AdmissionHandler::mutate_admission(const sdk::CallContext&,
                                                const pluginv2::AdmissionRequest& request,
                                                pluginv2::MutationResponse& response) {
  if (request.operation() == pluginv2::AdmissionRequest::DELETE) {
    response.set_allowed(true);
    set_result(response.mutable_result(), "Success", "", "", 200);
    return grpc::Status::OK;
  }
  ordered_json object;
  if (!parse_object(request.object_bytes(), object)) {
    response.set_allowed(false);
    set_result(response.mutable_result(), "Failure", "object is not a JSON object", "BadRequest",
               400);
    return grpc::Status::OK;
  }
  ordered_json& metadata = object["metadata"];
  if (!metadata.is_object()) metadata = ordered_json::object();
  ordered_json& labels = metadata["labels"];
  if (!labels.is_object()) labels = ordered_json::object();
  labels[kMutatedLabel] = "true";
  response.set_allowed(true);
  set_result(response.mutable_result(), "Success", "", "", 200);
  response.set_object_bytes(dump(object));
  return grpc::Status::OK;
}

grpc::Status ConversionHandler::convert_objects(const sdk::CallContext&,
                                                const pluginv2::ConversionRequest& request,
                                                pluginv2::ConversionResponse& response) {
  response.set_uid(request.uid());
  const auto& target = request.target_version();
  if (target.version().empty()) {
    set_result(response.mutable_result(), "Failure", "target_version.version is empty",
               "BadRequest", 400);
    return grpc::Status::OK;
  }
  const std::string api_version =
      target.group().empty() ? target.version() : target.group() + "/" + target.version();
  const bool to_v2 = target.version().rfind("v2", 0) == 0;

  for (int i = 0; i < request.objects_size(); ++i) {
    const auto& in = request.objects(i);
    ordered_json object;
    if (!parse_object(in.raw(), object)) {
      response.clear_objects();
      set_result(response.mutable_result(), "Failure",
                 "objects[" + std::to_string(i) + "] is not a JSON object", "BadRequest", 400);
      return grpc::Status::OK;
    }
    object["apiVersion"] = api_version;
    // The one schema difference between versions: v2 renamed spec.oldName to spec.newName.
    auto spec = object.find("spec");
    if (spec != object.end() && spec->is_object()) {
      const char* from = to_v2 ? "oldName" : "newName";
      const char* to = to_v2 ? "newName" : "oldName";
      if (spec->contains(from)) {
        (*spec)[to] = (*spec)[from];
        spec->erase(from);
      }
    }
    auto* out = response.add_objects();
    out->set_raw(dump(object));
    out->set_content_type(in.content_type().empty() ? "application/json" : in.content_type());
  }
  set_result(response.mutable_result(), "Success", "", "", 200);
  return grpc::Status::OK;
}

}  // namespace dpa::testdata
