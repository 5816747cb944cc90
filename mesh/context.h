// MeshContext (NeMo AutoModel's MeshContext): the meshes of one model and the configs the training
// engine reads next to them, with sizes read from the live communicators.
//
//   NMESH_ASSIGN_OR_RETURN(DeviceMesh mesh, DeviceMesh::Create(plan, *world));
//   NMESH_ASSIGN_OR_RETURN(
//       MeshContext context,
//       MeshContext::FromMeshes(mesh, mesh.moe_mesh(),
//                               config::DefaultStrategyConfig(config::StrategyKind::kFsdp2)));
//   context.tp_size();                       // tp communicator's size()
//   context.parallelize_axis_kwargs();       // dp_axis_names (dp_replicate, dp_shard_cp), ...
//   context.pipeline_config() = config::PipelineConfig{};   // a change; then re-check:
//   NMESH_RETURN_IF_ERROR(context.ValidateDistributedSetup());
//
// Sizes are never stored: each accessor reads the communicators' size() now, and a missing mesh
// or axis gives the default (pp, tp, cp, ep, dp_shard: 1; dp, dp_replicate: none). The axis
// kwargs follow the same rules as a plan's (mesh/planned_context.h), so `nmesh plan` and a live
// context can never disagree.
//
// Thread safety: const methods may be called concurrently; the mutable config accessors need
// external synchronisation.
#ifndef NMESH_MESH_CONTEXT_H_
#define NMESH_MESH_CONTEXT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nmesh/config/parallelizer_config.h"
#include "nmesh/config/strategy_config.h"
#include "nmesh/mesh/axis_name.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/planned_context.h"

namespace nmesh::mesh {

class MeshContext {
 public:
  // A context over existing meshes (either may be absent). Validates the axis names
  // (ValidateAxisNames) and, when a strategy config is given, the distributed setup
  // (ValidateDistributedSetup); returns their InvalidArgument. A mesh this rank is not a member of
  // has no communicators to read sizes from: FailedPrecondition naming the rank and the mesh.
  // Not collective.
  static absl::StatusOr<MeshContext> FromMeshes(
      std::optional<DeviceMesh> device_mesh, std::optional<DeviceMesh> moe_mesh,
      std::optional<config::StrategyConfig> strategy_config = std::nullopt,
      std::optional<config::PipelineConfig> pipeline_config = std::nullopt,
      std::optional<config::MoEParallelizerConfig> moe_config = std::nullopt,
      config::ActivationCheckpointing activation_checkpointing =
          config::ActivationCheckpointing::kFalse,
      int64_t cp_ring_degree = 1, std::optional<int64_t> cp_ulysses_degree = std::nullopt);

  const std::optional<DeviceMesh>& device_mesh() const { return device_mesh_; }
  const std::optional<DeviceMesh>& moe_mesh() const { return moe_mesh_; }

  // The configs, mutable: after a change, re-run ValidateDistributedSetup().
  const std::optional<config::StrategyConfig>& strategy_config() const { return strategy_config_; }
  std::optional<config::StrategyConfig>& strategy_config() { return strategy_config_; }
  const std::optional<config::PipelineConfig>& pipeline_config() const { return pipeline_config_; }
  std::optional<config::PipelineConfig>& pipeline_config() { return pipeline_config_; }
  const std::optional<config::MoEParallelizerConfig>& moe_config() const { return moe_config_; }
  std::optional<config::MoEParallelizerConfig>& moe_config() { return moe_config_; }
  config::ActivationCheckpointing activation_checkpointing() const {
    return activation_checkpointing_;
  }
  config::ActivationCheckpointing& activation_checkpointing() { return activation_checkpointing_; }

  // How context parallelism splits the cp axis (ring/Ulysses): ring degree 1 and Ulysses
  // degree none (pure Ulysses over the whole cp axis) by default. CreateRingUlyssesMesh makes the
  // (ring, ulysses) mesh; the context only records the degrees, and cp_size() still reads `cp`.
  int64_t cp_ring_degree() const { return cp_ring_degree_; }
  int64_t& cp_ring_degree() { return cp_ring_degree_; }
  std::optional<int64_t> cp_ulysses_degree() const { return cp_ulysses_degree_; }
  std::optional<int64_t>& cp_ulysses_degree() { return cp_ulysses_degree_; }

