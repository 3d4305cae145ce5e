// Authorization as kube-apiserver does it (reference §4, §5, §8): AlwaysAllow, AlwaysDeny, ABAC
// policy files, the ordered chain behind the system:masters check, and the 403 text.
#include "aggregator/auth/auth.h"

#include "aggregator/apimachinery/codec.h"
#include "aggregator/auth/header_text.h"
#include "aggregator/observability/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

namespace dpa::auth {
namespace {

using Decision = AuthzResult::Decision;

class AlwaysAllow final : public Authorizer {
 public:
  void authorize(const Attributes&, std::function<void(AuthzResult)> done) const override {
    AuthzResult result;
    result.decision = Decision::kAllow;
    done(std::move(result));
  }
};

class AlwaysDeny final : public Authorizer {
 public:
  // NoOpinion, not Deny, as kube's: a later authorizer may still allow.
  void authorize(const Attributes&, std::function<void(AuthzResult)> done) const override {
    AuthzResult result;
    result.reason = "Everything is forbidden.";
    done(std::move(result));
  }
};

// --- ABAC ----------------------------------------------------------------------------------------

constexpr const char* kAbacV1beta1 = "abac.authorization.kubernetes.io/v1beta1";
constexpr const char* kAbacV0 = "abac.authorization.kubernetes.io/v0";

// kube's internal abac.PolicySpec, after the conversions of its v0 and v1beta1 forms.
struct AbacPolicy {
  std::string user;
  std::string group;
  bool readonly = false;
  std::string api_group;
  std::string namespace_name;
  std::string resource;
  std::string non_resource_path;
};

// Reads the policy fields of `object`. Absent or null is "" / false, as Go's decoder leaves
// them; a value of another type fails the line.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& object, std::string where)
      : object_(object), where_(std::move(where)) {}

  bool text(const char* key, std::string& out, std::string& error) const {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return true;
    if (!it->is_string()) {
      error = where_ + key + ": expected a string, got " + it->type_name();
      return false;
    }
    out = api::string_field(object_, key);
    return true;
  }

  bool flag(const char* key, bool& out, std::string& error) const {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return true;
    if (!it->is_boolean()) {
      error = where_ + key + ": expected a boolean, got " + it->type_name();
      return false;
    }
    out = it->get<bool>();
    return true;
  }

