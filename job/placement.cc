#include "nmesh/job/placement.h"

#include <algorithm>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/job/spec.h"
#include "nmesh/validate/checked_math.h"

namespace nmesh::job {
namespace {

// One group kind of a plan: its name, the layout it partitions and its axes there.
struct Kind {
  std::string name;
  const mesh::Layout* layout;
  mesh::AxisSet axes;
};

std::vector<Kind> KindsOf(const mesh::MeshPlan& plan) {
  std::vector<Kind> kinds;
  const mesh::Layout& layout = plan.device_mesh();
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    kinds.push_back({layout.axis_names()[axis], &layout, mesh::AxisSet::Of({axis})});
  }
  for (const mesh::FlattenedGroup& group : plan.flattened()) {
    kinds.push_back({group.name, &layout, group.axes});
  }
  if (plan.moe_mesh().has_value()) {
    for (const char* name : {"ep_shard", "ep"}) {
      absl::StatusOr<mesh::GroupRef> ref = plan.ResolveGroup(name);
      NMESH_CHECK(ref.ok()) << ref.status();  // a moe mesh has both axes
      kinds.push_back({name, &plan.moe_mesh()->layout, ref->axes});
    }
  }
  return kinds;
}

// Whether every group of `axes` holds positions of one class, `class_of[p]` for position p:
// each position is compared with its group's first position. O(size * ndim).
bool GroupsWithinClasses(const mesh::Layout& layout, mesh::AxisSet axes,
                         const std::vector<int64_t>& class_of) {
  const std::vector<int64_t>& shape = layout.shape();
  const std::vector<int64_t>& strides = layout.strides();
  for (int64_t p = 0; p < layout.size(); ++p) {
    int64_t first = p;
    for (int axis = 0; axis < layout.ndim(); ++axis) {
      if (axes.Contains(axis)) first -= (p / strides[axis]) % shape[axis] * strides[axis];
    }
    if (class_of[static_cast<size_t>(p)] != class_of[static_cast<size_t>(first)]) return false;
  }
  return true;
}

// The position model of a placement: where position p of the mesh sits.
struct PositionModel {
  enum Kind { kBlocks, kResidues, kTable } kind = kBlocks;
  int64_t block = 1;                  // kBlocks: host p / block
  int64_t period = 1;                 // kResidues: host p % period
  std::vector<int64_t> host_of = {};  // kTable: host_of[p]
};

bool Within(const mesh::Layout& layout, mesh::AxisSet axes, const PositionModel& model) {
  switch (model.kind) {
    case PositionModel::kBlocks:
      return GroupsWithinBlocks(layout, axes, model.block);
    case PositionModel::kResidues:
      return GroupsWithinResidues(layout, axes, model.period);
    case PositionModel::kTable:
      return GroupsWithinClasses(layout, axes, model.host_of);
  }
  return false;
}

}  // namespace

absl::StatusOr<LaunchOrder> ParseLaunchOrder(std::string_view name) {
  if (std::optional<LaunchOrder> order = ValueNamed<LaunchOrder>(kLaunchOrderNames, name)) {
    return *order;
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown launch order '%s': expected %s",
                                                    std::string(name),
                                                    NameList<LaunchOrder>(kLaunchOrderNames)));
}

std::string_view LaunchOrderName(LaunchOrder order) {
  return NameOf<LaunchOrder>(kLaunchOrderNames, order, "slot");
}

int64_t HostLayout::HostOf(int64_t rank) const {
  return order == LaunchOrder::kByNode ? rank % hosts : rank / ranks_per_host;
}

absl::StatusOr<std::vector<int64_t>> PackByHost(absl::Span<const int64_t> ranks,
                                                const std::vector<std::string>& host_names) {
  std::unordered_map<std::string_view, int64_t> host_index;
  std::vector<std::pair<int64_t, int64_t>> keyed;  // (host index, rank)
  keyed.reserve(ranks.size());
  for (int64_t rank : ranks) {
    if (rank < 0 || rank >= static_cast<int64_t>(host_names.size())) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "mesh rank %d has no host name (%d host names given)", rank, host_names.size()));
    }
    const auto [it, inserted] = host_index.try_emplace(host_names[static_cast<size_t>(rank)],
                                                       static_cast<int64_t>(host_index.size()));
    keyed.emplace_back(it->second, rank);
  }
  std::sort(keyed.begin(), keyed.end());
  std::vector<int64_t> packed;
  packed.reserve(keyed.size());
  for (const auto& [host, rank] : keyed) packed.push_back(rank);
  return packed;
}

bool GroupsWithinResidues(const mesh::Layout& layout, mesh::AxisSet axes, int64_t period) {
  // Members differ by sums of c * stride over the set's axes: all congruent iff every such
  // stride is.
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    if (axes.Contains(axis) && layout.shape()[axis] > 1 && layout.strides()[axis] % period != 0) {
      return false;
    }
  }
  return true;
}

