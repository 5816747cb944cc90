// The sizes and axis-name kwargs a MeshContext reports, as functions of which axes
// and groups its meshes have and how large they are.
//
// The rules take a MeshView, so the planner (sizes from a MeshPlan) and the runtime MeshContext
// (sizes read from live communicators) share them:
//
//   MeshView view = MeshViewOf(plan);                 // or built from a DeviceMesh at runtime
//   ContextSizes sizes = ContextSizesOf(view);        // sizes.dp_replicate_size: std::nullopt =
//   none ParallelizeAxisKwargs kwargs = ParallelizeAxisKwargsOf(view);
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

// The size properties of §7. A missing mesh or axis gives the default in the comment.
struct ContextSizes {
  int64_t pp_size = 1;                       // device_mesh pp
  bool pp_enabled = false;                   // pp_size > 1
  int64_t tp_size = 1;                       // device_mesh tp
  int64_t cp_size = 1;                       // device_mesh cp
  int64_t ep_size = 1;                       // moe_mesh ep
  std::optional<int64_t> dp_size;            // device_mesh dp, native or flattened; none
  std::optional<int64_t> dp_replicate_size;  // device_mesh dp_replicate; none
  int64_t dp_shard_size = 1;                 // device_mesh dp_shard
};

// `parallelize_axis_kwargs` of §7. std::nullopt is the reference's None.
struct ParallelizeAxisKwargs {
  std::vector<MeshAxisName> dp_axis_names;
  std::optional<MeshAxisName> cp_axis_name;
  std::optional<MeshAxisName> tp_axis_name;
  std::optional<MeshAxisName> ep_axis_name;
  std::optional<std::vector<MeshAxisName>> ep_shard_axis_names;
};

// `pipeline_axis_kwargs` of §7: pp_axis_name (always pp) plus the parallelize kwargs.
struct PipelineAxisKwargs {
  MeshAxisName pp_axis_name = MeshAxisName::kPp;
  ParallelizeAxisKwargs parallelize;
};

// Everything a MeshContext built from a plan would report.
struct PlannedContext {
  ContextSizes sizes;
  ParallelizeAxisKwargs parallelize_axis_kwargs;
  PipelineAxisKwargs pipeline_axis_kwargs;
};

// The view of a plan's meshes: the device mesh's native axes and flattened groups, and the moe
// mesh's (ep_shard, ep) when present.
MeshView MeshViewOf(const MeshPlan& plan);

// The §7 size table.
ContextSizes ContextSizesOf(const MeshView& view);

// (dp_replicate, dp_shard_cp) when the device mesh has a native dp_replicate axis and a
// dp_shard_cp group (every FSDP2 mesh, even with dp_replicate=1); otherwise (dp_shard_cp).
std::vector<MeshAxisName> DpAxisNamesOf(const MeshView& view);

// dp_axis_names; cp/tp when the device mesh has them natively; ep and (ep_shard) when the moe mesh
// has them.
ParallelizeAxisKwargs ParallelizeAxisKwargsOf(const MeshView& view);

PipelineAxisKwargs PipelineAxisKwargsOf(const MeshView& view);

// All of the above for `plan`.
PlannedContext PlanContext(const MeshPlan& plan);

}  // namespace nmesh::mesh

#endif  // NMESH_MESH_PLANNED_CONTEXT_H_
