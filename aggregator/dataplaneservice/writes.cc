// The write operations of RestHandler (create, update, patch/apply, delete, deletecollection and
// the availability condition). All of them block on the store, so they run on the blocking
// executor, never on an I/O thread.
#include "aggregator/apimachinery/codec.h"
#include "aggregator/apimachinery/managed_fields.h"
#include "aggregator/apimachinery/object_meta.h"
#include "aggregator/apimachinery/patch.h"
#include "aggregator/apimachinery/selectors.h"
#include "aggregator/dataplaneservice/rest_handler.h"
#include "aggregator/dataplaneservice/types.h"

namespace dpa::dataplaneservice {
namespace {

using nlohmann::json;

const std::string kApiVersion = std::string(kGroup) + "/" + kVersion;
constexpr int kMaxWriteAttempts = 5;

json& meta_of(json& object) {
  if (!object.contains("metadata") || !object["metadata"].is_object()) {
    object["metadata"] = json::object();
  }
  return object["metadata"];
}

std::string string_at(const json& object, const char* a, const char* b) {
  if (object.is_object() && object.contains(a) && object[a].is_object() &&
      object[a].contains(b) && object[a][b].is_string()) {
    return object[a][b].get<std::string>();
  }
  return "";
}

std::string stored_value(json object) {
  meta_of(object).erase("resourceVersion");
  return api::dump_json(object);
}

api::ManagedFieldsConfig fields_config(bool status) {
  api::ManagedFieldsConfig c;
  c.api_version = kApiVersion;
  c.list_map_keys = {{"status.conditions", "type"}};
  if (status) {
    c.ignored_top_level = {"spec", "metadata"};
    c.subresource = "status";
  } else {
    c.ignored_top_level = {"status"};
  }
  return c;
}

std::string manager_of(const WriteRequest& r) {
  return r.field_manager.empty() ? api::field_manager_from_user_agent(r.user_agent)
                                 : r.field_manager;
}

api::Outcome handle_unknown_fields(json& object, api::FieldValidation mode,
                                   std::vector<std::string>& warnings) {
  auto unknown = unknown_fields(object);
  if (!unknown.empty()) {
    if (mode == api::FieldValidation::kStrict) {
      std::string message = "strict decoding error: ";
      json causes = json::array();
      for (std::size_t i = 0; i < unknown.size(); ++i) {
        if (i) message += ", ";
        message += "unknown field \"" + unknown[i] + "\"";
        causes.push_back(
            {{"reason", "FieldValueInvalid"}, {"message", "unknown field"}, {"field", unknown[i]}});
      }
      api::ApiError e;
      e.code = 422;
      e.reason = "Invalid";
      e.message = message;
      e.details = {{"name", name_of(object)}, {"group", kGroup}, {"kind", kKind}, {"causes", causes}};
      return e;
    }
    if (mode == api::FieldValidation::kWarn) {
      for (const auto& f : unknown) warnings.push_back("unknown field \"" + f + "\"");
    }
  }
  prune_unknown_fields(object);
  return api::Ok{};
}

// Decodes a create/update/apply body: JSON or YAML, our apiVersion/kind, unknown fields handled.
api::Expected<json> decode_object(const WriteRequest& req, std::vector<std::string>& warnings) {
  auto obj = api::decode_body(req.body);
  if (!obj) return obj;
  if (auto ok = check_type_meta(*obj); !ok) return ok.error();
  if (auto ok = handle_unknown_fields(*obj, req.validation, warnings); !ok) return ok.error();
  if (obj->contains("metadata") && !(*obj)["metadata"].is_object() &&
      !(*obj)["metadata"].is_null()) {
    return api::ApiError::bad_request("metadata must be an object");
  }
  meta_of(*obj);
  return obj;
}

api::ApiError name_mismatch(const std::string& body_name, const std::string& url_name) {
  return api::ApiError::bad_request("the name of the object (" + body_name +
                                    ") does not match the name on the URL (" + url_name + ")");
}

json without_volatile(json object) {
  auto& m = meta_of(object);
  m.erase("managedFields");
  m.erase("resourceVersion");
  return object;
}

bool has_finalizers(const json& object) {
  const auto& m = object["metadata"];
  return m.contains("finalizers") && m["finalizers"].is_array() && !m["finalizers"].empty();
}

}  // namespace

// Fills server-owned metadata of a new object, validates and stores it (or not, on dry run).
static api::Expected<WriteResult> finish_create(storage::Store& store, json obj,
                                                const WriteRequest& req,
                                                std::vector<std::string> warnings) {
  auto& meta = meta_of(obj);
  for (const char* k : {"resourceVersion", "uid", "selfLink", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "namespace", "generation",
                        "creationTimestamp"}) {
    meta.erase(k);
  }
  meta["uid"] = api::new_uid();
  meta["creationTimestamp"] = api::now_rfc3339();
  meta["generation"] = 1;
  // Status is owned by the controllers: what a client sends on create is dropped.
  obj.erase("status");
  if (auto ok = validate(obj); !ok) return ok.error();
  const std::string name = name_of(obj);
  if (req.dry_run) {
    if (store.get(key_of(name))) return api::ApiError::already_exists(kResource, kGroup, name);
    return WriteResult{201, obj, std::move(warnings)};
  }
  auto rec = store.create(key_of(name), stored_value(obj));
  if (!rec) {
    if (rec.error().code == 409) return api::ApiError::already_exists(kResource, kGroup, name);
    return rec.error();
  }
  meta_of(obj)["resourceVersion"] = std::to_string(rec->mod_revision);
  return WriteResult{201, obj, std::move(warnings)};
}

api::Expected<WriteResult> RestHandler::create(const WriteRequest& req) {
  std::vector<std::string> warnings;
  auto obj = decode_object(req, warnings);
  if (!obj) return obj.error();
  auto& meta = meta_of(*obj);
  std::string name = string_at(*obj, "metadata", "name");
  std::string generate = string_at(*obj, "metadata", "generateName");
  if (name.empty() && !generate.empty()) {
    name = generate + api::generate_name_suffix();
    meta["name"] = name;
  }
  if (name.empty()) {
    return api::ApiError::invalid(kKind, kGroup, "",
                                  {{"FieldValueRequired",
                                    "Required value: name or generateName is required",
                                    "metadata.name"}});
  }
  meta.erase("managedFields");
  api::record_update(nullptr, *obj, manager_of(req), api::now_rfc3339(), fields_config(false));
  return finish_create(store_, std::move(*obj), req, std::move(warnings));
}

api::Expected<WriteResult> RestHandler::update(const WriteRequest& req) {
  std::vector<std::string> warnings;
  auto obj = decode_object(req, warnings);
  if (!obj) return obj.error();
  std::string body_name = string_at(*obj, "metadata", "name");
  if (body_name.empty()) {
    meta_of(*obj)["name"] = req.name;
  } else if (body_name != req.name) {
    return name_mismatch(body_name, req.name);
  }
  std::string rv_text = string_at(*obj, "metadata", "resourceVersion");
  if (rv_text.empty()) {
    // Grafana's strategy forbids unconditional updates: PUT must carry the version it read.
    return api::ApiError::invalid(kKind, kGroup, req.name,
                                  {{"FieldValueInvalid",
                                    "Invalid value: 0x0: must be specified for an update",
                                    "metadata.resourceVersion"}});
  }
  auto rv = api::parse_resource_version(rv_text);
  if (!rv) return rv.error();
  auto rec = store_.get(key_of(req.name));
  if (!rec) {
    if (rec.error().code == 404) return api::ApiError::not_found(kResource, kGroup, req.name);
    return rec.error();
  }
  if (*rv != rec->mod_revision) return api::ApiError::conflict(kResource, kGroup, req.name);
  auto current = object_from_record(*rec);
  if (!current) return current.error();
  return commit_update(*rec, *current, std::move(*obj), req, false, std::move(warnings));
}

api::Expected<WriteResult> RestHandler::commit_update(const storage::Record& current_record,
                                                      const json& current, json candidate,
                                                      const WriteRequest& req, bool apply,
                                                      std::vector<std::string> warnings) {
  const std::string name = name_of(current);
  const json& om = current["metadata"];
  auto& cm = meta_of(candidate);
  // Identity and server-owned metadata never change through a write.
  cm["name"] = name;
  cm.erase("namespace");
  cm.erase("selfLink");
  for (const char* k : {"uid", "creationTimestamp", "generation", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "generateName"}) {
    if (om.contains(k)) {
      cm[k] = om[k];
    } else {
      cm.erase(k);
    }
  }
  if (req.status) {
    // /status: only status persists; everything else comes from the stored object.
    json merged = current;
    if (candidate.contains("status")) {
      merged["status"] = candidate["status"];
    } else {
      merged.erase("status");
    }
    if (apply && cm.contains("managedFields")) {
      meta_of(merged)["managedFields"] = cm["managedFields"];
    }
    candidate = std::move(merged);  // `cm` dangles from here on
  } else if (current.contains("status")) {
    // The main resource ignores status changes (Grafana's strategy, kube's convention).
    candidate["status"] = current["status"];
  } else {
    candidate.erase("status");
  }
  if (!apply) {
    auto& meta = meta_of(candidate);
    json before = current;
    // A request setting managedFields to [{}] clears them (reference §2.2).
    if (meta.contains("managedFields") && meta["managedFields"] == json::array({json::object()})) {
      meta_of(before).erase("managedFields");
    }
    meta.erase("managedFields");
    api::record_update(&before, candidate, manager_of(req), api::now_rfc3339(),
                       fields_config(req.status));
  }
  int64_t generation = om.contains("generation") && om["generation"].is_number_integer()
                           ? om["generation"].get<int64_t>() : 1;
  if (api::spec_changed(current, candidate)) ++generation;
  meta_of(candidate)["generation"] = generation;

  if (auto ok = req.status ? validate_status(candidate) : validate(candidate); !ok) {
    return ok.error();
  }
  if (without_volatile(candidate) == without_volatile(current)) {
    // No-op writes do not bump the resourceVersion (and wake no watcher).
    return WriteResult{200, current, std::move(warnings)};
  }
  meta_of(candidate)["resourceVersion"] = std::to_string(current_record.mod_revision);
  if (meta_of(candidate).contains("deletionTimestamp") && !has_finalizers(candidate)) {
    // The last finalizer is gone: the pending delete completes now.
    if (req.dry_run) return WriteResult{200, candidate, std::move(warnings)};
    auto removed = store_.remove(key_of(name), current_record.mod_revision);
    if (!removed) {
      if (removed.error().code == 404) return api::ApiError::not_found(kResource, kGroup, name);
      if (removed.error().code == 409) return api::ApiError::conflict(kResource, kGroup, name);
      return removed.error();
    }
    return WriteResult{200, candidate, std::move(warnings)};
  }
  if (req.dry_run) return WriteResult{200, candidate, std::move(warnings)};
  auto rec = store_.update(key_of(name), stored_value(candidate), current_record.mod_revision);
  if (!rec) {
    if (rec.error().code == 404) return api::ApiError::not_found(kResource, kGroup, name);
    if (rec.error().code == 409) return api::ApiError::conflict(kResource, kGroup, name);
    return rec.error();
  }
  meta_of(candidate)["resourceVersion"] = std::to_string(rec->mod_revision);
  return WriteResult{200, candidate, std::move(warnings)};
}

api::Expected<WriteResult> RestHandler::patch(const WriteRequest& req) {
  const bool apply = req.content_type == "application/apply-patch+yaml";
  std::vector<std::string> warnings;
  json applied;
  if (apply) {
    auto obj = decode_object(req, warnings);
    if (!obj) return obj.error();
    std::string body_name = string_at(*obj, "metadata", "name");
    if (body_name.empty()) {
      meta_of(*obj)["name"] = req.name;
    } else if (body_name != req.name) {
      return name_mismatch(body_name, req.name);
    }
    applied = std::move(*obj);
  }
  const std::string manager = manager_of(req);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto rec = store_.get(key_of(req.name));
    if (!rec) {
      if (rec.error().code != 404) return rec.error();
      if (!apply || req.status) return api::ApiError::not_found(kResource, kGroup, req.name);
      // Apply to a missing object creates it.
      auto created = api::server_side_apply(nullptr, applied, manager, req.force,
                                            api::now_rfc3339(), fields_config(false));
      if (!created) return created.error();
      auto r = finish_create(store_, std::move(*created), req, warnings);
      if (!r && r.error().reason == "AlreadyExists") continue;  // raced with a create: retry
      return r;
    }
    auto current = object_from_record(*rec);
    if (!current) return current.error();
    std::vector<std::string> attempt_warnings = warnings;
    json patched;
    if (apply) {
      auto merged = api::server_side_apply(&*current, applied, manager, req.force,
                                           api::now_rfc3339(), fields_config(req.status));
      if (!merged) return merged.error();
      patched = std::move(*merged);
    } else {
      auto result = req.content_type == "application/merge-patch+json"
                        ? api::apply_merge_patch(*current, req.body)
                        : api::apply_json_patch(*current, req.body);
      if (!result) return result.error();
      patched = std::move(*result);
      if (auto ok = check_type_meta(patched); !ok) return ok.error();
      if (auto ok = handle_unknown_fields(patched, req.validation, attempt_warnings); !ok) {
        return ok.error();
      }
      if (!patched.contains("metadata") || !patched["metadata"].is_object()) {
        return api::ApiError::bad_request("metadata must be an object");
      }
      std::string patched_name = string_at(patched, "metadata", "name");
      if (patched_name != req.name) return name_mismatch(patched_name, req.name);
    }
    // A resourceVersion in the patch is a precondition (kubectl edit, client-go retries).
    std::string rv_text = string_at(patched, "metadata", "resourceVersion");
    bool precondition = !apply && !rv_text.empty() &&
                        rv_text != string_at(*current, "metadata", "resourceVersion");
    if (precondition) return api::ApiError::conflict(kResource, kGroup, req.name);
    auto r = commit_update(*rec, *current, std::move(patched), req, apply,
                           std::move(attempt_warnings));
    if (!r && r.error().code == 409 && r.error().reason == "Conflict") continue;
    return r;
  }
  return api::ApiError::conflict(kResource, kGroup, req.name);
}