  // The sizes of the meshes' axes and groups, read from the communicators now (ContextSizesOf).
  validate::ResolvedSizes sizes() const;
  int64_t pp_size() const { return sizes().pp_size(); }
  bool pp_enabled() const { return sizes().pp_enabled(); }
  int64_t tp_size() const { return sizes().tp_size(); }
  int64_t cp_size() const { return sizes().cp_size(); }
  int64_t ep_size() const { return sizes().ep_size(); }
  std::optional<int64_t> dp_size() const { return sizes().dp_size(); }
  std::optional<int64_t> dp_replicate_size() const { return sizes().dp_replicate_size(); }
  int64_t dp_shard_size() const { return sizes().dp_shard_size(); }

  // This rank's coordinate along `axis`: its index along a native axis of the device mesh (or, for
  // an axis only the moe mesh has, ep and ep_shard, of the moe mesh); for a flattened group (dp,
  // dp_shard_cp, dp_cp), its index in its group, the row-major index of its coordinates along the
  // group's axes (its rank in the group's communicator). std::nullopt when neither mesh has the
  // axis or group: e.g. Coordinate(kEp) without a moe mesh, Coordinate(kPp) on a megatron_fsdp
  // mesh. A size-1 axis gives 0.
  std::optional<int64_t> Coordinate(MeshAxisName axis) const;
  // Whether this rank holds the first (pp coordinate 0) or the last (pp coordinate pp_size() - 1)
  // pipeline stage. Both are true without pipeline parallelism (pp_size() 1, or no pp axis).
  bool IsFirstPipelineStage() const;
  bool IsLastPipelineStage() const;

  // (dp_replicate, dp_shard_cp) when the device mesh has a native dp_replicate axis and a
  // dp_shard_cp group, otherwise (dp_shard_cp): the reference's parallelizer kwarg (contract §7),
  // which on MegatronFSDP and DDP names a group those meshes lack. For communicators use
  // dp_group_names().
  std::vector<MeshAxisName> dp_axis_names() const;
  // The data-parallel groups, each one device_mesh().Comm resolves (DpGroupNamesOf): FSDP2
  // (dp_replicate, dp_shard_cp); MegatronFSDP (dp_cp) when cp > 1, else (dp); DDP (dp).
  std::vector<MeshAxisName> dp_group_names() const;
  ParallelizeAxisKwargs parallelize_axis_kwargs() const;
  PipelineAxisKwargs pipeline_axis_kwargs() const;

  // What the context's meshes hold: every native axis and flattened group with a valid axis name,
  // and its communicator's size.
  MeshView View() const;

  // InvalidArgument "device_mesh contains unknown axis names {'ring'}; allowed names are
  // ['cp', ...]" (or "moe_mesh ...") when a mesh's native axis is not one of kAllMeshAxisNames.
  absl::Status ValidateAxisNames() const;
  // validate::ValidateDistributedSetup on sizes(), the strategy and the configs present.
  absl::Status ValidateDistributedSetup() const;

 private:
  MeshContext() = default;

  std::optional<config::StrategyConfig> strategy_config_;
  std::optional<config::PipelineConfig> pipeline_config_;
  std::optional<config::MoEParallelizerConfig> moe_config_;
  config::ActivationCheckpointing activation_checkpointing_ =
      config::ActivationCheckpointing::kFalse;
  std::optional<DeviceMesh> device_mesh_;
  std::optional<DeviceMesh> moe_mesh_;
  int64_t cp_ring_degree_ = 1;
  std::optional<int64_t> cp_ulysses_degree_;
};

// create_ring_ulysses_mesh: `device_mesh` with its `cp` axis unflattened into (ring,
// ulysses), shape (ring_degree, ulysses_degree) in place of cp; Submesh({"ring", "ulysses"}) of
// the result is the 2-D mesh. A wrong product gives InvalidArgument "ring_degree (R) *
// ulysses_degree (U) must equal the cp mesh size (N)."; a mesh without cp fails too. Collective
// over the mesh's members (it creates communicators).
absl::StatusOr<DeviceMesh> CreateRingUlyssesMesh(const DeviceMesh& device_mesh, int64_t ring_degree,
                                                 int64_t ulysses_degree);

}  // namespace nmesh::mesh

#endif  // NMESH_MESH_CONTEXT_H_
