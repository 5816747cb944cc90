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

}  // namespace nmesh::config

#endif  // NMESH_CONFIG_SIZES_H_
