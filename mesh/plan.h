// Mesh builders: from requested sizes to a validated plan of the device mesh,
// its flattened groups and the MoE mesh, computed without communication.
//
//   config::MeshRequest request;
//   request.sizes.world_size = 16;
//   request.sizes.tp = 2;
//   request.sizes.cp = 2;
//   NMESH_ASSIGN_OR_RETURN(MeshPlan plan, PlanMesh(request));   // fsdp2: (1, 1, 4, 2, 2)
//   NMESH_ASSIGN_OR_RETURN(RankPlan me, plan.QueryRank(0));
//   // me.groups: pp {0}, dp_replicate {0}, dp_shard {0,4,8,12}, cp {0,2}, tp {0,1},
//   //            dp {0,4,8,12}, dp_shard_cp {0,2,...,14}, dp_cp {0,2,...,14}
//   std::vector<int64_t> tp_ranks = me.groups[4].group.Ranks();   // {0, 1}
//   std::vector<GroupKind> kinds = DistinctGroupKinds(plan);     // one split per kind
//
// A plan answers for one rank in O(ndim + group size) at any world size (up to
// validate::kMaxMeshSize): it stores O(ndim) numbers, plus the rank list when one was given.
//
// Thread safety: a MeshPlan is immutable; every const method may be called concurrently.
#ifndef NMESH_MESH_PLAN_H_
#define NMESH_MESH_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nmesh/config/sizes.h"
#include "nmesh/config/strategy.h"
#include "nmesh/mesh/layout.h"
#include "nmesh/validate/sizes.h"

namespace nmesh::mesh {

// A flattened group of the device mesh: `name` over `source_axes` (in mesh order).
struct FlattenedGroup {
  std::string name;
  std::vector<std::string> source_axes;
  AxisSet axes;
};

// The MoE mesh of FSDP2 with ep > 1: axes (ep_shard, ep) per pipeline stage. `layout` holds every
// stage at once, as the device mesh's ranks reshaped to (pp, ep_shard, ep): stage s is
// ranks[s*R : (s+1)*R] with R = ep_shard * ep, so EP never spans stages. A rank's own 2-D moe mesh
// is layout.Submesh(rank, {"ep_shard", "ep"}).
struct MoeMesh {
  int64_t ep_shard = 1;
  int64_t ep = 1;
  int64_t stages = 1;
  Layout layout;
};

// Which of a plan's meshes a group lives in.
enum class MeshKind { kDevice, kMoe };

// A group name resolved to its mesh and axes there.
struct GroupRef {
  MeshKind mesh = MeshKind::kDevice;
  AxisSet axes;
};

// One named group of one rank, evaluated lazily (it refers to the plan's layouts).
struct NamedGroup {
  std::string name;
  GroupView group;
};

// Everything one member rank sees of a plan. It refers to the plan, which must outlive it.
struct RankPlan {
  int64_t rank = 0;
  // Along the device mesh's axes, in mesh order.
  std::vector<int64_t> coordinate;
  // Native axes in mesh order, then flattened groups in the plan's order.
  std::vector<NamedGroup> groups;
  // ep_shard then ep, when the plan has a moe mesh.
  std::optional<std::vector<NamedGroup>> moe_groups;
};

// One distinct partition of the ranks into groups, with every name that shares it (first name
// first: native axes in mesh order, then flattened groups, then moe axes).
struct GroupKind {
  std::vector<std::string> names;
  MeshKind mesh = MeshKind::kDevice;
  AxisSet axes;
  int64_t group_size = 1;
  int64_t group_count = 1;
  // Every group has one rank: a self communicator serves it.
  bool trivial = false;
  // One group holding ranks 0..world_size-1 in order: the world communicator serves it.
  bool whole_world = false;
};

class MeshPlan {
 public:
  config::StrategyKind strategy() const { return strategy_; }
  // The size of the job's world the mesh's ranks are drawn from.
  int64_t world_size() const { return world_size_; }
  // Whether the request listed the mesh's ranks. Either way the mesh's ranks in order are
  // device_mesh().RankAtPosition(0 .. size-1).
  bool has_explicit_ranks() const { return has_explicit_ranks_; }
  // The resolved sizes: FSDP2 sets every field (ep and ep_shard are 1 without a moe mesh);
  // MegatronFSDP sets dp, cp, tp and, when cp > 1, dp_cp; DDP sets dp.
  const validate::ResolvedSizes& sizes() const { return sizes_; }
  // FSDP2: (pp, dp_replicate, dp_shard, cp, tp); MegatronFSDP: (dp, cp, tp); DDP: (dp).
  const Layout& device_mesh() const { return device_mesh_; }
  const std::vector<FlattenedGroup>& flattened() const { return flattened_; }
  const std::optional<MoeMesh>& moe_mesh() const { return moe_mesh_; }

