// ObjectMeta helpers shared by every resource this server stores: identity (uid v4), timestamps
// (RFC 3339, second precision, UTC), generateName suffixes, the generation rule (bump on spec
// changes only) and the AGE column's humanised duration.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace dpa::api {

std::string new_uid();  // random RFC 4122 version 4 UUID
std::string format_rfc3339(std::chrono::system_clock::time_point t);
std::string now_rfc3339();
// Parses "YYYY-MM-DDTHH:MM:SSZ" (fractional seconds tolerated); false on anything else.
bool parse_rfc3339(const std::string& text, std::chrono::system_clock::time_point* out);
// Five characters from Kubernetes' consonant+digit alphabet (no vowels, no confusable letters).
std::string generate_name_suffix();
// True when anything outside metadata and status differs (what bumps metadata.generation).
bool spec_changed(const nlohmann::json& before, const nlohmann::json& after);
// Kubernetes' HumanDuration: "45s", "3m20s", "5h", "12d", "2y30d".
std::string human_duration(std::chrono::seconds d);

}  // namespace dpa::api
