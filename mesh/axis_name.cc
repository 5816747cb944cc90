#include "nmesh/mesh/axis_name.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nmesh::mesh {

std::string_view MeshAxisNameString(MeshAxisName axis) {
  switch (axis) {
    case MeshAxisName::kPp:
      return "pp";
    case MeshAxisName::kDp:
      return "dp";
    case MeshAxisName::kDpReplicate:
      return "dp_replicate";
    case MeshAxisName::kDpShard:
      return "dp_shard";
    case MeshAxisName::kDpShardCp:
      return "dp_shard_cp";
    case MeshAxisName::kDpCp:
      return "dp_cp";
    case MeshAxisName::kCp:
      return "cp";
    case MeshAxisName::kTp:
      return "tp";
    case MeshAxisName::kEp:
      return "ep";
    case MeshAxisName::kEpShard:
      return "ep_shard";
  }
  return "unknown";
}

std::string_view AllowedMeshAxisNamesString() {
  static const std::string* text = [] {
    std::vector<std::string> names;
    for (MeshAxisName axis : kAllMeshAxisNames) {
      names.push_back(absl::StrFormat("'%s'", MeshAxisNameString(axis)));
    }
    std::sort(names.begin(), names.end());
    return new std::string(absl::StrCat("[", absl::StrJoin(names, ", "), "]"));
  }();
  return *text;
}

absl::StatusOr<MeshAxisName> ParseMeshAxisName(std::string_view name) {
  for (MeshAxisName axis : kAllMeshAxisNames) {
    if (MeshAxisNameString(axis) == name) return axis;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown mesh axis name '%s'; allowed names are %s", name, AllowedMeshAxisNamesString()));
}

}  // namespace nmesh::mesh
