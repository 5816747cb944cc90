#include "nmesh/mesh/axis_name.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/enum_names.h"

namespace nmesh::mesh {

namespace {

constexpr NamedValue<MeshAxisName> kMeshAxisNames[] = {
    {MeshAxisName::kPp, axis::kPp},
    {MeshAxisName::kDp, axis::kDp},
    {MeshAxisName::kDpReplicate, axis::kDpReplicate},
    {MeshAxisName::kDpShard, axis::kDpShard},
    {MeshAxisName::kDpShardCp, axis::kDpShardCp},
    {MeshAxisName::kDpCp, axis::kDpCp},
    {MeshAxisName::kCp, axis::kCp},
    {MeshAxisName::kTp, axis::kTp},
    {MeshAxisName::kEp, axis::kEp},
    {MeshAxisName::kEpShard, axis::kEpShard}};
static_assert(std::size(kMeshAxisNames) == kAllMeshAxisNames.size());

}  // namespace

std::string_view MeshAxisNameString(MeshAxisName axis) {
  return NameOf<MeshAxisName>(kMeshAxisNames, axis);
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
  if (std::optional<MeshAxisName> axis = ValueNamed<MeshAxisName>(kMeshAxisNames, name)) {
    return *axis;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown mesh axis name '%s'; allowed names are %s", name, AllowedMeshAxisNamesString()));
}

}  // namespace nmesh::mesh