bool GroupsWithinBlocks(const mesh::Layout& layout, mesh::AxisSet axes, int64_t block) {
  if (block >= layout.size()) return true;
  const std::vector<int64_t>& shape = layout.shape();
  const std::vector<int64_t>& strides = layout.strides();
  // A group is its first position b plus offsets in [0, span]; it stays in b's block iff
  // b % block + span < block. The first positions are the sums of c * stride over the other
  // axes; only their residues modulo `block` matter.
  int64_t span = 0;
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    if (axes.Contains(axis)) span += (shape[axis] - 1) * strides[axis];
  }
  if (span >= block) return false;
  std::vector<std::pair<int64_t, int64_t>> others;  // (size, stride % block) that move residues
  double enumerate_cost = 1;
  double table_cost = 0;
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    if (axes.Contains(axis) || shape[axis] == 1 || strides[axis] % block == 0) continue;
    others.emplace_back(shape[axis], strides[axis] % block);
    enumerate_cost *= static_cast<double>(shape[axis]);
    const int64_t period = block / std::gcd(strides[axis] % block, block);
    table_cost += static_cast<double>(block) * static_cast<double>(std::min(shape[axis], period));
  }
  const int64_t limit = block - span;  // every residue must stay below it
  if (enumerate_cost <= table_cost) {
    // Every first position's residue, depth first.
    std::vector<int64_t> index(others.size(), 0);
    int64_t residue = 0;
    while (true) {
      if (residue >= limit) return false;
      size_t a = 0;
      for (; a < others.size(); ++a) {
        if (++index[a] < others[a].first) {
          residue = (residue + others[a].second) % block;
          break;
        }
        residue = ((residue - (others[a].first - 1) * others[a].second) % block + block) % block;
        index[a] = 0;
      }
      if (a == others.size()) return true;
    }
  }
  // The set of reachable residues, one axis at a time.
  std::vector<char> reach(static_cast<size_t>(block), 0);
  reach[0] = 1;
  std::vector<char> next(static_cast<size_t>(block));
  for (const auto& [size, step] : others) {
    const int64_t period = block / std::gcd(step, block);
    std::fill(next.begin(), next.end(), 0);
    for (int64_t r = 0; r < block; ++r) {
      if (!reach[static_cast<size_t>(r)]) continue;
      int64_t s = r;
      for (int64_t c = 0; c < std::min(size, period); ++c) {
        next[static_cast<size_t>(s)] = 1;
        s += step;
        if (s >= block) s -= block;
      }
    }
    reach.swap(next);
  }
  for (int64_t r = limit; r < block; ++r) {
    if (reach[static_cast<size_t>(r)]) return false;
  }
  return true;
}

