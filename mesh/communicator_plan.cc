// PlanMeshCommunicators: which communicators a mesh's groups get, and their NCCL settings.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/validate/error_fields.h"

namespace nmesh::mesh {

absl::StatusOr<std::vector<MeshCommunicatorPlan>> PlanMeshCommunicators(
    const MeshPlan& plan, const comm::NcclSettingsMap& settings, config::CommSharing sharing,
    std::string_view mesh_name) {
  const std::vector<GroupKind> kinds = DistinctGroupKinds(plan, sharing);
  for (const auto& [name, group] : settings) {
    const std::string field = absl::StrCat("nccl.", name);
    // Named again: clang before 16 cannot capture a structured binding in a lambda.
    const std::string& group_name = name;
    const bool known = std::any_of(kinds.begin(), kinds.end(), [&](const GroupKind& kind) {
      return std::find(kind.names.begin(), kind.names.end(), group_name) != kind.names.end();
    });
    if (!known) {
      // In the mesh's order: native axes, flattened groups, then the moe axes.
      std::vector<std::string> names = plan.device_mesh().axis_names();
      for (const FlattenedGroup& flat : plan.flattened()) names.push_back(flat.name);
      for (const GroupKind& kind : kinds) {
        for (const std::string& n : kind.names) {
          if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
        }
      }
      return validate::FieldError(
          field, absl::StrFormat("NCCL settings for '%s': mesh '%s' has no axis or group '%s'; "
                                 "its axes and groups are [%s]",
                                 name, mesh_name, name, absl::StrJoin(names, ", ")));
    }
    if (absl::Status s =
            comm::CheckNcclSettings(group, absl::StrCat("NCCL settings for '", name, "'"));
        !s.ok()) {
      return validate::WithFields(s, field, {field});
    }
  }
  // Whether `extra` can join a communicator with settings `held`: no field set differently, and
  // the merge passes the checks (min_ctas of one name above max_ctas of another does not).
  auto compatible = [](const comm::NcclSettings& held, const comm::NcclSettings& extra) {
    for (const auto& [field_name, value] : comm::NcclSettingsItems(extra)) {
      for (const auto& [other_name, other_value] : comm::NcclSettingsItems(held)) {
        if (other_name == field_name && other_value != value) return false;
      }
    }
    return comm::CheckNcclSettings(comm::MergeNcclSettings(held, extra), "").ok();
  };
  std::vector<MeshCommunicatorPlan> out;
  for (const GroupKind& kind : kinds) {
    const size_t first = out.size();
    for (const std::string& name : kind.names) {
      auto it = settings.find(name);
      const comm::NcclSettings mine = it == settings.end() ? comm::NcclSettings{} : it->second;
      size_t k = first;
      while (k < out.size() && !compatible(out[k].nccl, mine)) ++k;
      if (k == out.size()) {
        GroupKind part = kind;
        part.names.clear();
        out.push_back({std::move(part), {}});
      }
      out[k].kind.names.push_back(name);
      out[k].nccl = comm::MergeNcclSettings(out[k].nccl, mine);
    }
  }
  return out;
}

}  // namespace nmesh::mesh
