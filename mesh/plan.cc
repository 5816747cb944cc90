#include "nmesh/mesh/plan.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/mesh/axis_name.h"
#include "nmesh/validate/checked_math.h"
#include "nmesh/validate/validate.h"

namespace nmesh::mesh {
namespace {

using config::StrategyKind;
using validate::CheckedProduct;
using validate::kMaxMeshSize;

// The mesh's members: 0..world_size-1, or the listed ranks (validated here, once).
struct Members {
  int64_t mesh_size = 0;
  int64_t job_world = 0;
  std::optional<Layout> listed;  // 1-D, holding the shared rank table
};

absl::StatusOr<Members> ResolveMembers(const config::MeshRequest& request) {
  Members members;
  const std::optional<int64_t>& world = request.sizes.world_size;
  if (!request.ranks.has_value()) {
    if (!world.has_value()) {
      return absl::InvalidArgumentError("world_size is required when no mesh ranks are given");
    }
    members.mesh_size = *world;
    members.job_world = request.job_world_size.value_or(*world);
    if (members.job_world < members.mesh_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("the mesh's world_size (%d) must not exceed the job's world size (%d)",
                          members.mesh_size, members.job_world));
    }
    return members;
  }
  const std::vector<int64_t>& ranks = *request.ranks;
  if (ranks.empty()) return absl::InvalidArgumentError("mesh ranks must not be empty");
  const auto n = static_cast<int64_t>(ranks.size());
  if (world.has_value() && *world != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mesh ranks (%d) must match mesh size (%d)", n, *world));
  }
  const auto [min_rank, max_rank] = std::minmax_element(ranks.begin(), ranks.end());
  if (request.job_world_size.has_value()) {
    const int64_t job_world = *request.job_world_size;
    for (int64_t rank : ranks) {
      if (rank < 0 || rank >= job_world) {
        return absl::InvalidArgumentError(
            absl::StrFormat("Rank %d is out of range. Valid ranks are 0 to %d (world_size=%d)",
                            rank, job_world - 1, job_world));
      }
    }
  }
  if (*min_rank < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "mesh rank %d is outside the job's world (ranks are non-negative)", *min_rank));
  }
  if (request.job_world_size.has_value()) {
    members.job_world = *request.job_world_size;
    if (*max_rank >= members.job_world) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mesh rank %d is outside the job's world of %d ranks (0..%d)", *max_rank,
                          members.job_world, members.job_world - 1));
    }
  } else {
    if (*max_rank >= kMaxMeshSize) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mesh rank %d is outside any job's world (ranks are at most %d)",
                          *max_rank, kMaxMeshSize - 1));
    }
    members.job_world = *max_rank + 1;
  }
  members.mesh_size = n;
  absl::StatusOr<Layout> listed = Layout::Create({n}, {"ranks"}, ranks);
  if (!listed.ok()) return listed.status();
  members.listed = *std::move(listed);
  return members;
}

// The members given as a layout (PlanMeshOver): checked as ResolveMembers checks a list, from the
// largest rank (a layout's ranks are non-negative and unique).
absl::StatusOr<Members> ResolveGivenMembers(const config::MeshRequest& request,
                                            const Layout& given) {
  if (request.ranks.has_value()) {
    return absl::InvalidArgumentError(
        "mesh ranks are given twice: as a rank list and as a members layout");
  }
  Members members;
  const int64_t n = given.size();
  const std::optional<int64_t>& world = request.sizes.world_size;
  if (world.has_value() && *world != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mesh ranks (%d) must match mesh size (%d)", n, *world));
  }
  const int64_t max_rank = given.MaxRank();
  if (request.job_world_size.has_value()) {
    members.job_world = *request.job_world_size;
    if (max_rank >= members.job_world) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mesh rank %d is outside the job's world of %d ranks (0..%d)", max_rank,
                          members.job_world, members.job_world - 1));
    }
  } else {
    if (max_rank >= kMaxMeshSize) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mesh rank %d is outside any job's world (ranks are at most %d)",
                          max_rank, kMaxMeshSize - 1));
    }
    members.job_world = max_rank + 1;
  }
  members.mesh_size = n;
  NMESH_ASSIGN_OR_RETURN(members.listed, given.Reshape({n}, {"ranks"}));
  return members;
}