  // The device mesh, or the moe mesh's layout (which must exist for kMoe).
  const Layout& LayoutOf(MeshKind mesh) const;
  // Whether global rank `rank` is a member of the mesh. O(1).
  bool Contains(int64_t rank) const { return device_mesh_.Contains(rank); }
  // Resolves a native axis, flattened group or moe axis name. NotFound when the plan has none.
  absl::StatusOr<GroupRef> ResolveGroup(std::string_view name) const;
  // The group `name` of member `rank`, lazily (GroupView::Materialize gives the ranks).
  // FailedPrecondition for a non-member, NotFound for an unknown name. O(ndim).
  absl::StatusOr<GroupView> ViewGroup(int64_t rank, std::string_view name) const;
  // The coordinate and every group of member `rank`, lazily. FailedPrecondition for a non-member.
  // O(ndim * number of groups); listing a group's ranks costs O(ndim + its size) more.
  absl::StatusOr<RankPlan> QueryRank(int64_t rank) const;
  // The submesh of member `rank` over the named groups, in mesh order: native axes give a slice,
  // one flattened name its 1-D group, and (dp_replicate, dp_shard_cp) the 2-D HSDP view. The names'
  // source axes must be disjoint and in mesh order. O(ndim + group size).
  absl::StatusOr<Layout> Submesh(int64_t rank, absl::Span<const std::string_view> names) const;

 private:
  friend absl::StatusOr<MeshPlan> PlanMesh(const config::MeshRequest& request);
  friend absl::StatusOr<MeshPlan> PlanMeshOver(const config::MeshRequest& request,
                                               const Layout& members);
  // PlanMesh and PlanMeshOver: the members from request.ranks, or `members` when not null.
  static absl::StatusOr<MeshPlan> Plan(const config::MeshRequest& request, const Layout* members);

  explicit MeshPlan(Layout device_mesh) : device_mesh_(std::move(device_mesh)) {}

  config::StrategyKind strategy_ = config::kDefaultStrategy;
  int64_t world_size_ = 0;
  bool has_explicit_ranks_ = false;
  validate::ResolvedSizes sizes_;
  Layout device_mesh_;
  std::vector<FlattenedGroup> flattened_;
  std::optional<MoeMesh> moe_mesh_;
};

// Validates `request` and plans its meshes. Every failure is InvalidArgument carrying the fields
// it names (validate::FieldsOf), in this order:
//   1. the requested sizes (validate::CheckRequestedSizes; the job's world size as world_size);
//   2. the mesh's members: world_size is required without ranks ("world_size is required when no
//      mesh ranks are given"); a rank list must be non-empty, match world_size when both are given,
//      and lie inside the job's world;
//   3. the sizes the strategy resolves them to (validate::ResolveSizes: strategy support, dp
//      inference, the FSDP2 checks, the mesh size).
// An explicit dp whose product is smaller than world_size gives a mesh over the first ranks.
// O(1) without a rank list, O(n) with one. Thread-safe.
absl::StatusOr<MeshPlan> PlanMesh(const config::MeshRequest& request);

// PlanMesh with the mesh's ranks given as `members` (its ranks in position order, any shape)
// instead of listed in request.ranks, which must be unset (InvalidArgument otherwise): for a
// rank order held in closed form (Layout::CreateGatheredByResidue), which a list would cost O(n)
// to hold and index. The plan has explicit ranks, and its layouts share `members`' rank array.
// Fails as PlanMesh would with request.ranks listing the members (a rank outside the job's world
// is named by the largest). O(1) for an implicit or closed-form `members`. Thread-safe.
absl::StatusOr<MeshPlan> PlanMeshOver(const config::MeshRequest& request, const Layout& members);

// The distinct partitions of a plan's groups (native axes, flattened groups, moe axes), merged by
// SamePartition, in first-name order; with CommSharing::kName, one kind per name, in the same
// order (nothing merged). The runtime makes one communicator split per kind that is neither
// trivial nor whole_world (DeviceMesh::Create). O(number of names^2 * ndim) (O(size) per
// comparison only across different rank arrays, which a plan never has). Thread-safe.
std::vector<GroupKind> DistinctGroupKinds(
    const MeshPlan& plan, config::CommSharing sharing = config::CommSharing::kPartition);

}  // namespace nmesh::mesh

#endif  // NMESH_MESH_PLAN_H_
