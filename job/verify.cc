#include "nmesh/job/verify.h"

#include <map>
#include <numeric>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/host_collectives.h"

namespace nmesh::job {
namespace {

using comm::Communicator;

// One distinct communicator's observation: the global ranks all-gathered in group order, and the
// all-reduced sum of the global ranks.
struct Observation {
  std::vector<int64_t> ranks;
  int64_t sum = 0;
  bool skipped = false;
};

absl::StatusOr<Observation> Observe(Communicator& comm, int64_t rank) {
  Observation seen;
  seen.ranks.assign(static_cast<size_t>(comm.size()), -1);
  NMESH_RETURN_IF_ERROR(comm::HostAllGather<int64_t>(comm, absl::MakeConstSpan(&rank, 1),
                                                     absl::MakeSpan(seen.ranks)));
  seen.sum = rank;
  NMESH_RETURN_IF_ERROR(comm::HostAllReduce<int64_t>(
      comm, absl::MakeConstSpan(&rank, 1), absl::MakeSpan(&seen.sum, 1), comm::ReduceOp::kSum));
  return seen;
}

}  // namespace

absl::StatusOr<RankVerification> VerifyRank(const mesh::MeshPlan& plan,
                                            const mesh::DeviceMesh& device_mesh, int64_t rank,
                                            const VerifyOptions& options) {
  NMESH_ASSIGN_OR_RETURN(mesh::RankPlan me, plan.QueryRank(rank));
  RankVerification report;
  report.rank = rank;
  report.coordinate = me.coordinate;
  std::map<Communicator*, Observation> seen;
  auto check_all =
      [&](const mesh::DeviceMesh& mesh,
          const std::vector<mesh::NamedGroup>& groups) -> absl::StatusOr<std::vector<GroupCheck>> {
    Communicator* skipped = nullptr;
    if (options.skip_group.has_value()) {
      if (absl::StatusOr<Communicator*> comm = mesh.Comm(*options.skip_group); comm.ok()) {
        skipped = *comm;
      }
    }
    std::vector<GroupCheck> checks;
    for (const mesh::NamedGroup& group : groups) {
      NMESH_ASSIGN_OR_RETURN(Communicator * comm, mesh.Comm(group.name));
      auto it = seen.find(comm);
      if (it == seen.end() && comm == skipped) {
        it = seen.emplace(comm, Observation{.ranks = {}, .sum = 0, .skipped = true}).first;
      }
      if (it == seen.end()) {
        NMESH_ASSIGN_OR_RETURN(Observation o, Observe(*comm, rank));
        it = seen.emplace(comm, std::move(o)).first;
      }
      const std::vector<int64_t> expected = group.group.Ranks();
      const int64_t expected_sum = std::accumulate(expected.begin(), expected.end(), int64_t{0});
      GroupCheck check{.name = group.name, .observed = it->second.ranks, .verified = false};
      if (it->second.skipped) {
        report.mismatches.push_back(absl::StrFormat("%s: skipped (fault injection)", group.name));
      } else if (it->second.ranks != expected) {
        report.mismatches.push_back(
            absl::StrFormat("%s: communicator holds [%s], layout says [%s]", group.name,
                            absl::StrJoin(it->second.ranks, ", "), absl::StrJoin(expected, ", ")));
      } else if (it->second.sum != expected_sum) {
        report.mismatches.push_back(
            absl::StrFormat("%s: all_reduce of the ranks gave %d, expected %d", group.name,
                            it->second.sum, expected_sum));
      } else {
        check.verified = true;
      }
      checks.push_back(std::move(check));
    }
    return checks;
  };
  NMESH_ASSIGN_OR_RETURN(report.groups, check_all(device_mesh, me.groups));
  if (me.moe_groups.has_value()) {
    NMESH_ASSIGN_OR_RETURN(report.moe_groups, check_all(*device_mesh.moe_mesh(), *me.moe_groups));
  }
  report.verified = report.mismatches.empty();
  return report;
}

absl::StatusOr<std::vector<GroupPlacement>> PlacementOf(
    const mesh::MeshPlan& plan, const std::vector<std::string>& host_names) {
  const mesh::Layout& layout = plan.device_mesh();
  for (int64_t position = 0; position < layout.size(); ++position) {
    const int64_t rank = layout.RankAtPosition(position);
    if (rank < 0 || rank >= static_cast<int64_t>(host_names.size())) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "mesh rank %d has no host name (%d host names given)", rank, host_names.size()));
    }
  }
  std::vector<GroupPlacement> rows;
  auto add = [&](const std::string& name, const mesh::Layout& group_layout,
                 mesh::AxisSet axes) -> absl::Status {
    GroupPlacement row{.name = name,
                       .size = group_layout.GroupSize(axes),
                       .count = group_layout.GroupCount(axes),
                       .intra_host = true};
    for (int64_t position = 0; position < layout.size() && row.intra_host; ++position) {
      const int64_t rank = layout.RankAtPosition(position);
      const std::string& host = host_names[static_cast<size_t>(rank)];
      NMESH_ASSIGN_OR_RETURN(mesh::GroupView group, plan.ViewGroup(rank, name));
      group.ForEach([&](int64_t member) {
        if (host_names[static_cast<size_t>(member)] != host) row.intra_host = false;
      });
    }
    rows.push_back(std::move(row));
    return absl::OkStatus();
  };
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    NMESH_RETURN_IF_ERROR(add(layout.axis_names()[axis], layout, mesh::AxisSet::Of({axis})));
  }
  for (const mesh::FlattenedGroup& group : plan.flattened()) {
    NMESH_RETURN_IF_ERROR(add(group.name, layout, group.axes));
  }
  if (plan.moe_mesh().has_value()) {
    for (const char* name : {"ep_shard", "ep"}) {
      NMESH_ASSIGN_OR_RETURN(mesh::GroupRef ref, plan.ResolveGroup(name));
      NMESH_RETURN_IF_ERROR(add(name, plan.moe_mesh()->layout, ref.axes));
    }
  }
  return rows;
}

std::vector<std::string> CrossHostWarnings(std::string_view mesh_label,
                                           const std::vector<GroupPlacement>& placement) {
  std::vector<std::string> warnings;
  for (const GroupPlacement& row : placement) {
    if ((row.name == "tp" || row.name == "cp") && !row.intra_host) {
      warnings.push_back(absl::StrFormat(
          "mesh '%s': %s groups span hosts; keep %s within a node (--placement pack orders the "
          "ranks by host, so that each host holds whole %s groups when its ranks allow)",
          mesh_label, row.name, row.name, row.name));
    }
  }
  return warnings;
}

}  // namespace nmesh::job