absl::StatusOr<Layout> MakeLayout(const Members& members, std::vector<int64_t> shape,
                                  std::vector<MeshAxisName> axes) {
  std::vector<std::string> names;
  for (MeshAxisName axis : axes) names.emplace_back(MeshAxisNameString(axis));
  if (members.listed.has_value())
    return members.listed->Reshape(std::move(shape), std::move(names));
  return Layout::Create(std::move(shape), std::move(names));
}

FlattenedGroup MakeFlattened(const Layout& layout, MeshAxisName name,
                             std::vector<MeshAxisName> sources) {
  FlattenedGroup group{std::string(MeshAxisNameString(name)), {}, {}};
  for (MeshAxisName source : sources) {
    group.source_axes.emplace_back(MeshAxisNameString(source));
    group.axes = group.axes.With(*layout.AxisIndex(group.source_axes.back()));
  }
  return group;
}

}  // namespace

absl::StatusOr<MeshPlan> MeshPlan::Plan(const config::MeshRequest& request, const Layout* given) {
  NMESH_RETURN_IF_ERROR(validate::CheckRequestedSizes(request.sizes));
  NMESH_RETURN_IF_ERROR(validate::CheckGivenSize("world_size", request.job_world_size));
  NMESH_ASSIGN_OR_RETURN(Members members, given == nullptr ? ResolveMembers(request)
                                                           : ResolveGivenMembers(request, *given));
  const int64_t world = members.mesh_size;
  const bool listed = members.listed.has_value();
  NMESH_ASSIGN_OR_RETURN(const validate::ResolvedSizes sizes,
                         validate::ResolveSizes(request.strategy, request.sizes, world, listed));

  std::vector<int64_t> shape;
  std::vector<MeshAxisName> axes;
  switch (request.strategy) {
    case StrategyKind::kFsdp2:
      shape = {*sizes.pp, *sizes.dp_replicate, *sizes.dp_shard, *sizes.cp, *sizes.tp};
      axes = {MeshAxisName::kPp, MeshAxisName::kDpReplicate, MeshAxisName::kDpShard,
              MeshAxisName::kCp, MeshAxisName::kTp};
      break;
    case StrategyKind::kMegatronFsdp:
      shape = {*sizes.dp, *sizes.cp, *sizes.tp};
      axes = {MeshAxisName::kDp, MeshAxisName::kCp, MeshAxisName::kTp};
      break;
    case StrategyKind::kDdp:
      shape = {*sizes.dp};
      axes = {MeshAxisName::kDp};
      break;
  }

  // An explicit dp whose product is smaller than the world: the mesh spans ranks 0..N-1 and
  // leaves the others out (§3), like a rank-subset mesh.
  if (const std::optional<int64_t> mesh_size = CheckedProduct(shape);
      !listed && mesh_size.has_value() && *mesh_size < world) {
    std::vector<int64_t> first(static_cast<size_t>(*mesh_size));
    std::iota(first.begin(), first.end(), int64_t{0});
    NMESH_ASSIGN_OR_RETURN(members.listed, Layout::Create({*mesh_size}, {"ranks"}, first));
  }
  NMESH_ASSIGN_OR_RETURN(Layout device_mesh, MakeLayout(members, std::move(shape), axes));
  MeshPlan plan(std::move(device_mesh));
  plan.strategy_ = request.strategy;
  plan.world_size_ = members.job_world;
  plan.has_explicit_ranks_ = members.listed.has_value();
  plan.sizes_ = sizes;
  const Layout& layout = plan.device_mesh_;
  if (request.strategy == StrategyKind::kFsdp2) {
    plan.flattened_ = {
        MakeFlattened(layout, MeshAxisName::kDp,
                      {MeshAxisName::kDpReplicate, MeshAxisName::kDpShard}),
        MakeFlattened(layout, MeshAxisName::kDpShardCp,
                      {MeshAxisName::kDpShard, MeshAxisName::kCp}),
        MakeFlattened(layout, MeshAxisName::kDpCp,
                      {MeshAxisName::kDpReplicate, MeshAxisName::kDpShard, MeshAxisName::kCp}),
    };
    if (const int64_t ep = *sizes.ep; ep > 1) {
      const int64_t pp = *sizes.pp;
      const int64_t ep_shard = *sizes.ep_shard;
      NMESH_ASSIGN_OR_RETURN(
          Layout moe_layout,
          layout.Reshape({pp, ep_shard, ep},
                         {std::string(MeshAxisNameString(MeshAxisName::kPp)),
                          std::string(MeshAxisNameString(MeshAxisName::kEpShard)),
                          std::string(MeshAxisNameString(MeshAxisName::kEp))}));
      plan.moe_mesh_ = MoeMesh{ep_shard, ep, pp, std::move(moe_layout)};
    }
  } else if (request.strategy == StrategyKind::kMegatronFsdp && sizes.dp_cp.has_value()) {
    plan.flattened_ = {
        MakeFlattened(layout, MeshAxisName::kDpCp, {MeshAxisName::kDp, MeshAxisName::kCp})};
  }
  return plan;
}