api::Expected<WriteResult> RestHandler::remove(const WriteRequest& req) {
  bool dry_run = req.dry_run;
  std::string uid_precondition;
  std::string rv_precondition;
  if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    auto options = api::decode_body(req.body);
    if (!options) return options.error();
    if (!options->is_object()) return api::ApiError::bad_request("DeleteOptions must be an object");
    const json& o = *options;
    if (o.contains("dryRun") && o["dryRun"].is_array()) {
      std::vector<std::string> values;
      for (const auto& v : o["dryRun"]) values.push_back(v.is_string() ? v.get<std::string>() : api::dump_json(v));
      if (auto ok = api::validate_dry_run(values, "DeleteOptions"); !ok) return ok.error();
      dry_run = dry_run || !values.empty();
    }
    if (o.contains("propagationPolicy") && !o["propagationPolicy"].is_null()) {
      std::string p = o["propagationPolicy"].is_string() ? o["propagationPolicy"].get<std::string>() : "";
      if (p != "Orphan" && p != "Background" && p != "Foreground") {
        return api::ApiError::invalid("DeleteOptions", "meta.k8s.io", "",
                                      {{"FieldValueNotSupported",
                                        "Unsupported value: \"" + p +
                                            "\": supported values: \"Background\", "
                                            "\"Foreground\", \"Orphan\"",
                                        "propagationPolicy"}});
      }
    }
    if (o.contains("preconditions") && o["preconditions"].is_object()) {
      uid_precondition = api::string_field(o["preconditions"], "uid");
      rv_precondition = api::string_field(o["preconditions"], "resourceVersion");
    }
  }
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto rec = store_.get(key_of(req.name));
    if (!rec) {
      if (rec.error().code == 404) return api::ApiError::not_found(kResource, kGroup, req.name);
      return rec.error();
    }
    auto current = object_from_record(*rec);
    if (!current) return current.error();
    std::string uid = string_at(*current, "metadata", "uid");
    std::string rv = string_at(*current, "metadata", "resourceVersion");
    if (!uid_precondition.empty() && uid_precondition != uid) {
      api::ApiError e = api::ApiError::conflict_message(
          "Precondition failed: UID in precondition: " + uid_precondition +
          ", UID in object meta: " + uid);
      e.details = {{"name", req.name}, {"group", kGroup}, {"kind", kResource}};
      return e;
    }
    if (!rv_precondition.empty() && rv_precondition != rv) {
      api::ApiError e = api::ApiError::conflict_message(
          "Precondition failed: ResourceVersion in precondition: " + rv_precondition +
          ", ResourceVersion in object meta: " + rv);
      e.details = {{"name", req.name}, {"group", kGroup}, {"kind", kResource}};
      return e;
    }
    if (has_finalizers(*current)) {
      // Finalizers hold the object: mark it terminating and let their owners remove them.
      if ((*current)["metadata"].contains("deletionTimestamp")) return WriteResult{200, *current, {}};
      json marked = *current;
      meta_of(marked)["deletionTimestamp"] = api::now_rfc3339();
      meta_of(marked)["deletionGracePeriodSeconds"] = 0;
      if (dry_run) return WriteResult{200, marked, {}};
      auto updated = store_.update(key_of(req.name), stored_value(marked), rec->mod_revision);
      if (!updated) {
        if (updated.error().code == 409) continue;
        if (updated.error().code == 404) return api::ApiError::not_found(kResource, kGroup, req.name);
        return updated.error();
      }
      meta_of(marked)["resourceVersion"] = std::to_string(updated->mod_revision);
      return WriteResult{200, marked, {}};
    }
    if (dry_run) return WriteResult{200, *current, {}};
    auto removed = store_.remove(key_of(req.name), rec->mod_revision);
    if (!removed) {
      if (removed.error().code == 409) continue;
      if (removed.error().code == 404) return api::ApiError::not_found(kResource, kGroup, req.name);
      return removed.error();
    }
    return WriteResult{200, *current, {}};
  }
  return api::ApiError::conflict(kResource, kGroup, req.name);
}

