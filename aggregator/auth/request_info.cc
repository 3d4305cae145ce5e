// kube's RequestInfo (reference §4): what a request line asks to do, in the terms authorizers
// judge. Segments are percent-decoded one by one, as our route table decodes them, so that the
// name authorized is the name the handler acts on (kube decodes the whole path first, so there an
// escaped "/" splits a segment; here it stays inside the name, as it does for routing).
#include "aggregator/auth/auth.h"

#include "aggregator/auth/header_text.h"
#include "aggregator/http/wire.h"

#include <optional>
#include <span>
#include <utility>

namespace dpa::auth {
namespace {

// kube's splitPath: leading and trailing slashes trimmed, then every "/" splits (so "a//b" has
// an empty segment).
std::vector<std::string> split_path(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  std::vector<std::string> parts;
  if (path.empty()) return parts;
  while (true) {
    std::size_t slash = path.find('/');
    parts.push_back(http::percent_decode(path.substr(0, slash)));
    if (slash == std::string_view::npos) return parts;
    path.remove_prefix(slash + 1);
  }
}

// The first value of `name` in a raw query, as Go's url.ParseQuery reads it: pairs holding ';'
// or a bad escape are skipped, '+' is a space.
std::optional<std::string> first_query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty() || pair.find(';') != std::string_view::npos) continue;
    std::size_t eq = pair.find('=');
    std::optional<std::string> key = detail::query_unescape(pair.substr(0, eq));
    if (!key || *key != name) continue;
    std::optional<std::string> value = detail::query_unescape(
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (value) return value;
  }
  return std::nullopt;
}

// `?watch`, `?watch=` and any value but 0/false (case-insensitive) ask for a watch.
bool wants_watch(std::string_view query) {
  std::optional<std::string> watch = first_query_value(query, "watch");
  if (!watch) return false;
  std::string value = detail::to_lower(*watch);
  return value != "0" && value != "false";
}

// A field selector's value with kube's escapes (\\ \, \=) removed; nullopt on a bad escape.
std::optional<std::string> unescape_selector_value(std::string_view value) {
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '\\') {
      out.push_back(value[i]);
      continue;
    }
    if (i + 1 == value.size()) return std::nullopt;
    char next = value[++i];
    if (next != '\\' && next != ',' && next != '=') return std::nullopt;
    out.push_back(next);
  }
  return out;
}

// What `fieldSelector=metadata.name=<n>` (or ==) names, as kube's RequiresExactMatch. A selector
// that does not parse names nothing (kube then ignores all of it).
std::optional<std::string> name_from_field_selector(std::string_view selector) {
  std::vector<std::string_view> terms;
  std::size_t start = 0;
  bool escaped = false;
  for (std::size_t i = 0; i < selector.size(); ++i) {
    if (escaped) {
      escaped = false;
    } else if (selector[i] == '\\') {
      escaped = true;
    } else if (selector[i] == ',') {
      terms.push_back(selector.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(selector.substr(start));

  std::optional<std::string> name;
  for (std::string_view term : terms) {
    if (term.empty()) continue;
    std::size_t at = std::string_view::npos;
    std::string_view op;
    for (std::size_t i = 0; i < term.size() && at == std::string_view::npos; ++i) {
      for (std::string_view candidate : {"!=", "==", "="}) {
        if (term.substr(i, candidate.size()) == candidate) {
          at = i;
          op = candidate;
          break;
        }
      }
    }
    if (at == std::string_view::npos) return std::nullopt;
    std::optional<std::string> value = unescape_selector_value(term.substr(at + op.size()));
    if (!value) return std::nullopt;
    if (op != "!=" && term.substr(0, at) == "metadata.name" && !name) name = std::move(value);
  }
  // Only a name that could be a path segment, as kube's IsValidPathSegmentName.
  if (name && (*name == "." || *name == ".." || name->find_first_of("/%") != std::string::npos)) {
    return std::nullopt;
  }
  return name;
}

std::string verb_for_method(std::string_view method) {
  if (method == "POST") return "create";
  if (method == "GET" || method == "HEAD") return "get";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return "delete";
  return "";
}

}  // namespace

Attributes request_attributes(std::string_view method, std::string_view path,
                              std::string_view query) {
  Attributes a;
  a.path = http::percent_decode(path);
  a.verb = detail::to_lower(method);

  const std::vector<std::string> parts = split_path(path);
  // Resource requests: /api/{v}/... (3+ segments) and /apis/{g}/{v}/... (4+); all else is a
  // non-resource path judged by verb = method.
  if (parts.size() < 3 || (parts[0] != "api" && parts[0] != "apis")) return a;
  std::size_t next = 1;
  if (parts[0] == "apis") {
    if (parts.size() < 4) return a;
    a.api_group = parts[next++];
  }
  a.resource_request = true;
  a.api_version = parts[next++];
  std::span<const std::string> rest(parts.begin() + static_cast<std::ptrdiff_t>(next), parts.end());

  // The deprecated /watch/ and /proxy/ prefixes set the verb. A bare one is an error for kube
  // (500); here it stays a resource request with that verb and no resource, which no handler
  // serves.
  if (rest.front() == "watch" || rest.front() == "proxy") {
    a.verb = rest.front();
    if (rest.size() < 2) return a;
    rest = rest.subspan(1);
  } else {
    a.verb = verb_for_method(method);
  }

  // namespaces/{ns}/... scopes what follows; namespaces/{ns}[/status|/finalize] is the Namespace
  // object itself, whose namespace is its own name.
  if (rest.front() == "namespaces" && rest.size() > 1) {
    a.namespace_name = rest[1];
    if (rest.size() > 2 && rest[2] != "status" && rest[2] != "finalize") rest = rest.subspan(2);
  }

  // resource/name/subresource/anything-else (ignored); proxy has no subresource.
  if (rest.size() >= 3 && a.verb != "proxy") a.subresource = rest[2];
  if (rest.size() >= 2) a.name = rest[1];
  a.resource = rest[0];

  if (a.name.empty() && a.verb == "get") {
    a.verb = wants_watch(query) ? "watch" : "list";
    if (auto selector = first_query_value(query, "fieldSelector")) {
      if (auto name = name_from_field_selector(*selector)) a.name = std::move(*name);
    }
  }
  if (a.name.empty() && a.verb == "delete") a.verb = "deletecollection";
  // DESIGN §6: subscribing to a data-plane stream is a watch, not a get.
  if (method == "GET" && a.verb == "get" && a.subresource == "stream") a.verb = "watch";
  return a;
}

}  // namespace dpa::auth