 private:
  const nlohmann::json& object_;
  std::string where_;
};

// The v1beta1 form: {"apiVersion":..., "kind":"Policy", "spec":{...}}.
bool read_v1beta1(const nlohmann::json& line, AbacPolicy& policy, std::string& error) {
  auto spec = line.find("spec");
  if (spec == line.end() || spec->is_null()) return true;  // matches nobody: no user, no group
  if (!spec->is_object()) {
    error = std::string("spec: expected an object, got ") + spec->type_name();
    return false;
  }
  FieldReader fields(*spec, "spec.");
  if (!fields.text("user", policy.user, error) || !fields.text("group", policy.group, error) ||
      !fields.flag("readonly", policy.readonly, error) ||
      !fields.text("apiGroup", policy.api_group, error) ||
      !fields.text("namespace", policy.namespace_name, error) ||
      !fields.text("resource", policy.resource, error) ||
      !fields.text("nonResourcePath", policy.non_resource_path, error)) {
    return false;
  }
  // In v1beta1 a "*" user or group means every authenticated subject.
  if (policy.user == "*" || policy.group == "*") {
    policy.group = kSystemAuthenticated;
    policy.user.clear();
  }
  return true;
}

// The legacy v0 form: a flat object with user, group, readonly, resource, namespace.
bool read_v0(const nlohmann::json& line, AbacPolicy& policy, std::string& error) {
  FieldReader fields(line, "");
  std::string user, group, namespace_name, resource;
  if (!fields.text("user", user, error) || !fields.text("group", group, error) ||
      !fields.flag("readonly", policy.readonly, error) ||
      !fields.text("namespace", namespace_name, error) ||
      !fields.text("resource", resource, error)) {
    return false;
  }
  policy.user = user;
  policy.group = group;
  policy.namespace_name = namespace_name;
  policy.resource = resource;
  // kube's conversion of v0, rule by rule: no subject or "*" is every authenticated subject; an
  // empty namespace or resource is any; every API group; neither namespace nor resource also
  // opens every non-resource path.
  if (user.empty() && group.empty()) policy.group = kSystemAuthenticated;
  if (user == "*" || group == "*") {
    policy.group = kSystemAuthenticated;
    policy.user.clear();
  }
  if (namespace_name.empty()) policy.namespace_name = "*";
  if (resource.empty()) policy.resource = "*";
  policy.api_group = "*";
  if (namespace_name.empty() && resource.empty()) policy.non_resource_path = "*";
  return true;
}

// One policy line; `unversioned` tells whether it was the legacy form.
bool read_policy_line(std::string_view text, AbacPolicy& policy, bool& unversioned,
                      std::string& error) {
  nlohmann::json line;
  try {
    line = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // A parse error, or out_of_range for a number too large for a double ("1e99999"). nlohmann's
    // text after its "[json.exception.parse_error.101] " tag.
    std::string_view what = e.what();
    std::size_t tag_end = what.find("] ");
    error = std::string(tag_end == std::string_view::npos ? what : what.substr(tag_end + 2));
    return false;
  }
  if (!line.is_object()) {
    error = std::string("expected a JSON object, got ") + line.type_name();
    return false;
  }
  std::string api_version, kind;
  FieldReader fields(line, "");
  if (!fields.text("apiVersion", api_version, error) || !fields.text("kind", kind, error)) {
    return false;
  }
  unversioned = api_version.empty() || kind.empty();
  if (unversioned) return read_v0(line, policy, error);
  if (kind == "Policy" && api_version == kAbacV1beta1) return read_v1beta1(line, policy, error);
  if (kind == "Policy" && api_version == kAbacV0) return read_v0(line, policy, error);
  error = "no kind \"" + kind + "\" is registered for version \"" + api_version + "\"";
  return false;
}

bool is_read_only(const std::string& verb) {
  return verb == "get" || verb == "list" || verb == "watch";
}

bool subject_matches(const AbacPolicy& policy, const UserInfo& user) {
  bool matched = false;
  if (!policy.user.empty()) {
    if (policy.user != "*" && policy.user != user.name) return false;
    matched = true;
  }
  if (!policy.group.empty()) {
    if (policy.group != "*" && !user.in_group(policy.group)) return false;
    matched = true;
  }
  return matched;
}

bool matches(const AbacPolicy& policy, const Attributes& a) {
  if (!subject_matches(policy, a.user)) return false;
  // Every policy allows reading; a read-only one allows nothing else.
  if (!is_read_only(a.verb) && policy.readonly) return false;
  if (a.resource_request) {
    // Name and subresource are not part of ABAC: a rule on "datasources" covers ".../query".
    auto field_matches = [](const std::string& rule, const std::string& value) {
      return rule == "*" || rule == value;
    };
    return field_matches(policy.namespace_name, a.namespace_name) &&
           field_matches(policy.resource, a.resource) &&
           field_matches(policy.api_group, a.api_group);
  }
  const std::string& rule = policy.non_resource_path;
  if (rule == "*" || rule == a.path) return true;
  if (rule.empty() || rule.back() != '*') return false;
  std::string_view prefix(rule);
  while (!prefix.empty() && prefix.back() == '*') prefix.remove_suffix(1);
  return a.path.compare(0, prefix.size(), prefix) == 0;
}

class AbacAuthorizer final : public Authorizer {
 public:
  explicit AbacAuthorizer(std::vector<AbacPolicy> policies) : policies_(std::move(policies)) {}

  void authorize(const Attributes& attributes,
                 std::function<void(AuthzResult)> done) const override {
    AuthzResult result;
    bool allowed = std::any_of(policies_.begin(), policies_.end(),
                               [&](const AbacPolicy& p) { return matches(p, attributes); });
    if (allowed) {
      result.decision = Decision::kAllow;
    } else {
      result.reason = "No policy matched.";
    }
    done(std::move(result));
  }

 private:
  std::vector<AbacPolicy> policies_;
};

// --- the chain -----------------------------------------------------------------------------------

class AuthorizerChain final : public Authorizer {
 public:
  explicit AuthorizerChain(std::vector<std::shared_ptr<const Authorizer>> authorizers)
      : authorizers_(std::make_shared<const std::vector<std::shared_ptr<const Authorizer>>>(
            std::move(authorizers))) {}

