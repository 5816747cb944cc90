// What a mesh builder needs: the strategy, the requested sizes and optionally the mesh's ranks.
//
//   MeshRequest request;
//   request.strategy = StrategyKind::kFsdp2;
//   request.sizes.world_size = 16;
//   request.sizes.tp = 2;
//   request.sizes.cp = 2;          // dp is inferred: 16 / (2 * 2 * 1) = 4
#ifndef NMESH_CONFIG_SIZES_H_
#define NMESH_CONFIG_SIZES_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "nmesh/base/enum_names.h"
#include "nmesh/config/strategy.h"
#include "nmesh/validate/sizes.h"

namespace nmesh::config {

// What a mesh builder needs: the strategy, the sizes, and optionally the ordered global ranks the
// mesh spans (a rank subset). Without `ranks` the mesh spans ranks 0..world_size-1.
struct MeshRequest {
  StrategyKind strategy = kDefaultStrategy;
  // As the user gave them (checked and resolved by validate::ResolveSizes).
  validate::RequestedSizes sizes;
  std::optional<std::vector<int64_t>> ranks;
  // The size of the job's world that the mesh's ranks are drawn from (`nmesh plan --world` with
  // --ranks). Every mesh rank must be below it. Defaults to world_size without `ranks` and to
  // max(ranks) + 1 with them.
  std::optional<int64_t> job_world_size;
};

// How a mesh's names (native axes, flattened groups, moe axes) map to communicators.
enum class CommSharing : uint8_t {
  // One communicator per distinct partition of the ranks: names that split the ranks alike share
  // it (at np 8, fsdp2 tp=2 ep=2: tp and ep are one communicator, dp_shard, dp, dp_shard_cp and
  // dp_cp another). The fewest communicators; the default.
  kPartition,
  // One communicator per name, so that an engine may drive two names from two threads or streams
  // at once (NCCL forbids concurrent use of one communicator). Whole-world names get their own
  // communicator too, never the caller's world.
  kName,
};

// The recipe's `comm_sharing:` values and the CLI's `--comm-sharing` (base/enum_names.h).
inline constexpr NamedValue<CommSharing> kCommSharingNames[] = {
    {CommSharing::kPartition, "partition"}, {CommSharing::kName, "name"}};

}  // namespace nmesh::config

#endif  // NMESH_CONFIG_SIZES_H_
