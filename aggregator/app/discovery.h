// The merged /apis document (DESIGN §2.3): our own group, the groups of available
// DataPlaneServices and the delegate's groups, without duplicates, in legacy (APIGroupList) and
// aggregated (apidiscovery.k8s.io/v2 APIGroupDiscoveryList) form. Pure functions over JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpa::app {

struct GroupVersion {
  std::string group;
  std::string version;
};

// The aggregated discovery media type the client asked for ("v2" or "v2beta1"), if any. client-go
// only parses v2 when the response Content-Type carries the same g/v/as (reference §2.1).
std::optional<std::string> aggregated_discovery_version(std::string_view accept);
std::string aggregated_content_type(const std::string& version);

// own: our APIGroup JSON; delegate: the delegate's APIGroupList, or null.
nlohmann::json merge_group_list(const nlohmann::json& own, const std::vector<GroupVersion>& plugins,
                                const nlohmann::json& delegate);
// own: our APIGroupDiscovery item; delegate: the delegate's APIGroupDiscoveryList, or null.
nlohmann::json merge_discovery_list(const nlohmann::json& own,
                                    const std::vector<GroupVersion>& plugins,
                                    const nlohmann::json& delegate, const std::string& version);
// The APIResourceList served for /apis/<g>/<v> of a plugin group the delegate does not know.
nlohmann::json empty_resource_list(const GroupVersion& gv);

}  // namespace dpa::app
