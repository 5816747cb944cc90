#include "nmesh/mesh/context.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/validate/validate.h"

namespace nmesh::mesh {
namespace {

// The communicator sizes of a mesh's axes and flattened groups that carry contract names (others,
// e.g. sub-axes made by Unflatten, have no size meaning; ValidateAxisNames reports native ones).
std::vector<MeshAxisInfo> AxesOf(const DeviceMesh& mesh) {
  std::vector<MeshAxisInfo> axes;
  auto add = [&](const std::string& name, bool native) {
    absl::StatusOr<MeshAxisName> axis = ParseMeshAxisName(name);
    if (!axis.ok()) return;
    absl::StatusOr<comm::Communicator*> comm = mesh.Comm(name);
    // Members only reach here (FromMeshes checks), and every group of a member has a communicator.
    NMESH_CHECK(comm.ok()) << comm.status();
    axes.push_back({*axis, (*comm)->size(), native});
  };
  for (const std::string& name : mesh.axis_names()) add(name, /*native=*/true);
  for (const std::string& name : mesh.FlattenedNames()) add(name, /*native=*/false);
  return axes;
}

std::vector<std::string_view> AllowedNames() {
  std::vector<std::string_view> names;
  for (MeshAxisName axis : kAllMeshAxisNames) names.push_back(MeshAxisNameString(axis));
  return names;
}

}  // namespace

absl::StatusOr<MeshContext> MeshContext::FromMeshes(
    std::optional<DeviceMesh> device_mesh, std::optional<DeviceMesh> moe_mesh,
    std::optional<config::StrategyConfig> strategy_config,
    std::optional<config::PipelineConfig> pipeline_config,
    std::optional<config::MoEParallelizerConfig> moe_config,
    config::ActivationCheckpointing activation_checkpointing, int64_t cp_ring_degree,
    std::optional<int64_t> cp_ulysses_degree) {
  for (const std::optional<DeviceMesh>* mesh : {&device_mesh, &moe_mesh}) {
    if (mesh->has_value() && !(*mesh)->is_member()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "a MeshContext reads its sizes from the mesh's communicators, but rank %d is not a "
          "member of mesh '%s' %s",
          (*mesh)->global_rank(), (*mesh)->name(), (*mesh)->layout().DebugString()));
    }
  }
  MeshContext context;
  context.device_mesh_ = std::move(device_mesh);
  context.moe_mesh_ = std::move(moe_mesh);
  context.strategy_config_ = std::move(strategy_config);
  context.pipeline_config_ = std::move(pipeline_config);
  context.moe_config_ = std::move(moe_config);
  context.activation_checkpointing_ = activation_checkpointing;
  context.cp_ring_degree_ = cp_ring_degree;
  context.cp_ulysses_degree_ = cp_ulysses_degree;
  NMESH_RETURN_IF_ERROR(context.ValidateAxisNames());
  if (context.strategy_config_.has_value()) {
    NMESH_RETURN_IF_ERROR(context.ValidateDistributedSetup());
  }
  return context;
}

MeshView MeshContext::View() const {
  MeshView view;
  if (device_mesh_.has_value()) view.device_mesh = AxesOf(*device_mesh_);
  if (moe_mesh_.has_value()) view.moe_mesh = AxesOf(*moe_mesh_);
  return view;
}

validate::ResolvedSizes MeshContext::sizes() const { return ContextSizesOf(View()); }

std::optional<int64_t> MeshContext::Coordinate(MeshAxisName axis) const {
  const std::string_view name = MeshAxisNameString(axis);
  for (const std::optional<DeviceMesh>* mesh : {&device_mesh_, &moe_mesh_}) {
    if (!mesh->has_value()) continue;
    const DeviceMesh& m = **mesh;
    const std::vector<std::string>& names = m.axis_names();
    if (auto it = std::find(names.begin(), names.end(), name); it != names.end()) {
      // Members only reach here (FromMeshes checks).
      absl::StatusOr<std::vector<int64_t>> coordinate = m.Coordinate();
      NMESH_CHECK(coordinate.ok()) << coordinate.status();
      return (*coordinate)[static_cast<size_t>(it - names.begin())];
    }
    if (m.HasGroup(name)) {
      // A flattened group's communicator is split with the local rank as its key.
      absl::StatusOr<comm::Communicator*> comm = m.Comm(name);
      NMESH_CHECK(comm.ok()) << comm.status();
      return (*comm)->rank();
    }
  }
  return std::nullopt;
}

bool MeshContext::IsFirstPipelineStage() const {
  return Coordinate(MeshAxisName::kPp).value_or(0) == 0;
}

bool MeshContext::IsLastPipelineStage() const {
  const std::optional<int64_t> stage = Coordinate(MeshAxisName::kPp);
  return !stage.has_value() || *stage == pp_size() - 1;
}

std::vector<MeshAxisName> MeshContext::dp_axis_names() const { return DpAxisNamesOf(View()); }

std::vector<MeshAxisName> MeshContext::dp_group_names() const { return DpGroupNamesOf(View()); }

ParallelizeAxisKwargs MeshContext::parallelize_axis_kwargs() const {
  return ParallelizeAxisKwargsOf(View());
}

PipelineAxisKwargs MeshContext::pipeline_axis_kwargs() const {
  return PipelineAxisKwargsOf(View());
}

absl::Status MeshContext::ValidateAxisNames() const {
  static const std::vector<std::string_view>* const allowed =
      new std::vector<std::string_view>(AllowedNames());
  if (device_mesh_.has_value()) {
    NMESH_RETURN_IF_ERROR(
        validate::ValidateAxisNames("device_mesh", device_mesh_->axis_names(), *allowed));
  }
  if (moe_mesh_.has_value()) {
    NMESH_RETURN_IF_ERROR(
        validate::ValidateAxisNames("moe_mesh", moe_mesh_->axis_names(), *allowed));
  }
  return absl::OkStatus();
}

absl::Status MeshContext::ValidateDistributedSetup() const {
  validate::DistributedSetup setup;
  if (strategy_config_.has_value()) setup.strategy = config::StrategyKindOf(*strategy_config_);
  setup.sizes = sizes();
  setup.has_pipeline = pipeline_config_.has_value();
  setup.has_moe = moe_config_.has_value();
  return validate::ValidateDistributedSetup(setup);
}

absl::StatusOr<DeviceMesh> CreateRingUlyssesMesh(const DeviceMesh& device_mesh, int64_t ring_degree,
                                                 int64_t ulysses_degree) {
  return device_mesh.Unflatten("cp", {ring_degree, ulysses_degree}, {"ring", "ulysses"});
}

}  // namespace nmesh::mesh
