// The rules on a mesh's sizes and names, on plain data: the checks of requested sizes, the table of
// which strategy supports which parallelism, dp inference, the mesh-size products, and the checks
// a MeshContext runs. The recipe layer, the mesh planner, MeshContext and the job layer all call
// these functions; none of them restates a rule.
//
//   RequestedSizes requested;
//   requested.tp = 2;
//   requested.pp = 2;
//   NMESH_RETURN_IF_ERROR(CheckRequestedSizes(requested));       // each given size is positive
//   if (std::optional<UnsupportedSize> bad =
//           FindUnsupportedSize(StrategyKind::kMegatronFsdp, requested)) {
//     // bad->rule: "megatron_fsdp does not support pipeline parallelism"; bad->field: "pp_size"
//   }
//   NMESH_ASSIGN_OR_RETURN(ResolvedSizes sizes,
//                          ResolveSizes(StrategyKind::kFsdp2, requested, /*mesh_size=*/8,
//                                       /*has_rank_list=*/false));   // dp = 8 / (2 * 1 * 2) = 2
//
//   // Axis names: which names a mesh has and which are allowed.
//   const std::vector<std::string> names = {"pp", "ring", "tp"};
//   const std::vector<std::string_view> allowed = {"cp", "dp", "pp", "tp"};
//   absl::Status names_ok = ValidateAxisNames("device_mesh", names, allowed);
//   // -> "device_mesh contains unknown axis names {'ring'}; allowed names are ['cp', ...]"
//
//   // Distributed setup: the sizes read from the meshes and which configs are present.
//   DistributedSetup setup;
//   setup.strategy = StrategyKind::kFsdp2;      // std::nullopt: no strategy, no strategy checks
//   setup.sizes.pp = 2;
//   setup.has_pipeline = true;
//   NMESH_RETURN_IF_ERROR(ValidateDistributedSetup(setup));
//
// Errors are InvalidArgument with NeMo AutoModel's messages where it has them; each carries the
// fields it names (nmesh/validate/error_fields.h). Every function here is pure and thread-safe.
#ifndef NMESH_VALIDATE_VALIDATE_H_
#define NMESH_VALIDATE_VALIDATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nmesh/validate/sizes.h"
#include "nmesh/validate/strategy.h"

