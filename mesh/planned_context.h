// The sizes and axis-name kwargs a MeshContext reports, as functions of which axes
// and groups its meshes have and how large they are.
//
// The rules take a MeshView, so the planner (sizes from a MeshPlan) and the runtime MeshContext
// (sizes read from live communicators) share them:
//
//   MeshView view = MeshViewOf(plan);            // or built from a DeviceMesh at runtime
//   validate::ResolvedSizes sizes = ContextSizesOf(view);
//   std::optional<int64_t> replicas = sizes.dp_replicate_size();   // std::nullopt: none
//   ParallelizeAxisKwargs kwargs = ParallelizeAxisKwargsOf(view);
//   // kwargs.dp_axis_names == {kDpReplicate, kDpShardCp} for every FSDP2 mesh
//
// Everything here is pure and thread-safe.
#ifndef NMESH_MESH_PLANNED_CONTEXT_H_
#define NMESH_MESH_PLANNED_CONTEXT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "nmesh/mesh/axis_name.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/validate/sizes.h"

namespace nmesh::mesh {

// One axis or group a mesh has.
struct MeshAxisInfo {
  MeshAxisName name = MeshAxisName::kPp;
  int64_t size = 1;
  // A native axis of the mesh (as opposed to a flattened group of it).
  bool native = true;
};

// What a context sees of its meshes. std::nullopt: the mesh is missing.
struct MeshView {
  std::optional<std::vector<MeshAxisInfo>> device_mesh;
  std::optional<std::vector<MeshAxisInfo>> moe_mesh;
};

// What a MeshContext passes to the parallelizer: the axis names of each kind of parallelism.
// std::nullopt is the reference's None.
struct ParallelizeAxisKwargs {
  std::vector<MeshAxisName> dp_axis_names;
  std::optional<MeshAxisName> cp_axis_name;
  std::optional<MeshAxisName> tp_axis_name;
  std::optional<MeshAxisName> ep_axis_name;
  std::optional<std::vector<MeshAxisName>> ep_shard_axis_names;
};

// What a MeshContext passes to the pipeline: pp_axis_name (always pp) plus the parallelize kwargs.
struct PipelineAxisKwargs {
  MeshAxisName pp_axis_name = MeshAxisName::kPp;
  ParallelizeAxisKwargs parallelize;
};

// Everything a MeshContext built from a plan would report.
struct PlannedContext {
  validate::ResolvedSizes sizes;
  ParallelizeAxisKwargs parallelize_axis_kwargs;
  PipelineAxisKwargs pipeline_axis_kwargs;
};

// The view of a plan's meshes: the device mesh's native axes and flattened groups, and the moe
// mesh's (ep_shard, ep) when present.
MeshView MeshViewOf(const MeshPlan& plan);

// The sizes of the axes and groups `view` has (each field set when its mesh has that axis or group:
// ep and ep_shard from the moe mesh, the others from the device mesh, native or flattened). Its
// accessors give a context's size properties: pp_size() is 1 without a pp axis, dp_size() none
// without a dp axis or group, and so on.
validate::ResolvedSizes ContextSizesOf(const MeshView& view);

// (dp_replicate, dp_shard_cp) when the device mesh has a native dp_replicate axis and a
// dp_shard_cp group (every FSDP2 mesh, even with dp_replicate=1); otherwise (dp_shard_cp). This
// is the reference's parallelizer kwarg (contract §7): on MegatronFSDP and DDP meshes it names
// dp_shard_cp, which those meshes lack; DpGroupNamesOf gives names they have.
std::vector<MeshAxisName> DpAxisNamesOf(const MeshView& view);

// The data-parallel groups of the device mesh, each a name DeviceMesh::Comm resolves: FSDP2
// (dp_replicate, dp_shard_cp) as DpAxisNamesOf; MegatronFSDP (dp_cp) when cp > 1, else (dp);
// DDP (dp); empty without a device mesh.
std::vector<MeshAxisName> DpGroupNamesOf(const MeshView& view);

// dp_axis_names; cp/tp when the device mesh has them natively; ep and (ep_shard) when the moe mesh
// has them.
ParallelizeAxisKwargs ParallelizeAxisKwargsOf(const MeshView& view);

PipelineAxisKwargs PipelineAxisKwargsOf(const MeshView& view);

// All of the above for `plan`.
PlannedContext PlanContext(const MeshPlan& plan);

}  // namespace nmesh::mesh

#endif  // NMESH_MESH_PLANNED_CONTEXT_H_
