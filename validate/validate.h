// The checks a MeshContext runs, on plain data so that this library depends on
// config and base only: the mesh runtime calls them, never the other way round.
//
//   // Axis names: which names a mesh has and which are allowed.
//   NMESH_RETURN_IF_ERROR(ValidateAxisNames("device_mesh", {"pp", "ring", "tp"}, allowed));
//   // -> "device_mesh contains unknown dimension names {'ring'}; allowed names are ['cp', ...]"
//
//   // Distributed setup: the sizes read from the meshes and which configs are present.
//   DistributedSetup setup;
//   setup.strategy = &strategy_config;          // may be null: no strategy, no checks
//   setup.sizes.pp = 2;
//   setup.has_pipeline = true;
//   NMESH_RETURN_IF_ERROR(ValidateDistributedSetup(setup));
//
// Every function here is pure and thread-safe.
#ifndef NMESH_VALIDATE_VALIDATE_H_
#define NMESH_VALIDATE_VALIDATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "nmesh/config/strategy_config.h"

namespace nmesh::validate {

// Fails with InvalidArgument when a name in `names` is not in `allowed`:
//   "<mesh> contains unknown axis names {'a', 'b'}; allowed names are ['cp', 'dp', ...]"
// with the unknown names (each once) and the allowed names sorted. `mesh` is the mesh's role,
// "device_mesh" or "moe_mesh".
absl::Status ValidateAxisNames(std::string_view mesh, absl::Span<const std::string> names,
                               absl::Span<const std::string_view> allowed);

// The sizes the distributed-setup checks read (a MeshContext reads them from its communicators,
// with the §7 defaults).
struct SetupSizes {
  int64_t pp = 1;
  int64_t tp = 1;
  int64_t cp = 1;
  int64_t ep = 1;
  std::optional<int64_t> dp_replicate = std::nullopt;
};

struct DistributedSetup {
  // The strategy config, or null when the context has none (then checks 1 and 2 are skipped).
  const config::StrategyConfig* strategy = nullptr;
  SetupSizes sizes;
  // Whether a pipeline config / a moe config is present.
  bool has_pipeline = false;
  bool has_moe = false;
};

// The distributed-setup checks of §7 (0.7.0), in order; the first failure is returned as
// InvalidArgument, its message starting with NeMo AutoModel's words and naming the value:
//   1. "pipeline_config requires pp_size > 1, got pp_size=1" (a pipeline config, pp <= 1);
//   2. "moe_parallel_config requires ep_size > 1, got ep_size=1" (a moe config, ep <= 1);
//   3. the checks of §4 before any mesh: "dp_replicate_size is only supported with FSDP2Config"
//      (dp_replicate > 1, any strategy but FSDP2); MegatronFSDP: "megatron_fsdp does not support
//      pipeline parallelism, got pp_size=2", then "... expert parallelism"; DDP: "ddp does not
//      support tensor|pipeline|context|expert parallelism, got tp_size=2" (in that order).
// Checks 3 are skipped without a strategy config.
// (A MeshContext runs this at construction only when it has a strategy config.)
absl::Status ValidateDistributedSetup(const DistributedSetup& setup);

}  // namespace nmesh::validate

#endif  // NMESH_VALIDATE_VALIDATE_H_