absl::StatusOr<MeshPlan> PlanMesh(const config::MeshRequest& request) {
  return MeshPlan::Plan(request, nullptr);
}

absl::StatusOr<MeshPlan> PlanMeshOver(const config::MeshRequest& request, const Layout& members) {
  return MeshPlan::Plan(request, &members);
}

const Layout& MeshPlan::LayoutOf(MeshKind mesh) const {
  if (mesh == MeshKind::kDevice) return device_mesh_;
  NMESH_CHECK(moe_mesh_.has_value())
      << "the " << config::StrategyName(strategy_) << " plan has no moe mesh";
  return moe_mesh_->layout;
}

absl::StatusOr<GroupRef> MeshPlan::ResolveGroup(std::string_view name) const {
  if (absl::StatusOr<int> axis = device_mesh_.AxisIndex(name); axis.ok()) {
    return GroupRef{MeshKind::kDevice, AxisSet::Of({*axis})};
  }
  for (const FlattenedGroup& group : flattened_) {
    if (group.name == name) return GroupRef{MeshKind::kDevice, group.axes};
  }
  if (moe_mesh_.has_value() && (name == MeshAxisNameString(MeshAxisName::kEpShard) ||
                                name == MeshAxisNameString(MeshAxisName::kEp))) {
    return GroupRef{MeshKind::kMoe, AxisSet::Of({*moe_mesh_->layout.AxisIndex(name)})};
  }
  std::vector<std::string> known = device_mesh_.axis_names();
  for (const FlattenedGroup& group : flattened_) known.push_back(group.name);
  if (moe_mesh_.has_value()) {
    known.emplace_back(MeshAxisNameString(MeshAxisName::kEpShard));
    known.emplace_back(MeshAxisNameString(MeshAxisName::kEp));
  }
  return absl::NotFoundError(absl::StrFormat("the %s mesh has no group '%s'; its groups are (%s)",
                                             config::StrategyName(strategy_), name,
                                             absl::StrJoin(known, ", ")));
}

absl::StatusOr<GroupView> MeshPlan::ViewGroup(int64_t rank, std::string_view name) const {
  NMESH_ASSIGN_OR_RETURN(GroupRef ref, ResolveGroup(name));
  return LayoutOf(ref.mesh).ViewGroup(rank, ref.axes);
}

