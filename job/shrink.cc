// The failure policies' names and PlanShrink (job/recovery.h): a mesh without the data-parallel
// slices that hold dead ranks, planned without communication.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "nmesh/base/enum_names.h"
#include "nmesh/base/printable.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/strategy.h"
#include "nmesh/job/recovery.h"
#include "nmesh/job/spec.h"
#include "nmesh/mesh/layout.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/validate/sizes.h"

namespace nmesh::job {

absl::StatusOr<FailurePolicy> ParseFailurePolicy(std::string_view name) {
  if (std::optional<FailurePolicy> policy = ValueNamed<FailurePolicy>(kFailurePolicyNames, name)) {
    return *policy;
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown failure policy '%s': expected %s",
                                                    Printable(name),
                                                    NameList<FailurePolicy>(kFailurePolicyNames)));
}

std::string_view FailurePolicyName(FailurePolicy policy) {
  return NameOf<FailurePolicy>(kFailurePolicyNames, policy, "abort");
}

namespace {

// "rank 5" or "ranks 5, 9".
std::string RankWords(absl::Span<const int64_t> ranks) {
  return absl::StrCat(ranks.size() == 1 ? "rank " : "ranks ", absl::StrJoin(ranks, ", "));
}

// Whether the user gave `dp` as a number (not absent, not -1 for "infer").
bool ExplicitDp(const std::optional<int64_t>& dp) {
  return dp.has_value() && *dp != validate::kInferDp;
}

// The data-parallel axis a shrink drops slices along, and the sizes it rewrites.
struct ShrinkAxis {
  std::string name;  // an axis of the device mesh
  int index = 0;     // its index there
};

// The request of `spec` with `count` slices kept along `axis` (of `old_count`), for a mesh of
// `world` ranks; the rank list is left to the caller.
config::MeshRequest ShrunkRequest(const MeshSpec& spec, const mesh::MeshPlan& plan,
                                  std::string_view axis, int64_t count, int64_t world) {
  config::MeshRequest request = spec.request;
  validate::RequestedSizes& sizes = request.sizes;
  const validate::ResolvedSizes& old = plan.sizes();
  if (axis == "dp_replicate") {
    sizes.dp_replicate = count;
    if (ExplicitDp(sizes.dp)) sizes.dp = count * old.dp_shard_size();
  } else if (axis == "dp_shard") {
    if (ExplicitDp(sizes.dp)) sizes.dp = old.dp_replicate.value_or(1) * count;
  } else if (ExplicitDp(sizes.dp)) {
    sizes.dp = count;
  }
  sizes.world_size = world;
  request.ranks.reset();
  request.job_world_size.reset();
  return request;
}

}  // namespace

