// Label and field selectors as Kubernetes parses them (labels.Parse / fields.ParseSelector): the
// equality and set-based label grammar, and the two field labels every CRD-style server supports
// (metadata.name, metadata.namespace). Bad syntax is a 400 BadRequest value, never an exception.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace dpa::api {

class LabelSelector {
 public:
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  struct Requirement {
    std::string key;
    Op op = Op::kExists;
    std::vector<std::string> values;
  };

  // "" selects everything. 400 "unable to parse requirement: ..." on bad syntax.
  static Expected<LabelSelector> parse(std::string_view text);
  // `labels` is metadata.labels (an object, or null/absent).
  bool matches(const nlohmann::json& labels) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }

 private:
  std::vector<Requirement> requirements_;
};

class FieldSelector {
 public:
  struct Requirement {
    std::string field;  // metadata.name | metadata.namespace
    bool equals = true;
    std::string value;
  };

  // "" selects everything. Other fields: 400 "field label not supported: X".
  static Expected<FieldSelector> parse(std::string_view text);
  // `object` is a whole object (metadata.name/namespace are read from it).
  bool matches(const nlohmann::json& object) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }

 private:
  std::vector<Requirement> requirements_;
};

}  // namespace dpa::api
