// What a job does when one of its communicators fails, and how its meshes are made again without
// a restart (job::Job::Recover in job/job.h runs it):
//
//   absl::Status step = TrainStep(*job);
//   if (!step.ok() && job->options().on_failure != job::FailurePolicy::kAbort) {
//     NMESH_ASSIGN_OR_RETURN(job::RecoveryEvent event, job->Recover(step));
//     if (event.spare) return ServeAsSpare();          // no mesh holds this rank any more
//     // job->meshes() and their contexts are the new ones; event says what was lost.
//   }
//
// The policies:
//   - abort: the job ends (the default of `nmesh run`): under mpirun MPI_Abort after the
//     diagnosis, under a store launch every rank exits with its error.
//   - rebuild: the same meshes over the same ranks, once every rank is back (a rank that was late,
//     a collective a rank skipped, arguments that did not match). A rank that is dead makes it
//     fail.
//   - shrink: the meshes without the data-parallel slices that held dead ranks (PlanShrink); the
//     survivors that no new mesh holds are spares.
//
// Backends: gloo (store launch) survives dead peers and timeouts; MPI survives late ranks and
// mismatches, while a rank that dies under mpirun still ends the job (the launcher kills it);
// NCCL revokes and shrinks its communicators with ncclCommRevoke/ncclCommShrink where the library
// has them.
#ifndef NMESH_JOB_RECOVERY_H_
#define NMESH_JOB_RECOVERY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nmesh/base/enum_names.h"
#include "nmesh/job/spec.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::job {

enum class FailurePolicy { kAbort, kRebuild, kShrink };

// The name of each policy (the CLI's `--on-failure`), in the order messages list them.
inline constexpr NamedValue<FailurePolicy> kFailurePolicyNames[] = {
    {FailurePolicy::kAbort, "abort"},
    {FailurePolicy::kRebuild, "rebuild"},
    {FailurePolicy::kShrink, "shrink"}};

// "abort", "rebuild" or "shrink"; InvalidArgument naming the value and the choices otherwise.
absl::StatusOr<FailurePolicy> ParseFailurePolicy(std::string_view name);
std::string_view FailurePolicyName(FailurePolicy policy);

// One mesh of a job after a shrink.
struct ShrunkMesh {
  // The spec with the new sizes (request.sizes) and the new mesh's ranks (request.ranks), as
  // launch ranks of the job, in the new mesh's rank order.
  MeshSpec spec;
  // The launch ranks of the old mesh that survive but are in no kept slice.
  std::vector<int64_t> left_out;
  // What changed, in words: "dp_shard 4 -> 3 (dropped the slice of rank 5)".
  std::string change;
};

// The mesh of `spec` (planned as `plan`, over launch ranks) without the data-parallel slices that
// hold a rank of `dead`: HSDP replicas (dp_replicate) first when there are several, else dp_shard
// slices (FSDP2), dp slices (MegatronFSDP, DDP). The other sizes are kept; of the meshes the kept
// slices can fill, the largest that passes the checks PlanMeshSpec makes is taken, and its ranks
// keep their order within each slice. A mesh none of whose ranks is dead comes back unchanged.
// FailedPrecondition naming the mesh and the dead ranks when it cannot shrink: no data-parallel
// dimension holds the dead ranks apart, no slice survives, or no smaller size passes the checks
// (e.g. ep no longer divides). Pure.
absl::StatusOr<ShrunkMesh> PlanShrink(const MeshSpec& spec, const mesh::MeshPlan& plan,
                                      absl::Span<const int64_t> dead);

// What one recovery did, the same on every survivor (spare aside).
struct RecoveryEvent {
  FailurePolicy action = FailurePolicy::kRebuild;
  // The failure's number in the job (0 for the first).
  int64_t epoch = 0;
  // Launch ranks lost at this failure, ascending (empty when a rank was only late).
  std::vector<int64_t> dead;
  // The failure as first announced: "rank 3: all_reduce on axis 'tp' timed out after 2 s ...".
  std::string culprit;
  // The ranks of the job's meshes before and after (spares are not counted after).
  int64_t world_before = 0;
  int64_t world_after = 0;
  // Whether this rank is a spare: alive, but in none of the new meshes.
  bool spare = false;
  // What each sub-step took, in seconds: the survivors' meeting, making the new world and meshes.
  double agree_seconds = 0;
  double rebuild_seconds = 0;
};

}  // namespace nmesh::job

#endif  // NMESH_JOB_RECOVERY_H_
