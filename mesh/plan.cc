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
#include "nmesh/mesh/checked_math.h"

namespace nmesh::mesh {
namespace {

using config::StrategyKind;

constexpr int64_t kInferDp = -1;

// A size with the name the contract's messages give it.
struct NamedSize {
  std::string_view field;
  int64_t value;
};

absl::Status CheckGivenSize(std::string_view field, const std::optional<int64_t>& value,
                            bool may_infer = false) {
  if (!value.has_value() || (may_infer && *value == kInferDp)) return absl::OkStatus();
  if (*value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be a positive integer, got %d", field, *value));
  }
  if (*value > kMaxMeshSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be at most %d, got %d", field, kMaxMeshSize, *value));
  }
  return absl::OkStatus();
}

std::string FieldList(absl::Span<const NamedSize> sizes) {
  return absl::StrJoin(sizes, " * ", [](std::string* out, const NamedSize& size) {
    absl::StrAppend(out, std::string(size.field));
  });
}

std::string ValueList(absl::Span<const NamedSize> sizes) {
  return absl::StrJoin(sizes, " * ", [](std::string* out, const NamedSize& size) {
    absl::StrAppend(out, size.value);
  });
}

// "t * c * p = N", or "t * c * p, which overflows int64".
std::string ProductText(absl::Span<const NamedSize> sizes, const std::optional<int64_t>& product) {
  if (!product.has_value()) return absl::StrCat(ValueList(sizes), ", which overflows int64");
  return absl::StrCat(ValueList(sizes), " = ", *product);
}

std::optional<int64_t> ProductOf(absl::Span<const NamedSize> sizes) {
  std::vector<int64_t> values;
  for (const NamedSize& size : sizes) values.push_back(size.value);
  return CheckedProduct(values);
}

// dp = world / (the other sizes), or the contract's divisibility error.
absl::StatusOr<int64_t> InferDp(int64_t world, absl::Span<const NamedSize> others) {
  const std::optional<int64_t> product = ProductOf(others);
  if (!product.has_value() || world % *product != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("world_size (%d) must be divisible by (%s) (%s)", world, FieldList(others),
                        ProductText(others, product)));
  }
  return world / *product;
}

// The product of the sizes must be the mesh size; the reference leaves this to PyTorch.
absl::Status CheckMeshSize(absl::Span<const NamedSize> factors, int64_t mesh_size,
                           bool has_rank_list) {
  const std::optional<int64_t> product = ProductOf(factors);
  if (product == mesh_size) return absl::OkStatus();
  // 0.7.0 builds a smaller mesh over the first ranks (the caller shrinks it); PyTorch rejects a
  // larger one.
  if (!has_rank_list && product.has_value() && *product < mesh_size) return absl::OkStatus();
  if (!has_rank_list && product.has_value()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Mesh should not be bigger than default world size %d, but found %d ranks! (%s) (%s)",
        mesh_size, *product, FieldList(factors), ProductText(factors, product)));
  }
  if (has_rank_list) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mesh ranks (%d) must match mesh size (%s)", mesh_size,
                        product.has_value() ? absl::StrCat(*product) : ProductText(factors, {})));
  }
  if (factors.size() == 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s (%d) must equal world_size (%d)", factors[0].field, factors[0].value, mesh_size));
  }
  return absl::InvalidArgumentError(absl::StrFormat("(%s) (%s) must equal world_size (%d)",
                                                    FieldList(factors),
                                                    ProductText(factors, product), mesh_size));
}

// Contract §4, checks before any mesh.
absl::Status CheckStrategySupport(StrategyKind strategy, int64_t dp_replicate, int64_t tp,
                                  int64_t pp, int64_t cp, int64_t ep) {
  if (dp_replicate > 1 && strategy != StrategyKind::kFsdp2) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "dp_replicate_size is only supported with FSDP2Config (dp_replicate_size=%d, strategy %s)",
        dp_replicate, config::StrategyName(strategy)));
  }
  struct Unsupported {
    std::string_view what;
    std::string_view field;
    int64_t value;
  };
  std::vector<Unsupported> unsupported;
  if (strategy == StrategyKind::kMegatronFsdp) {
    unsupported = {{"pipeline", "pp_size", pp}, {"expert", "ep_size", ep}};
  } else if (strategy == StrategyKind::kDdp) {
    unsupported = {{"tensor", "tp_size", tp},
                   {"pipeline", "pp_size", pp},
                   {"context", "cp_size", cp},
                   {"expert", "ep_size", ep}};
  }
  for (const Unsupported& u : unsupported) {
    if (u.value > 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s does not support %s parallelism (%s=%d)",
                          config::StrategyName(strategy), u.what, u.field, u.value));
    }
  }
  return absl::OkStatus();
}

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