absl::StatusOr<PlacedPlan> PlaceOnHosts(const MeshSpec& spec, const HostLayout& hosts,
                                        Placement placement) {
  if (hosts.hosts < 1 || hosts.ranks_per_host < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--hosts (%d) and --ranks-per-host (%d) must be positive", hosts.hosts,
                        hosts.ranks_per_host));
  }
  const std::optional<int64_t> world = validate::CheckedMul(hosts.hosts, hosts.ranks_per_host);
  if (!world.has_value() || *world > validate::kMaxMeshSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--hosts %d x --ranks-per-host %d exceeds the largest mesh (%d ranks)",
                        hosts.hosts, hosts.ranks_per_host, validate::kMaxMeshSize));
  }
  int64_t hosts_per_domain = 1;
  if (hosts.ranks_per_domain.has_value()) {
    const int64_t d = *hosts.ranks_per_domain;
    if (d < 1 || d % hosts.ranks_per_host != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--ranks-per-domain %d must be a positive multiple of --ranks-per-host %d", d,
          hosts.ranks_per_host));
    }
    hosts_per_domain = d / hosts.ranks_per_host;
  }
  NMESH_ASSIGN_OR_RETURN(mesh::MeshPlan plan, PlanMeshSpec(spec));
  const int64_t highest = plan.device_mesh().MaxRank();
  if (highest >= *world) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the mesh's ranks go up to %d, but --hosts %d x --ranks-per-host %d hold %d ranks", highest,
        hosts.hosts, hosts.ranks_per_host, *world));
  }

  const int64_t n = plan.device_mesh().size();
  const bool consecutive = plan.device_mesh().is_identity();  // the ranks 0..n-1 in order
  const bool round_robin = hosts.order == LaunchOrder::kByNode;
  // Ranks launched by slot fill the hosts in order: packing consecutive ones keeps their order.
  if (placement == Placement::kPack && !(consecutive && !round_robin)) {
    MeshSpec packed_spec = spec;
    packed_spec.request.sizes.world_size = n;
    packed_spec.request.job_world_size = *world;
    if (consecutive) {
      // Dealt round-robin, host h holds ranks h, h + H, h + 2H, ...: packed by host, that is the
      // ranks gathered by residue modulo H, a permutation held in closed form (no list, no
      // index) however large the mesh.
      packed_spec.request.ranks.reset();
      NMESH_ASSIGN_OR_RETURN(mesh::Layout members,
                             mesh::Layout::CreateGatheredByResidue({n}, {"ranks"}, hosts.hosts));
      NMESH_ASSIGN_OR_RETURN(plan, PlanMeshSpecOver(packed_spec, members));
    } else {
      const mesh::Layout& layout = plan.device_mesh();
      std::vector<int64_t> ranks(static_cast<size_t>(n));
      for (int64_t p = 0; p < n; ++p) ranks[static_cast<size_t>(p)] = layout.RankAtPosition(p);
      // Hosts in order of first appearance, then rank: a stable sort on the host.
      std::vector<int64_t> first_seen(static_cast<size_t>(hosts.hosts), -1);
      int64_t seen = 0;
      for (int64_t rank : ranks) {
        int64_t& slot = first_seen[static_cast<size_t>(hosts.HostOf(rank))];
        if (slot < 0) slot = seen++;
      }
      std::sort(ranks.begin(), ranks.end(), [&](int64_t a, int64_t b) {
        const int64_t ha = first_seen[static_cast<size_t>(hosts.HostOf(a))];
        const int64_t hb = first_seen[static_cast<size_t>(hosts.HostOf(b))];
        return ha != hb ? ha < hb : a < b;
      });
      packed_spec.request.ranks = std::move(ranks);
      NMESH_ASSIGN_OR_RETURN(plan, PlanMeshSpec(packed_spec));
    }
  }

  // Where position p of the placed plan sits: a closed form for consecutive ranks, a table
  // otherwise.
  PositionModel host_model;
  PositionModel domain_model;
  if (consecutive && !round_robin) {
    host_model = {.kind = PositionModel::kBlocks, .block = hosts.ranks_per_host};
    domain_model = {.kind = PositionModel::kBlocks,
                    .block = hosts.ranks_per_host * hosts_per_domain};
  } else if (consecutive && placement == Placement::kAsLaunched && hosts_per_domain == 1) {
    host_model = {.kind = PositionModel::kResidues, .period = hosts.hosts};
    domain_model = host_model;
  } else if (consecutive && placement == Placement::kPack && n % hosts.hosts == 0) {
    // Packed from round-robin, every host holds n / H ranks: blocks of that many, and a domain
    // blocks of its hosts'.
    host_model = {.kind = PositionModel::kBlocks, .block = n / hosts.hosts};
    domain_model = {.kind = PositionModel::kBlocks, .block = n / hosts.hosts * hosts_per_domain};
  } else {
    const mesh::Layout& layout = plan.device_mesh();
    host_model.kind = PositionModel::kTable;
    host_model.host_of.resize(static_cast<size_t>(n));
    domain_model.kind = PositionModel::kTable;
    domain_model.host_of.resize(static_cast<size_t>(n));
    for (int64_t p = 0; p < n; ++p) {
      const int64_t host = hosts.HostOf(layout.RankAtPosition(p));
      host_model.host_of[static_cast<size_t>(p)] = host;
      domain_model.host_of[static_cast<size_t>(p)] = host / hosts_per_domain;
    }
  }

  PlacedPlan placed{.plan = std::move(plan)};
  for (const Kind& kind : KindsOf(placed.plan)) {
    placed.groups.push_back({.name = kind.name,
                             .size = kind.layout->GroupSize(kind.axes),
                             .count = kind.layout->GroupCount(kind.axes),
                             .intra_host = Within(*kind.layout, kind.axes, host_model)});
    if (hosts.ranks_per_domain.has_value()) {
      placed.intra_domain.push_back(Within(*kind.layout, kind.axes, domain_model));
    }
  }
  return placed;
}

absl::StatusOr<PlacedPlan> PlanWithoutJob(const MeshSpec& spec,
                                          const std::optional<HostLayout>& hosts,
                                          Placement placement) {
  if (!spec.request.ranks.has_value() && !spec.request.sizes.world_size.has_value()) {
    return absl::InvalidArgumentError("--world is required unless --ranks is given");
  }
  if (hosts.has_value()) return PlaceOnHosts(spec, *hosts, placement);
  if (placement == Placement::kPack) {
    return absl::InvalidArgumentError(
        "--placement pack needs the hosts under plan: give --hosts H --ranks-per-host R");
  }
  NMESH_ASSIGN_OR_RETURN(mesh::MeshPlan plan, PlanMeshSpec(spec));
  return PlacedPlan{.plan = std::move(plan)};
}

}  // namespace nmesh::job