absl::StatusOr<ShrunkMesh> PlanShrink(const MeshSpec& spec, const mesh::MeshPlan& plan,
                                      absl::Span<const int64_t> dead) {
  const mesh::Layout& layout = plan.device_mesh();
  std::vector<int64_t> dead_here;
  for (int64_t rank : dead) {
    if (plan.Contains(rank)) dead_here.push_back(rank);
  }
  std::sort(dead_here.begin(), dead_here.end());
  dead_here.erase(std::unique(dead_here.begin(), dead_here.end()), dead_here.end());
  if (dead_here.empty()) {
    // The same mesh; a rank order the plan held apart from the request (a placement) is listed,
    // so that the spec alone plans it again.
    ShrunkMesh same{spec, {}, "unchanged"};
    if (plan.has_explicit_ranks() && !same.spec.request.ranks.has_value()) {
      std::vector<int64_t> ranks(static_cast<size_t>(layout.size()));
      for (int64_t p = 0; p < layout.size(); ++p) ranks[p] = layout.RankAtPosition(p);
      same.spec.request.ranks = std::move(ranks);
    }
    return same;
  }

  const std::string prefix = absl::StrFormat(
      "mesh '%s' cannot shrink without %s: ", Printable(MeshName(spec)), RankWords(dead_here));
  // The coordinates along axis `index` that hold a dead rank.
  auto hit_coordinates = [&](int index) -> absl::StatusOr<std::vector<bool>> {
    std::vector<bool> hit(static_cast<size_t>(layout.shape()[index]), false);
    for (int64_t rank : dead_here) {
      NMESH_ASSIGN_OR_RETURN(std::vector<int64_t> coordinate, layout.CoordinateOf(rank));
      hit[static_cast<size_t>(coordinate[index])] = true;
    }
    return hit;
  };

  // The axis: HSDP replicas while one survives, else the shards (FSDP2) or dp.
  const validate::ResolvedSizes& sizes = plan.sizes();
  ShrinkAxis axis;
  std::vector<bool> hit;
  if (plan.strategy() == config::StrategyKind::kFsdp2) {
    const int64_t replicas = sizes.dp_replicate.value_or(1);
    const int64_t shards = sizes.dp_shard_size();
    if (replicas > 1) {
      NMESH_ASSIGN_OR_RETURN(int index, layout.AxisIndex("dp_replicate"));
      NMESH_ASSIGN_OR_RETURN(hit, hit_coordinates(index));
      if (std::find(hit.begin(), hit.end(), false) != hit.end()) axis = {"dp_replicate", index};
    }
    if (axis.name.empty()) {
      if (shards == 1) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "%sit has no data-parallel dimension (dp_replicate %d, dp_shard %d)%s", prefix,
            replicas, shards,
            replicas > 1 ? ", and every dp_replicate replica holds a dead rank" : ""));
      }
      NMESH_ASSIGN_OR_RETURN(int index, layout.AxisIndex("dp_shard"));
      NMESH_ASSIGN_OR_RETURN(hit, hit_coordinates(index));
      axis = {"dp_shard", index};
    }
  } else {
    const int64_t dp = sizes.dp.value_or(1);
    if (dp == 1) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%sit has no data-parallel dimension (dp 1)", prefix));
    }
    NMESH_ASSIGN_OR_RETURN(int index, layout.AxisIndex("dp"));
    NMESH_ASSIGN_OR_RETURN(hit, hit_coordinates(index));
    axis = {"dp", index};
  }

  std::vector<int64_t> intact;  // the coordinates along the axis of the slices without a dead rank
  for (size_t c = 0; c < hit.size(); ++c) {
    if (!hit[c]) intact.push_back(static_cast<int64_t>(c));
  }
  const int64_t old_count = static_cast<int64_t>(hit.size());
  if (intact.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%severy one of the %d %s slices holds a dead rank", prefix, old_count, axis.name));
  }

  // The largest count of slices whose mesh passes the planning checks (sizes only: the ranks of
  // kept slices are members of the old mesh, so a rank list of them passes too).
  const int64_t slice_size = layout.size() / old_count;
  int64_t count = 0;
  absl::Status first_error;
  for (int64_t k = static_cast<int64_t>(intact.size()); k >= 1; --k) {
    MeshSpec probe = spec;
    probe.request = ShrunkRequest(spec, plan, axis.name, k, k * slice_size);
    absl::StatusOr<mesh::MeshPlan> planned = PlanMeshSpec(probe);
    if (planned.ok()) {
      count = k;
      break;
    }
    if (first_error.ok()) first_error = planned.status();
  }
  if (count == 0) {
    return absl::FailedPreconditionError(absl::StrFormat("%sno size of %s from %d down passes: %s",
                                                         prefix, axis.name, intact.size(),
                                                         first_error.message()));
  }

  // The new mesh's ranks in its row-major order: new coordinate j along the axis is the old
  // coordinate intact[j], every other coordinate the same.
  std::vector<int64_t> shape = layout.shape();
  shape[axis.index] = count;
  const int64_t new_size = count * slice_size;
  std::vector<int64_t> members;
  members.reserve(static_cast<size_t>(new_size));
  std::vector<int64_t> coordinate(shape.size(), 0);
  for (int64_t p = 0; p < new_size; ++p) {
    std::vector<int64_t> old_coordinate = coordinate;
    old_coordinate[axis.index] = intact[static_cast<size_t>(coordinate[axis.index])];
    NMESH_ASSIGN_OR_RETURN(int64_t rank, layout.RankAt(old_coordinate));
    members.push_back(rank);
    for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
      if (++coordinate[i] < shape[i]) break;
      coordinate[i] = 0;
    }
  }

  ShrunkMesh shrunk;
  shrunk.spec = spec;
  shrunk.spec.request = ShrunkRequest(spec, plan, axis.name, count, new_size);
  shrunk.spec.request.job_world_size = spec.request.job_world_size;
  shrunk.spec.request.ranks = members;
  if (absl::StatusOr<mesh::MeshPlan> planned = PlanMeshSpec(shrunk.spec); !planned.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(prefix, "the shrunk mesh does not plan: ", planned.status().message()));
  }
  std::vector<int64_t> kept = members;
  std::sort(kept.begin(), kept.end());
  for (int64_t p = 0; p < layout.size(); ++p) {
    const int64_t rank = layout.RankAtPosition(p);
    if (!std::binary_search(kept.begin(), kept.end(), rank) &&
        !std::binary_search(dead_here.begin(), dead_here.end(), rank)) {
      shrunk.left_out.push_back(rank);
    }
  }
  std::sort(shrunk.left_out.begin(), shrunk.left_out.end());

  const int64_t dropped = old_count - static_cast<int64_t>(intact.size());
  const int64_t unused = static_cast<int64_t>(intact.size()) - count;
  shrunk.change = absl::StrFormat("%s %d -> %d (dropped the %s of %s", axis.name, old_count, count,
                                  dropped == 1 ? "slice" : "slices", RankWords(dead_here));
  if (unused > 0) {
    absl::StrAppendFormat(&shrunk.change, "; %d intact %s left out", unused,
                          unused == 1 ? "slice" : "slices");
  }
  absl::StrAppendFormat(&shrunk.change, "), %d -> %d ranks", layout.size(), new_size);
  return shrunk;
}

}  // namespace nmesh::job