  void authorize(const Attributes& attributes,
                 std::function<void(AuthzResult)> done) const override {
    // kube's privileged-group authorizer, always first: system:masters may do anything.
    if (attributes.user.in_group(kSystemMasters)) {
      AuthzResult result;
      result.decision = Decision::kAllow;
      return done(std::move(result));
    }
    auto run = std::make_shared<Run>();
    run->authorizers = authorizers_;
    run->attributes = attributes;
    run->done = std::move(done);
    step(std::move(run));
  }

 private:
  // One decision in progress; it owns a copy of the attributes, so an authorizer answering later
  // (a webhook) never reads the caller's.
  struct Run {
    std::shared_ptr<const std::vector<std::shared_ptr<const Authorizer>>> authorizers;
    Attributes attributes;
    std::function<void(AuthzResult)> done;
    std::size_t next = 0;
    std::vector<std::string> reasons;
    std::vector<std::string> errors;
  };

  // As the authenticator chain: each authorizer starts from the previous one's completion.
  static void step(std::shared_ptr<Run> run) {
    if (run->next == run->authorizers->size()) return finish(*run);
    const Authorizer& current = *(*run->authorizers)[run->next++];
    current.authorize(run->attributes, [run](AuthzResult result) mutable {
      // The first Allow or Deny ends the chain with that authorizer's own reason and error.
      if (result.decision != Decision::kNoOpinion) return run->done(std::move(result));
      if (!result.reason.empty()) run->reasons.push_back(std::move(result.reason));
      if (!result.error.empty()) run->errors.push_back(std::move(result.error));
      step(std::move(run));
    });
  }

  static void finish(Run& run) {
    AuthzResult result;
    result.decision = Decision::kDeny;
    for (std::size_t i = 0; i < run.reasons.size(); ++i) {
      result.reason += (i > 0 ? "\n" : "") + run.reasons[i];
    }
    if (!run.errors.empty()) result.error = detail::aggregate_errors(run.errors);
    run.done(std::move(result));
  }

  std::shared_ptr<const std::vector<std::shared_ptr<const Authorizer>>> authorizers_;
};

// --- the 403 text --------------------------------------------------------------------------------

// Decodes one UTF-8 sequence at s[i] as Go's utf8.DecodeRuneInString: its length, 0 when invalid
// (overlong forms, surrogates and values past U+10FFFF are invalid).
std::size_t decode_utf8(std::string_view s, std::size_t i, std::uint32_t& rune) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  std::size_t size = 0;
  std::uint32_t min = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    size = 2, rune = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    size = 3, rune = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    size = 4, rune = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + size > s.size()) return 0;
  for (std::size_t k = 1; k < size; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    rune = (rune << 6) | (byte(i + k) & 0x3f);
  }
  if (rune < min || rune > 0x10ffff || (rune >= 0xd800 && rune <= 0xdfff)) return 0;
  return size;
}

// Go's strconv.IsPrint for non-ASCII runes, for the code points that matter in names: controls,
// spaces other than ' ', format characters, private use and noncharacters are not printable.
// Unassigned code points (which Go also escapes) are printed as they are.
bool is_printable(std::uint32_t r) {
  struct Range {
    std::uint32_t first, last;
  };
  static constexpr Range kNotPrintable[] = {
      {0x80, 0xa0},       {0xad, 0xad},       {0x600, 0x605},     {0x61c, 0x61c},
      {0x6dd, 0x6dd},     {0x70f, 0x70f},     {0x890, 0x891},     {0x8e2, 0x8e2},
      {0x1680, 0x1680},   {0x180e, 0x180e},   {0x2000, 0x200f},   {0x2028, 0x202f},
      {0x205f, 0x2064},   {0x2066, 0x206f},   {0x3000, 0x3000},   {0xd800, 0xf8ff},
      {0xfdd0, 0xfdef},   {0xfeff, 0xfeff},   {0xfff9, 0xfffb},   {0x110bd, 0x110bd},
      {0x110cd, 0x110cd}, {0x13430, 0x1343f}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a},
      {0xe0001, 0xe0001}, {0xe0020, 0xe007f}, {0xf0000, 0x10ffff}};
  if ((r & 0xfffe) == 0xfffe) return false;  // U+xxFFFE, U+xxFFFF in every plane
  return std::none_of(std::begin(kNotPrintable), std::end(kNotPrintable),
                      [r](const Range& range) { return r >= range.first && r <= range.last; });
}

