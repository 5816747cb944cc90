// Mesh axis names: pp, dp, dp_replicate, dp_shard, dp_shard_cp, dp_cp, cp, tp, ep, ep_shard.
//
//   NMESH_ASSIGN_OR_RETURN(MeshAxisName axis, ParseMeshAxisName("dp_shard_cp"));
//   MeshAxisNameString(MeshAxisName::kTp);   // "tp"
#ifndef NMESH_MESH_AXIS_NAME_H_
#define NMESH_MESH_AXIS_NAME_H_

#include <array>
#include <string_view>

#include "absl/status/statusor.h"

namespace nmesh::mesh {

enum class MeshAxisName {
  kPp,
  kDp,
  kDpReplicate,
  kDpShard,
  kDpShardCp,
  kDpCp,
  kCp,
  kTp,
  kEp,
  kEpShard,
};

inline constexpr std::array<MeshAxisName, 10> kAllMeshAxisNames = {
    MeshAxisName::kPp,      MeshAxisName::kDp,        MeshAxisName::kDpReplicate,
    MeshAxisName::kDpShard, MeshAxisName::kDpShardCp, MeshAxisName::kDpCp,
    MeshAxisName::kCp,      MeshAxisName::kTp,        MeshAxisName::kEp,
    MeshAxisName::kEpShard,
};

// The names as constants, for the accessors that take a name (DeviceMesh::Comm, Submesh):
// `mesh.Comm(axis::kTp)` cannot be misspelt.
namespace axis {
inline constexpr std::string_view kPp = "pp";
inline constexpr std::string_view kDp = "dp";
inline constexpr std::string_view kDpReplicate = "dp_replicate";
inline constexpr std::string_view kDpShard = "dp_shard";
inline constexpr std::string_view kDpShardCp = "dp_shard_cp";
inline constexpr std::string_view kDpCp = "dp_cp";
inline constexpr std::string_view kCp = "cp";
inline constexpr std::string_view kTp = "tp";
inline constexpr std::string_view kEp = "ep";
inline constexpr std::string_view kEpShard = "ep_shard";
}  // namespace axis

// "pp", "dp", "dp_replicate", "dp_shard", "dp_shard_cp", "dp_cp", "cp", "tp", "ep", "ep_shard".
std::string_view MeshAxisNameString(MeshAxisName axis);

// Parses the exact (case-sensitive) string. An unknown name is InvalidArgument listing the ten
// allowed names, sorted: "unknown mesh axis name 'x'; allowed names are ['cp', 'dp', ...]".
absl::StatusOr<MeshAxisName> ParseMeshAxisName(std::string_view name);

// "['cp', 'dp', 'dp_cp', 'dp_replicate', 'dp_shard', 'dp_shard_cp', 'ep', 'ep_shard', 'pp', 'tp']"
std::string_view AllowedMeshAxisNamesString();

}  // namespace nmesh::mesh

#endif  // NMESH_MESH_AXIS_NAME_H_