absl::StatusOr<MeshPlan> PlanMesh(const config::MeshRequest& request) {
  const config::ParallelSizes& in = request.sizes;
  NMESH_RETURN_IF_ERROR(CheckGivenSize("dp_size", in.dp, /*may_infer=*/true));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("dp_replicate_size", in.dp_replicate));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("tp_size", in.tp));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("pp_size", in.pp));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("cp_size", in.cp));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("ep_size", in.ep));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("world_size", in.world_size));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("world_size", request.job_world_size));
  NMESH_ASSIGN_OR_RETURN(Members members, ResolveMembers(request));
  const int64_t world = members.mesh_size;
  const bool listed = members.listed.has_value();

  const int64_t dp_replicate = in.dp_replicate.value_or(1);
  const int64_t tp = in.tp.value_or(1);
  const int64_t pp = in.pp.value_or(1);
  const int64_t cp = in.cp.value_or(1);
  const int64_t ep = in.ep.value_or(1);
  std::optional<int64_t> dp = in.dp;
  if (dp == kInferDp) dp.reset();
  NMESH_RETURN_IF_ERROR(CheckStrategySupport(request.strategy, dp_replicate, tp, pp, cp, ep));

  PlannedSizes sizes;
  std::vector<int64_t> shape;
  std::vector<MeshAxisName> axes;
  switch (request.strategy) {
    case StrategyKind::kFsdp2: {
      if (!dp.has_value()) {
        const NamedSize others[] = {{"tp_size", tp}, {"cp_size", cp}, {"pp_size", pp}};
        NMESH_ASSIGN_OR_RETURN(dp, InferDp(world, others));
      }
      if (*dp % dp_replicate != 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "dp_size must be a multiple of dp_replicate_size (dp_size=%d, dp_replicate_size=%d)",
            *dp, dp_replicate));
      }
      if (dp_replicate >= *dp && dp_replicate != 1) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "dp_replicate_size=%d must be less than dp_size=%d since DDP usecase is not supported "
            "by FSDP2",
            dp_replicate, *dp));
      }
      const NamedSize non_pp_factors[] = {{"dp_size", *dp}, {"cp_size", cp}, {"tp_size", tp}};
      const std::optional<int64_t> non_pp = ProductOf(non_pp_factors);
      if (!non_pp.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("non_pp_size (%s) (%s)", FieldList(non_pp_factors),
                            ProductText(non_pp_factors, std::nullopt)));
      }
      if (*non_pp % ep != 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("non_pp_size=%d must be a multiple of ep_size=%d", *non_pp, ep));
      }
      const NamedSize factors[] = {
          {"dp_size", *dp}, {"tp_size", tp}, {"cp_size", cp}, {"pp_size", pp}};
      NMESH_RETURN_IF_ERROR(CheckMeshSize(factors, world, listed));
      const int64_t dp_shard = *dp / dp_replicate;
      sizes.pp = pp;
      sizes.dp = *dp;
      sizes.dp_replicate = dp_replicate;
      sizes.dp_shard = dp_shard;
      sizes.cp = cp;
      sizes.tp = tp;
      sizes.ep = ep;
      sizes.ep_shard = ep > 1 ? *non_pp / ep : 1;
      sizes.dp_shard_cp = dp_shard * cp;
      sizes.dp_cp = *dp * cp;
      shape = {pp, dp_replicate, dp_shard, cp, tp};
      axes = {MeshAxisName::kPp, MeshAxisName::kDpReplicate, MeshAxisName::kDpShard,
              MeshAxisName::kCp, MeshAxisName::kTp};
      break;
    }
    case StrategyKind::kMegatronFsdp: {
      if (!dp.has_value()) {
        const NamedSize others[] = {{"tp_size", tp}, {"cp_size", cp}};
        NMESH_ASSIGN_OR_RETURN(dp, InferDp(world, others));
      }
      const NamedSize factors[] = {{"dp_size", *dp}, {"tp_size", tp}, {"cp_size", cp}};
      NMESH_RETURN_IF_ERROR(CheckMeshSize(factors, world, listed));
      sizes.dp = *dp;
      sizes.cp = cp;
      sizes.tp = tp;
      if (cp > 1) sizes.dp_cp = *dp * cp;
      shape = {*dp, cp, tp};
      axes = {MeshAxisName::kDp, MeshAxisName::kCp, MeshAxisName::kTp};
      break;
    }
    case StrategyKind::kDdp: {
      if (!dp.has_value()) dp = world;
      const NamedSize factors[] = {{"dp_size", *dp}};
      NMESH_RETURN_IF_ERROR(CheckMeshSize(factors, world, listed));
      sizes.dp = *dp;
      shape = {*dp};
      axes = {MeshAxisName::kDp};
      break;
    }
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
    if (ep > 1) {
      const int64_t ep_shard = *sizes.ep_shard;
      NMESH_ASSIGN_OR_RETURN(
          Layout moe_layout,
          layout.Reshape({pp, ep_shard, ep},
                         {std::string(MeshAxisNameString(MeshAxisName::kPp)),
                          std::string(MeshAxisNameString(MeshAxisName::kEpShard)),
                          std::string(MeshAxisNameString(MeshAxisName::kEp))}));
      plan.moe_mesh_ = MoeMesh{ep_shard, ep, pp, std::move(moe_layout)};
    }
  } else if (request.strategy == StrategyKind::kMegatronFsdp && cp > 1) {
    plan.flattened_ = {
        MakeFlattened(layout, MeshAxisName::kDpCp, {MeshAxisName::kDp, MeshAxisName::kCp})};
  }
  return plan;
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

std::vector<GroupKind> DistinctGroupKinds(const MeshPlan& plan) {
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
      return SamePartition(plan.LayoutOf(kind.mesh), kind.axes, layout, ref.axes);
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
