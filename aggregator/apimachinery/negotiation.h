// Accept-header negotiation for API responses (reference §2.7/§2.8): server-side Table
// (meta.k8s.io v1 or v1beta1), plain JSON, or YAML; anything else (protobuf-only, text/html) is a
// 406 NotAcceptable value. Also the Content-Type check for request bodies.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <string>
#include <string_view>

namespace dpa::api {

enum class MediaKind { kJson, kYaml, kTable };

struct Negotiated {
  MediaKind kind = MediaKind::kJson;
  std::string table_api_version;  // "meta.k8s.io/v1" or "meta.k8s.io/v1beta1" for kTable
  std::string content_type() const;  // application/json or application/yaml
};

// allow_yaml=false for watch streams (YAML does not frame a stream).
Expected<Negotiated> negotiate_accept(std::string_view accept, bool allow_table, bool allow_yaml);

// The media type of a Content-Type header, lower-cased and without parameters.
std::string media_type(std::string_view content_type);

}  // namespace dpa::api