api::Expected<WriteResult> RestHandler::remove_collection(const std::string& label_selector,
                                                          const std::string& field_selector,
                                                          bool dry_run) {
  auto labels = api::LabelSelector::parse(label_selector);
  if (!labels) return labels.error();
  auto fields = api::FieldSelector::parse(field_selector);
  if (!fields) return fields.error();
  storage::ListOptions opts;
  opts.prefix = kKeyPrefix;
  auto listed = store_.list(opts);
  if (!listed) return listed.error();
  json items = json::array();
  for (const auto& rec : listed->items) {
    auto obj = object_from_record(rec);
    if (!obj) continue;
    const auto attributes = api::Attributes::of(*obj);
    if (!labels->matches(attributes) || !fields->matches(attributes)) continue;
    WriteRequest req;
    req.name = name_of(*obj);
    req.dry_run = dry_run;
    auto r = remove(req);
    if (!r) {
      if (r.error().code == 404) continue;  // deleted concurrently
      return r.error();
    }
    items.push_back(r->object);
  }
  json list = {{"kind", kListKind},
               {"apiVersion", kApiVersion},
               {"metadata", {{"resourceVersion", std::to_string(store_.current_revision())}}},
               {"items", items}};
  return WriteResult{200, list, {}};
}

api::Outcome RestHandler::set_available_condition(const std::string& name, bool available,
                                                  std::string reason, std::string message) {
  const std::string status = available ? "True" : "False";
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto rec = store_.get(key_of(name));
    if (!rec) {
      if (rec.error().code == 404) return api::ApiError::not_found(kResource, kGroup, name);
      return rec.error();
    }
    auto current = object_from_record(*rec);
    if (!current) return current.error();
    json obj = *current;
    if (!obj.contains("status") || !obj["status"].is_object()) obj["status"] = json::object();
    if (!obj["status"].contains("conditions") || !obj["status"]["conditions"].is_array()) {
      obj["status"]["conditions"] = json::array();
    }
    json& conditions = obj["status"]["conditions"];
    json* existing = nullptr;
    for (auto& c : conditions) {
      if (c.is_object() && api::string_field(c, "type") == "Available") existing = &c;
    }
    if (existing && api::string_field(*existing, "status") == status &&
        api::string_field(*existing, "reason") == reason && api::string_field(*existing, "message") == message) {
      return api::Ok{};  // nothing changed: no write, no watch event
    }
    std::string transition = existing && api::string_field(*existing, "status") == status
                                 ? existing->value("lastTransitionTime", api::now_rfc3339())
                                 : api::now_rfc3339();
    json condition = {{"type", "Available"}, {"status", status}, {"lastTransitionTime", transition},
                      {"reason", reason}, {"message", message}};
    if (existing) {
      *existing = condition;
    } else {
      conditions.push_back(condition);
    }
    api::record_update(&*current, obj, "dataplane-aggregator", api::now_rfc3339(),
                       fields_config(true));
    auto updated = store_.update(key_of(name), stored_value(obj), rec->mod_revision);
    if (!updated) {
      if (updated.error().code == 409) continue;
      if (updated.error().code == 404) return api::ApiError::not_found(kResource, kGroup, name);
      return updated.error();
    }
    return api::Ok{};
  }
  return api::ApiError::conflict(kResource, kGroup, name);
}

}  // namespace dpa::dataplaneservice
