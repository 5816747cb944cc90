#include "nmesh/mesh/planned_context.h"

#include "nmesh/base/status_macros.h"

namespace nmesh::mesh {
namespace {

const MeshAxisInfo* Find(const std::optional<std::vector<MeshAxisInfo>>& mesh, MeshAxisName name) {
  if (!mesh.has_value()) return nullptr;
  for (const MeshAxisInfo& axis : *mesh) {
    if (axis.name == name) return &axis;
  }
  return nullptr;
}

// The reference reads sizes from native axes and flattened groups alike.
std::optional<int64_t> SizeOf(const std::optional<std::vector<MeshAxisInfo>>& mesh,
                              MeshAxisName name) {
  const MeshAxisInfo* axis = Find(mesh, name);
  if (axis == nullptr) return std::nullopt;
  return axis->size;
}

// Axis-name kwargs name only native axes.
std::optional<MeshAxisName> NativeAxis(const std::optional<std::vector<MeshAxisInfo>>& mesh,
                                       MeshAxisName name) {
  const MeshAxisInfo* axis = Find(mesh, name);
  if (axis == nullptr || !axis->native) return std::nullopt;
  return name;
}

std::vector<MeshAxisInfo> AxesOf(const Layout& layout) {
  std::vector<MeshAxisInfo> axes;
  for (int i = 0; i < layout.ndim(); ++i) {
    // Plans only ever name their axes with MeshAxisName strings.
    absl::StatusOr<MeshAxisName> name = ParseMeshAxisName(layout.axis_names()[i]);
    NMESH_CHECK(name.ok()) << name.status();
    axes.push_back({*name, layout.shape()[i], /*native=*/true});
  }
  return axes;
}

}  // namespace

MeshView MeshViewOf(const MeshPlan& plan) {
  MeshView view;
  view.device_mesh = AxesOf(plan.device_mesh());
  for (const FlattenedGroup& group : plan.flattened()) {
    absl::StatusOr<MeshAxisName> name = ParseMeshAxisName(group.name);
    NMESH_CHECK(name.ok()) << name.status();
    view.device_mesh->push_back(
        {*name, plan.device_mesh().GroupSize(group.axes), /*native=*/false});
  }
  if (plan.moe_mesh().has_value()) {
    view.moe_mesh = {{MeshAxisName::kEpShard, plan.moe_mesh()->ep_shard, /*native=*/true},
                     {MeshAxisName::kEp, plan.moe_mesh()->ep, /*native=*/true}};
  }
  return view;
}

validate::ResolvedSizes ContextSizesOf(const MeshView& view) {
  validate::ResolvedSizes sizes;
  sizes.pp = SizeOf(view.device_mesh, MeshAxisName::kPp);
  sizes.dp = SizeOf(view.device_mesh, MeshAxisName::kDp);
  sizes.dp_replicate = SizeOf(view.device_mesh, MeshAxisName::kDpReplicate);
  sizes.dp_shard = SizeOf(view.device_mesh, MeshAxisName::kDpShard);
  sizes.cp = SizeOf(view.device_mesh, MeshAxisName::kCp);
  sizes.tp = SizeOf(view.device_mesh, MeshAxisName::kTp);
  sizes.ep = SizeOf(view.moe_mesh, MeshAxisName::kEp);
  sizes.ep_shard = SizeOf(view.moe_mesh, MeshAxisName::kEpShard);
  sizes.dp_shard_cp = SizeOf(view.device_mesh, MeshAxisName::kDpShardCp);
  sizes.dp_cp = SizeOf(view.device_mesh, MeshAxisName::kDpCp);
  return sizes;
}

std::vector<MeshAxisName> DpAxisNamesOf(const MeshView& view) {
  if (NativeAxis(view.device_mesh, MeshAxisName::kDpReplicate).has_value() &&
      Find(view.device_mesh, MeshAxisName::kDpShardCp) != nullptr) {
    return {MeshAxisName::kDpReplicate, MeshAxisName::kDpShardCp};
  }
  return {MeshAxisName::kDpShardCp};
}

std::vector<MeshAxisName> DpGroupNamesOf(const MeshView& view) {
  std::vector<MeshAxisName> names = DpAxisNamesOf(view);
  if (Find(view.device_mesh, MeshAxisName::kDpShardCp) != nullptr) return names;
  // MegatronFSDP (dp, cp, tp) with dp_cp when cp > 1, DDP (dp): the group gradients are reduced
  // over is dp x cp where the mesh has it, else dp.
  if (Find(view.device_mesh, MeshAxisName::kDpCp) != nullptr) return {MeshAxisName::kDpCp};
  if (Find(view.device_mesh, MeshAxisName::kDp) != nullptr) return {MeshAxisName::kDp};
  return {};
}

ParallelizeAxisKwargs ParallelizeAxisKwargsOf(const MeshView& view) {
  ParallelizeAxisKwargs kwargs;
  kwargs.dp_axis_names = DpAxisNamesOf(view);
  kwargs.cp_axis_name = NativeAxis(view.device_mesh, MeshAxisName::kCp);
  kwargs.tp_axis_name = NativeAxis(view.device_mesh, MeshAxisName::kTp);
  kwargs.ep_axis_name = NativeAxis(view.moe_mesh, MeshAxisName::kEp);
  if (NativeAxis(view.moe_mesh, MeshAxisName::kEpShard).has_value()) {
    kwargs.ep_shard_axis_names = std::vector<MeshAxisName>{MeshAxisName::kEpShard};
  }
  return kwargs;
}

PipelineAxisKwargs PipelineAxisKwargsOf(const MeshView& view) {
  PipelineAxisKwargs kwargs;
  kwargs.parallelize = ParallelizeAxisKwargsOf(view);
  return kwargs;
}

PlannedContext PlanContext(const MeshPlan& plan) {
  const MeshView view = MeshViewOf(plan);
  PlannedContext context;
  context.sizes = ContextSizesOf(view);
  context.parallelize_axis_kwargs = ParallelizeAxisKwargsOf(view);
  context.pipeline_axis_kwargs.parallelize = context.parallelize_axis_kwargs;
  return context;
}

}  // namespace nmesh::mesh
