// Checking a built mesh against its plan, and where its groups fall on the hosts.
//
//   job::JobMesh& m = job->meshes()[0];
//   if (m.mesh->is_member()) {
//     NMESH_ASSIGN_OR_RETURN(job::RankVerification v,
//                            job::VerifyRank(*m.plan, *m.mesh, job->rank()));
//     if (!v.verified) std::cerr << v.mismatches.size() << " groups differ from the plan\n";
//   }
//   NMESH_ASSIGN_OR_RETURN(auto placement, job::PlacementOf(*m.plan, job->topology().host_names));
//   for (const job::GroupPlacement& g : placement)
//     std::cout << g.name << (g.intra_host ? " stays on a host\n" : " crosses hosts\n");
#ifndef NMESH_JOB_VERIFY_H_
#define NMESH_JOB_VERIFY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::job {

// One group of one rank as seen through its communicator.
struct GroupCheck {
  std::string name;  // native axis, flattened group or moe axis
  // The global ranks gathered through the communicator, in group order (empty when skipped).
  std::vector<int64_t> observed;
  bool verified = false;
};

// What one rank observed of one mesh.
struct RankVerification {
  int64_t rank = 0;
  // The rank's host name and local rank (comm::Topology); VerifyJob fills them, VerifyRank leaves
  // them empty.
  std::string host;
  int64_t local_rank = 0;
  // The rank's coordinate in the device mesh, in axis order.
  std::vector<int64_t> coordinate;
  // The device mesh's groups (native axes, then flattened), and the moe mesh's when it has one.
  std::vector<GroupCheck> groups;
  std::optional<std::vector<GroupCheck>> moe_groups;
  bool verified = true;
  // One line per group that does not match, e.g. "tp: communicator holds [0, 2], layout says
  // [0, 1]".
  std::vector<std::string> mismatches;
};

struct VerifyOptions {
  // Fault injection for reliability tests: this rank leaves out every collective on the
  // communicator of the group with this name, so that the other members block (and time out).
  std::optional<std::string> skip_group;
};

// Verifies every group of member `rank`: over each distinct communicator of the rank, an
// all-gather of the global ranks (compared, in order, with the planned group) and an all-reduce of
// their sum. Collective over every communicator of the rank: all members call it, visiting the
// groups in the plan's order, and a communicator shared by several names is used once. Fails like
// the collectives (DeadlineExceeded after a timeout, ...); FailedPrecondition for a non-member.
absl::StatusOr<RankVerification> VerifyRank(const mesh::MeshPlan& plan,
                                            const mesh::DeviceMesh& device_mesh, int64_t rank,
                                            const VerifyOptions& options = {});

// One kind of group of a mesh, and whether all of its groups stay inside one host.
struct GroupPlacement {
  std::string name;
  int64_t size = 1;   // ranks per group
  int64_t count = 1;  // groups of this kind (moe axes: per pipeline stage)
  bool intra_host = true;
};

// Every group kind of `plan` (native axes, flattened groups, moe axes), in that order, placed on
// the hosts of `host_names` (indexed by global rank, e.g. comm::Topology::host_names). Pure; no
// communication. FailedPrecondition when a mesh rank has no host name.
absl::StatusOr<std::vector<GroupPlacement>> PlacementOf(const mesh::MeshPlan& plan,
                                                        const std::vector<std::string>& host_names);

// Warnings for the groups whose traffic is heaviest (tp, cp) when they span hosts, one line per
// such group kind of `placement` (of the mesh labelled `mesh_label`), e.g. "mesh 'flags': tp
// groups span hosts; keep tp within a node (--placement pack ...)". Pure.
std::vector<std::string> CrossHostWarnings(std::string_view mesh_label,
                                           const std::vector<GroupPlacement>& placement);

}  // namespace nmesh::job

#endif  // NMESH_JOB_VERIFY_H_
