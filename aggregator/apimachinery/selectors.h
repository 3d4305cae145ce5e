// Label and field selectors as Kubernetes parses them (labels.Parse / fields.ParseSelector): the
// equality and set-based label grammar, and the two field labels every CRD-style server supports
// (metadata.name, metadata.namespace). Bad syntax is a 400 BadRequest value, never an exception.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dpa::api {

// What selectors read of an object, as kube's storage GetAttrs gives them: its labels and its
// selectable fields. Small and flat: the watch cache keeps one beside every object it holds.
struct Attributes {
  std::vector<std::pair<std::string, std::string>> labels;  // metadata.labels, sorted by key
  std::string name;                                         // metadata.name
  std::string namespace_;                                   // metadata.namespace ("" if none)

  // Read from a whole object; a label whose value is not a string is left out.
  static Attributes of(const nlohmann::json& object);
  // The value of label `key`, or null.
  const std::string* label(std::string_view key) const;
  bool operator==(const Attributes&) const = default;
};

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
  bool matches(const Attributes& object) const;
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
  bool matches(const Attributes& object) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }

 private:
  std::vector<Requirement> requirements_;
};

}  // namespace dpa::api
