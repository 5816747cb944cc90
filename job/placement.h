// Where a mesh's ranks sit on the hosts of a job, and how to order them so that each host holds
// whole groups of the innermost axes.
//
// A mesh's groups follow the order of its ranks: the innermost axis (tp) groups consecutive
// positions, then cp, and so on. As launched, rank r of the job sits wherever the launcher put it
// (`mpirun --map-by slot` fills a host before the next, `--map-by node` deals ranks round-robin).
// Placement::kPack orders the mesh's ranks by host, then by local rank, so that the positions
// 0..R-1 are the first host's R ranks: a host then holds whole groups of every axis set whose
// groups fit in R consecutive positions.
//
//   // On a job (comm::Topology::host_names indexed by global rank):
//   NMESH_ASSIGN_OR_RETURN(std::vector<int64_t> order,
//                          job::PackByHost(mesh_ranks, topology.host_names));
//
//   // Without MPI: 2 hosts of 4 ranks, launched round-robin.
//   job::HostLayout hosts{.hosts = 2, .ranks_per_host = 4, .order = job::LaunchOrder::kByNode};
//   NMESH_ASSIGN_OR_RETURN(job::PlacedPlan placed,
//                          job::PlaceOnHosts(spec, hosts, job::Placement::kPack));
//   for (const job::GroupPlacement& g : placed.groups) {
//     std::cout << g.name << (g.intra_host ? " stays inside a host\n" : " crosses hosts\n");
//   }
#ifndef NMESH_JOB_PLACEMENT_H_
#define NMESH_JOB_PLACEMENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nmesh/base/enum_names.h"
#include "nmesh/job/spec.h"
#include "nmesh/job/verify.h"
#include "nmesh/mesh/layout.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::job {

// `ranks` ordered by host, then by rank: hosts in the order of their first rank in `ranks`.
// `host_names` is indexed by global rank and must cover every rank of `ranks` (checked). Pure;
// O(n log n).
absl::StatusOr<std::vector<int64_t>> PackByHost(absl::Span<const int64_t> ranks,
                                                const std::vector<std::string>& host_names);

// How a launcher deals the ranks of a job to hosts.
enum class LaunchOrder {
  // Rank r on host r / ranks_per_host (`mpirun --map-by slot`, the default).
  kBySlot,
  // Rank r on host r % hosts (`mpirun --map-by node`).
  kByNode,
};

// The name of each launch order (mpirun's --map-by), in the order messages list them
// (base/enum_names.h).
inline constexpr NamedValue<LaunchOrder> kLaunchOrderNames[] = {{LaunchOrder::kBySlot, "slot"},
                                                                {LaunchOrder::kByNode, "node"}};

// "slot" or "node"; InvalidArgument naming the value otherwise.
absl::StatusOr<LaunchOrder> ParseLaunchOrder(std::string_view name);
std::string_view LaunchOrderName(LaunchOrder order);

// A job's hosts as a launcher lays them out: `hosts` hosts of `ranks_per_host` ranks each.
struct HostLayout {
  int64_t hosts = 1;
  int64_t ranks_per_host = 1;
  LaunchOrder order = LaunchOrder::kBySlot;
  // Ranks per NVLink (or other fast) domain, a multiple of ranks_per_host: consecutive hosts
  // (host h in domain h / (ranks_per_domain / ranks_per_host)). Unset: one host per domain.
  std::optional<int64_t> ranks_per_domain;

  int64_t world() const { return hosts * ranks_per_host; }
  // The host of job rank `rank` (0 <= rank < world()).
  int64_t HostOf(int64_t rank) const;
};

// A plan placed on a HostLayout.
struct PlacedPlan {
  mesh::MeshPlan plan;
  // Every group kind of the plan in report order (native axes, flattened groups, moe axes), and
  // whether its groups stay inside one host.
  std::vector<GroupPlacement> groups = {};
  // For each group kind of `groups`, whether its groups stay inside one domain (only with
  // HostLayout::ranks_per_domain; else empty).
  std::vector<bool> intra_domain = {};
};

// Plans `spec` (PlanMeshSpec) and places its ranks on `hosts`: as given, or packed by host. The
// plan's ranks are the packed order under kPack whenever it differs from the request's: for
// consecutive ranks launched round-robin, the ranks gathered by residue modulo `hosts.hosts`
// (mesh::Layout::CreateGatheredByResidue, held in closed form, no list); for a listed mesh, a
// list. InvalidArgument when the layout is not positive, when ranks_per_domain is not a multiple
// of ranks_per_host, or when a mesh rank lies outside hosts x ranks_per_host; the plan's own
// errors otherwise. Placing a mesh of consecutive ranks takes O(ndim^2 + ranks_per_host) per
// group kind, packed or not (no per-rank work), except a round-robin launch that is as launched
// with domains of several hosts, or packed over hosts that do not divide the mesh: a table of
// hosts, O(n * ndim) per group kind. A rank list costs O(n log n + n * group size).
absl::StatusOr<PlacedPlan> PlaceOnHosts(const MeshSpec& spec, const HostLayout& hosts,
                                        Placement placement);

// Plans `spec` with no running job to take the world or the hosts from (`nmesh plan`): on `hosts`
// when given (PlaceOnHosts), otherwise PlanMeshSpec, with `groups` and `intra_domain` left empty.
// InvalidArgument before planning when the spec gives neither a world size nor a rank list
// ("--world is required unless --ranks is given"), and for Placement::kPack without `hosts`
// ("--placement pack needs the hosts under plan: give --hosts H --ranks-per-host R"); PlaceOnHosts'
// and the plan's errors otherwise. Pure.
absl::StatusOr<PlacedPlan> PlanWithoutJob(const MeshSpec& spec,
                                          const std::optional<HostLayout>& hosts,
                                          Placement placement);

// Whether every group of `axes` of `layout` stays within one block of `block` consecutive
// positions (position p in block p / block). O(ndim * min(block * axis size, bases)); no
// per-position work. Exposed for tests.
bool GroupsWithinBlocks(const mesh::Layout& layout, mesh::AxisSet axes, int64_t block);
// Whether every group of `axes` of `layout` stays within one class of positions modulo `period`
// (position p in class p % period). O(ndim). Exposed for tests.
bool GroupsWithinResidues(const mesh::Layout& layout, mesh::AxisSet axes, int64_t period);

}  // namespace nmesh::job

#endif  // NMESH_JOB_PLACEMENT_H_