// Go's %q (strconv.Quote): kube quotes user names, resources and paths with it.
std::string go_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  auto escape = [&](char prefix, std::uint32_t value, int digits) {
    out.push_back('\\');
    out.push_back(prefix);
    for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4)
      out.push_back(kHex[(value >> shift) & 0xf]);
  };
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            escape('x', c, 2);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    std::uint32_t rune = 0;
    std::size_t size = decode_utf8(s, i, rune);
    if (size == 0) {
      escape('x', c, 2);  // a byte that is not UTF-8
      ++i;
    } else {
      if (is_printable(rune)) {
        out.append(s.substr(i, size));
      } else if (rune < 0x10000) {
        escape('u', rune, 4);
      } else {
        escape('U', rune, 8);
      }
      i += size;
    }
  }
  out.push_back('"');
  return out;
}

// kube escapes these in the sentence it builds from request attributes, so a client can not
// smuggle markup into a page that shows the message.
std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::shared_ptr<const Authorizer> make_always_allow() {
  return std::make_shared<AlwaysAllow>();
}

std::shared_ptr<const Authorizer> make_always_deny() {
  return std::make_shared<AlwaysDeny>();
}

api::Expected<std::shared_ptr<const Authorizer>> load_abac_policy(const std::string& path) {
  auto file_error = [&](const std::string& why) {
    return api::ApiError::bad_request("error reading policy file " + path + ": " + why);
  };
  if (std::filesystem::is_directory(path)) return file_error("is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return file_error(std::strerror(errno));

  std::vector<AbacPolicy> policies;
  bool any_unversioned = false;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // as Go's line scanner
    std::size_t first = line.find_first_not_of(" \t\r\n\v\f");
    if (first == std::string::npos || line[first] == '#') continue;
    AbacPolicy policy;
    bool unversioned = false;
    std::string error;
    if (!read_policy_line(line, policy, unversioned, error)) {
      return api::ApiError::bad_request("error reading policy file " + path + ", line " +
                                        std::to_string(number) + ": " + line + ": " + error);
    }
    any_unversioned = any_unversioned || unversioned;
    policies.push_back(std::move(policy));
  }
  if (in.bad()) return file_error(std::strerror(errno));
  if (any_unversioned) {
    obs::warn("Policy file " + path +
              " contained unversioned rules. See docs/admin/authorization.md#abac-mode for ABAC "
              "file format details.");
  }
  return std::shared_ptr<const Authorizer>(std::make_shared<AbacAuthorizer>(std::move(policies)));
}

std::shared_ptr<const Authorizer> make_authorizer_chain(
    std::vector<std::shared_ptr<const Authorizer>> authorizers) {
  return std::make_shared<AuthorizerChain>(std::move(authorizers));
}

api::ApiError forbidden(const Attributes& a, const std::string& reason) {
  std::string sentence;
  if (!a.resource_request) {
    sentence = "User " + go_quote(a.user.name) + " cannot " + a.verb + " path " + go_quote(a.path);
  } else {
    std::string resource = a.resource;
    if (!a.subresource.empty()) resource += "/" + a.subresource;
    sentence = "User " + go_quote(a.user.name) + " cannot " + a.verb + " resource " +
               go_quote(resource) + " in API group " + go_quote(a.api_group);
    sentence += a.namespace_name.empty() ? " at the cluster scope"
                                         : " in the namespace " + go_quote(a.namespace_name);
  }
  std::string message = html_escape(sentence);
  if (!reason.empty()) message += ": " + reason;

  // The prefix names the group-resource (never the subresource) and the object, as kube's
  // NewForbidden does; a non-resource request has neither.
  std::string prefix;
  if (a.api_group.empty() && a.resource.empty()) {
    prefix = "forbidden: ";
  } else {
    std::string qualified = a.api_group.empty() ? a.resource : a.resource + "." + a.api_group;
    prefix = a.name.empty() ? qualified + " is forbidden: "
                            : qualified + " " + go_quote(a.name) + " is forbidden: ";
  }
  api::ApiError error = api::ApiError::forbidden(prefix + message);
  error.details = nlohmann::json::object();  // members omitted when empty, the object never
  if (!a.name.empty()) error.details["name"] = a.name;
  if (!a.api_group.empty()) error.details["group"] = a.api_group;
  if (!a.resource.empty()) error.details["kind"] = a.resource;
  return error;
}

}  // namespace dpa::auth
