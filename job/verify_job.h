// Verifying every mesh of a started job, with the results of every rank gathered to rank 0 as
// plain structs: what `nmesh run` checks and reports, for an engine to call the same way.
//
//   Job& job = Given<Job>();  // started by Job::Start (job/job.h) or StartMpiJob (job/launch.h)
//   absl::StatusOr<JobVerification> result = VerifyJob(job);
//   if (!result.ok()) comm::mpi::Session::AbortJob(1);  // other ranks may be blocked: end the job
//   if (job.rank() == 0) {
//     for (const MeshVerification& m : result->meshes) {
//       for (const std::string& warning : m.warnings) std::cerr << warning << "\n";
//       for (const RankVerification& r : m.ranks) {
//         for (const std::string& line : r.mismatches) std::cerr << r.rank << ": " << line << "\n";
//       }
//     }
//   }
//   // The verdict is the same on every rank.
//   if (!result->verified) return absl::InternalError("a group differs from its plan");
//
// The results travel to rank 0 in the binary form of EncodeRankResults over a host gather-v
// (comm::HostGatherV) on the job's MPI world.
#ifndef NMESH_JOB_VERIFY_JOB_H_
#define NMESH_JOB_VERIFY_JOB_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nmesh/job/job.h"
#include "nmesh/job/verify.h"

namespace nmesh::job {

// A fault to inject for the reliability tests: rank `rank` leaves out its collectives on the
// communicator of group `group` (VerifyOptions::skip_group), so that the other members block.
struct FaultSkip {
  int64_t rank = 0;
  std::string group;
};

// Checks `skip` against the job: the rank must be in the world (of `world_size` ranks) and a
// member of a mesh of `meshes` that has the group. InvalidArgument naming "--fault-skip
// RANK:GROUP" otherwise. Pure: every rank reaches the same answer.
absl::Status CheckFaultSkip(const FaultSkip& skip, int64_t world_size,
                            const std::vector<JobMesh>& meshes);

struct VerifyJobOptions {
  // The job's fault, if any (checked by CheckFaultSkip first); only its rank acts on it.
  std::optional<FaultSkip> fault_skip = std::nullopt;
  // Called on the faulty rank just before it verifies a mesh it skips a group of (e.g. to say so
  // on stderr); may be empty.
  std::function<void(const JobMesh&)> on_fault_skip = nullptr;
};

// One mesh of the job, verified.
struct MeshVerification {
  // The slowest rank's DeviceMesh::Create time, in seconds (on every rank).
  double build_seconds = 0;
  // The rest is filled on rank 0 only.
  // Every member's results, in rank order.
  std::vector<RankVerification> ranks;
  // Whether every member's groups matched the plan.
  bool verified = true;
  // Every group kind placed on the job's hosts (PlacementOf).
  std::vector<GroupPlacement> placement;
  // Placement warnings for the user (CrossHostWarnings).
  std::vector<std::string> warnings;
};

struct JobVerification {
  // Whether every group of every rank verified: the same on every rank.
  bool verified = true;
  // In the order of Job::meshes().
  std::vector<MeshVerification> meshes;
};

// Verifies every mesh of `job`, in order: the slowest rank's build time (an all-reduce over the MPI
// world), then VerifyRank on its members (with RankVerification::host and local_rank filled).
// Then every rank's results go to rank 0 (a gather-v over the MPI world) and the verdict is
// all-reduced. Collective over the job's world and every communicator of its meshes: every rank
// calls it with the same options. Fails like the collectives (DeadlineExceeded after a timeout,
// ...), on this rank only: other ranks may be blocked, and the caller should end the job. Internal
// when a rank's results arrive damaged.
absl::StatusOr<JobVerification> VerifyJob(Job& job, const VerifyJobOptions& options = {});

// The wire form of one rank's results (one entry per mesh, std::nullopt where the rank is not a
// member), and back. Decode fails with Internal on a truncated or malformed text; `meshes` is the
// number of entries expected.
std::string EncodeRankResults(const std::vector<std::optional<RankVerification>>& results);
absl::StatusOr<std::vector<std::optional<RankVerification>>> DecodeRankResults(
    std::string_view text, size_t meshes);

}  // namespace nmesh::job

#endif  // NMESH_JOB_VERIFY_JOB_H_
