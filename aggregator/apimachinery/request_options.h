// Query options of list/watch and write requests, validated the way kube-apiserver validates
// ListOptions/CreateOptions/UpdateOptions/PatchOptions/DeleteOptions (reference §2.3, §2.4, §2.6):
// resourceVersion parsing, opaque continue tokens, watch-list rules, dryRun, fieldManager and
// fieldValidation. Violations are 400 or 422 values naming the option.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::api {

// The position of a paged list: the revision of the first page and the last key returned.
struct ContinueToken {
  int64_t resource_version = 0;
  std::string start_after;
};
std::string encode_continue(const ContinueToken& token);  // base64 of {"rv":N,"start":"key"}
Expected<ContinueToken> decode_continue(std::string_view token);  // 400 on garbage

// "" and "0" give 0; digits give the number; anything else 400 "invalid resource version".
Expected<int64_t> parse_resource_version(std::string_view text);

struct ListRequest {
  bool watch = false;
  std::string resource_version;        // raw, possibly empty
  std::string resource_version_match;  // "", Exact, NotOlderThan
  std::optional<bool> send_initial_events;
  bool allow_watch_bookmarks = false;
  std::string continue_token;
  int64_t limit = 0;
  std::optional<int64_t> timeout_seconds;
};
// 422 Invalid on ListOptions.meta.k8s.io for the watch-list and resourceVersionMatch rules, 400 for
// malformed numbers/tokens.
Outcome validate_list_request(const ListRequest& request);

// Parses "true"/"1"/"false"/"0"/""; nullopt for anything else.
std::optional<bool> parse_bool_param(std::string_view value);

enum class FieldValidation { kIgnore, kWarn, kStrict };
// "" defaults to Warn (the server default since Kubernetes 1.27). Unknown: 422 on options_kind.
Expected<FieldValidation> parse_field_validation(std::string_view value,
                                                 const std::string& options_kind);
// Only "All" is allowed (empty list = not a dry run). Others: 422 on options_kind.
Outcome validate_dry_run(const std::vector<std::string>& values, const std::string& options_kind);
// <= 128 printable ASCII characters; 422 on options_kind otherwise.
Outcome validate_field_manager(std::string_view manager, const std::string& options_kind);
// The default manager for a write without fieldManager: the User-Agent up to the first '/'.
std::string field_manager_from_user_agent(std::string_view user_agent);

}  // namespace dpa::api