absl::StatusOr<RankPlan> MeshPlan::QueryRank(int64_t rank) const {
  RankPlan result;
  result.rank = rank;
  NMESH_ASSIGN_OR_RETURN(result.coordinate, device_mesh_.CoordinateOf(rank));
  for (int axis = 0; axis < device_mesh_.ndim(); ++axis) {
    NMESH_ASSIGN_OR_RETURN(GroupView group, device_mesh_.ViewGroup(rank, AxisSet::Of({axis})));
    result.groups.push_back({device_mesh_.axis_names()[axis], group});
  }
  for (const FlattenedGroup& flattened : flattened_) {
    NMESH_ASSIGN_OR_RETURN(GroupView group, device_mesh_.ViewGroup(rank, flattened.axes));
    result.groups.push_back({flattened.name, group});
  }
  if (moe_mesh_.has_value()) {
    result.moe_groups.emplace();
    for (MeshAxisName axis : {MeshAxisName::kEpShard, MeshAxisName::kEp}) {
      const std::string name(MeshAxisNameString(axis));
      NMESH_ASSIGN_OR_RETURN(GroupView group, ViewGroup(rank, name));
      result.moe_groups->push_back({name, group});
    }
  }
  return result;
}

absl::StatusOr<Layout> MeshPlan::Submesh(int64_t rank,
                                         absl::Span<const std::string_view> names) const {
  if (names.empty()) return absl::InvalidArgumentError("a submesh needs at least one name");
  std::optional<MeshKind> mesh;
  std::vector<AxisSet> sets;
  std::vector<std::string> sub_names(names.begin(), names.end());
  for (std::string_view name : names) {
    NMESH_ASSIGN_OR_RETURN(GroupRef ref, ResolveGroup(name));
    if (mesh.has_value() && *mesh != ref.mesh) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "submesh (%s) mixes device mesh and moe mesh names", absl::StrJoin(sub_names, ", ")));
    }
    mesh = ref.mesh;
    sets.push_back(ref.axes);
  }
  return LayoutOf(*mesh).SubmeshOfGroups(rank, sets, std::move(sub_names));
}

std::vector<GroupKind> DistinctGroupKinds(const MeshPlan& plan, config::CommSharing sharing) {
  std::vector<std::pair<std::string, GroupRef>> named;
  for (int axis = 0; axis < plan.device_mesh().ndim(); ++axis) {
    named.push_back(
        {plan.device_mesh().axis_names()[axis], GroupRef{MeshKind::kDevice, AxisSet::Of({axis})}});
  }
  for (const FlattenedGroup& group : plan.flattened()) {
    named.push_back({group.name, GroupRef{MeshKind::kDevice, group.axes}});
  }
  if (plan.moe_mesh().has_value()) {
    for (MeshAxisName axis : {MeshAxisName::kEpShard, MeshAxisName::kEp}) {
      const std::string name(MeshAxisNameString(axis));
      named.push_back({name, *plan.ResolveGroup(name)});
    }
  }
  std::vector<GroupKind> kinds;
  // Not a structured binding: clang before 16 cannot capture one in the lambda below.
  for (const auto& entry : named) {
    const std::string& name = entry.first;
    const GroupRef& ref = entry.second;
    const Layout& layout = plan.LayoutOf(ref.mesh);
    auto same = std::find_if(kinds.begin(), kinds.end(), [&](const GroupKind& kind) {
      return sharing == config::CommSharing::kPartition &&
             SamePartition(plan.LayoutOf(kind.mesh), kind.axes, layout, ref.axes);
    });
    if (same != kinds.end()) {
      same->names.push_back(name);
      continue;
    }
    GroupKind kind;
    kind.names = {name};
    kind.mesh = ref.mesh;
    kind.axes = ref.axes;
    kind.group_size = layout.GroupSize(ref.axes);
    kind.group_count = layout.GroupCount(ref.axes);
    kind.trivial = kind.group_size == 1;
    kind.whole_world =
        layout.IsWholeMesh(ref.axes) && layout.is_identity() && layout.size() == plan.world_size();
    kinds.push_back(std::move(kind));
  }
  return kinds;
}

}  // namespace nmesh::mesh