namespace nmesh::validate {

// ---- Requested sizes ----------------------------------------------------------------------------

// OK when `value` is absent, or (with `may_infer`) kInferDp; otherwise it must be a positive
// integer of at most kMaxMeshSize: "tp_size must be a positive integer, got 0", "tp_size must be at
// most 2147483647, got ...", about `field`.
absl::Status CheckGivenSize(std::string_view field, const std::optional<int64_t>& value,
                            bool may_infer = false);

// CheckGivenSize on dp_size (which may be kInferDp), dp_replicate_size, tp_size, pp_size, cp_size,
// ep_size and world_size, in that order; the first failure.
absl::Status CheckRequestedSizes(const RequestedSizes& sizes);

// Whether a mesh of these sizes has a pipeline config (pp > 1) and a moe config (ep > 1). A recipe
// builds them only then, a mesh given by sizes alone gets their defaults then, and a MeshContext
// requires them to agree with its meshes (ValidateDistributedSetup).
bool HasPipeline(const RequestedSizes& sizes);
bool HasMoe(const RequestedSizes& sizes);

// ---- Which strategy supports which parallelism --------------------------------------------------

// A size the strategy does not support: `rule` is the sentence that says so, `field` the size's
// name and `value` its value.
struct UnsupportedSize {
  std::string rule;
  std::string_view field;
  int64_t value = 0;
};

// The checks before any mesh, in order; a missing size counts as 1:
//   1. dp_replicate > 1 with any strategy but FSDP2: "dp_replicate_size is only supported with
//      FSDP2Config";
//   2. MegatronFSDP with pp > 1, then ep > 1: "megatron_fsdp does not support pipeline
//      parallelism", "... expert parallelism";
//   3. DDP with tp, pp, cp or ep > 1 (in that order): "ddp does not support tensor parallelism",
//      likewise pipeline, context, expert.
// Returns the first size that fails, or std::nullopt.
std::optional<UnsupportedSize> FindUnsupportedSize(StrategyKind strategy,
                                                   const RequestedSizes& sizes);
std::optional<UnsupportedSize> FindUnsupportedSize(StrategyKind strategy,
                                                   const ResolvedSizes& sizes);

// Selective activation checkpointing is supported only by FSDP2 and DDP, judged on the strategy
// name as the recipe wrote it, lower-cased, before it is resolved (so "mfsdp" and an unknown name
// fail): otherwise InvalidArgument "selective activation checkpointing is supported only for FSDP2
// and DDP configs. (strategy '<name>')".
absl::Status CheckSelectiveCheckpointing(std::string_view strategy_name);

// ---- Mesh sizes ---------------------------------------------------------------------------------

// A size with the name the messages give it.
struct NamedSize {
  std::string_view field;
  int64_t value = 0;
};

// The sizes whose product is the size of the strategy's device mesh, in message order: FSDP2
// (dp, tp, cp, pp), MegatronFSDP (dp, tp, cp), DDP (dp).
std::vector<NamedSize> MeshSizeFactors(StrategyKind strategy, int64_t dp, int64_t tp, int64_t cp,
                                       int64_t pp);

// dp·tp·cp·pp of sizes that give dp (missing sizes count as 1; ep never counts): the size of the
// mesh for any strategy that supports the sizes. std::nullopt without dp or when the product
// overflows int64.
std::optional<int64_t> RequestedMeshSize(const RequestedSizes& sizes);

// dp for a mesh of `mesh_size` ranks: mesh_size / (tp·cp·pp) for FSDP2, mesh_size / (tp·cp) for
// MegatronFSDP, mesh_size for DDP. A division that is not exact: "world_size (W) must be divisible
// by (tp_size * cp_size * pp_size) (t * c * p = N)" (MegatronFSDP: "(tp_size * cp_size) (t * c =
// N)").
absl::StatusOr<int64_t> InferDp(StrategyKind strategy, int64_t mesh_size, int64_t tp, int64_t cp,
                                int64_t pp);

// The sizes of the strategy's mesh over `mesh_size` ranks (the length of the rank list when
// `has_rank_list`). The sizes must have passed CheckRequestedSizes. In order:
//   1. FindUnsupportedSize: "<rule> (pp_size=2)" ("dp_replicate_size is only supported with
//      FSDP2Config (dp_replicate_size=2, strategy ddp)");
//   2. dp inference when dp is not given (InferDp);
//   3. FSDP2: "dp_size must be a multiple of dp_replicate_size", "dp_replicate_size=R must be less
//      than dp_size=D since DDP usecase is not supported by FSDP2", "non_pp_size=N must be a
//      multiple of ep_size=E";
//   4. a product of the sizes that is not `mesh_size`: with a rank list "mesh ranks (n) must match
//      mesh size (m)"; otherwise a larger product is "Mesh should not be bigger than default world
//      size W, but found N ranks! ...", and a smaller one is accepted (the mesh then spans the
//      first N ranks).
// The result's fields are set as ResolvedSizes describes for a plan.
absl::StatusOr<ResolvedSizes> ResolveSizes(StrategyKind strategy, const RequestedSizes& sizes,
                                           int64_t mesh_size, bool has_rank_list);

// ---- What a MeshContext checks ------------------------------------------------------------------

// Fails with InvalidArgument when a name in `names` is not in `allowed`:
//   "<mesh> contains unknown axis names {'a', 'b'}; allowed names are ['cp', 'dp', ...]"
// with the unknown names (each once) and the allowed names sorted. `mesh` is the mesh's role,
// "device_mesh" or "moe_mesh".
absl::Status ValidateAxisNames(std::string_view mesh, absl::Span<const std::string> names,
                               absl::Span<const std::string_view> allowed);

struct DistributedSetup {
  // The strategy, or std::nullopt when the context has no strategy config (then the strategy
  // checks are skipped).
  std::optional<StrategyKind> strategy;
  // The sizes read from the meshes.
  ResolvedSizes sizes;
  // Whether a pipeline config / a moe config is present.
  bool has_pipeline = false;
  bool has_moe = false;
};

// The distributed-setup checks, in order; the first failure is returned as InvalidArgument naming
// the value:
//   1. "pipeline_config requires pp_size > 1, got pp_size=1" (a pipeline config, pp <= 1);
//   2. "moe_parallel_config requires ep_size > 1, got ep_size=1" (a moe config, ep <= 1);
//   3. with a strategy, FindUnsupportedSize: "<rule>, got pp_size=2".
absl::Status ValidateDistributedSetup(const DistributedSetup& setup);

}  // namespace nmesh::validate

#endif  // NMESH_VALIDATE_VALIDATE_H_
