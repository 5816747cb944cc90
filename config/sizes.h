// The requested parallel sizes of a mesh, before inference and validation.
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

namespace nmesh::config {

// Every field is as the user gave it. std::nullopt means "not given" (YAML null/none/None too):
// tp, pp, cp, ep and dp_replicate then default to 1, and dp is inferred. dp == -1 also means infer.
// Values are not validated here: the mesh builders reject zero, negative and overflowing sizes
// with a message naming the field.
struct ParallelSizes {
  std::optional<int64_t> dp;
  std::optional<int64_t> dp_replicate;
  std::optional<int64_t> tp;
  std::optional<int64_t> pp;
  std::optional<int64_t> cp;
  std::optional<int64_t> ep;
  // The number of ranks the mesh spans. With an explicit rank list it is the list's length (and,
  // when given, must equal it).
  std::optional<int64_t> world_size;
};

// What a mesh builder needs: the strategy, the sizes, and optionally the ordered global ranks the
// mesh spans (a rank subset). Without `ranks` the mesh spans ranks 0..world_size-1.
struct MeshRequest {
  StrategyKind strategy = kDefaultStrategy;
  ParallelSizes sizes;
  std::optional<std::vector<int64_t>> ranks;
  // The size of the job's world that the mesh's ranks are drawn from (`nmesh plan --world` with
  // --ranks). Every mesh rank must be below it. Defaults to world_size without `ranks` and to
  // max(ranks) + 1 with them.
  std::optional<int64_t> job_world_size;
};

}  // namespace nmesh::config

#endif  // NMESH_CONFIG_SIZES_H_
