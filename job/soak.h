// A loop of steps that survives the failures of a job's communicators: each failed step is
// recovered from (job::Job::Recover, by the job's FailurePolicy) and run again on the new meshes.
// `nmesh soak` runs it with perf::RunSoakStep (one synthetic training step's communication); an
// engine may run its own step:
//
//   job::SoakReport report = job::RunSoak(*job, {.steps = 1000,
//                                               .step = [](job::Job& job, int64_t step) {
//                                                 return TrainStep(job, step);
//                                               }});
//   if (report.status == job::SoakStatus::kSpare) return absl::OkStatus();  // in no mesh now
//   for (const job::SoakEvent& event : report.events) Log(event.recovery);  // what failed
//
// Steps are numbered from 0. After a recovery the survivors go on from the lowest step any of them
// has not completed (a rank the failure reached late may have completed one more step than
// another: it runs that step again), so `steps` counts the steps completed by every member. The
// loop ends after `steps` completed steps or once `duration` has passed (whichever comes first; at
// least one must be given; a recovery is followed by one completed step even past `duration`). With
// `duration` the members of the mesh agree before each step whether any of them has reached it (a
// max over each of the mesh's axes), so that every member stops at the same step.
//
// This sits in job/ because it drives Job::Recover; the step is a callback, so job/ does not
// depend on perf/ (the bench and soak engine, which is not in the umbrella).
#ifndef NMESH_JOB_SOAK_H_
#define NMESH_JOB_SOAK_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/types.h"
#include "nmesh/job/job.h"
#include "nmesh/job/recovery.h"
#include "nmesh/mesh/device_mesh.h"

namespace nmesh::job {

enum class SoakStatus {
  // Every step asked for ran (after recoveries, if any).
  kCompleted,
  // A recovery left this rank alive but in none of the new meshes (RecoveryEvent::spare), or it
  // was in none of the job's first mesh to begin with; it stopped stepping.
  kSpare,
  // A step failed and was not recovered from (policy abort, or the recovery failed): see error.
  kFailed,
};

// "completed", "spare", "failed".
std::string_view SoakStatusName(SoakStatus status);

// One recovery of the loop.
struct SoakEvent {
  // The step this rank was running when it failed (steps it had completed).
  int64_t step = 0;
  RecoveryEvent recovery;
  // When the step (or an agreement of the loop) returned the error, and when the next step
  // completed (InfiniteFuture: none did).
  absl::Time failed_at = absl::InfinitePast();
  absl::Time resumed_at = absl::InfiniteFuture();
  // resumed_at - failed_at in seconds; -1 when no step completed after it.
  double resume_seconds() const;
};

struct SoakReport {
  SoakStatus status = SoakStatus::kCompleted;
  // Steps completed by this rank.
  int64_t steps = 0;
  std::vector<SoakEvent> events;
  // kFailed: the error (the step's, or the recovery's); OK otherwise.
  absl::Status error;
};

// The loop over its parts, without a Job: for tests, and for a caller with its own recovery.
struct SoakLoop {
  // Runs step `step` (required).
  std::function<absl::Status(int64_t step)> step;
  // With a duration: whether any member wants to stop, given this rank's wish (collective over
  // the members). Its error is a failure like a step's. Unset: this rank's wish alone.
  std::function<absl::StatusOr<bool>(bool want_stop)> agree_stop = nullptr;
  // Recovers from `cause`; unset: a failure ends the loop (kFailed). A DataLoss failure (a step
  // whose results were wrong) always ends it: a recovery would only repeat it.
  std::function<absl::StatusOr<RecoveryEvent>(const absl::Status& cause)> recover = nullptr;
  // After a recovery that left this rank in a mesh: the step every member goes on from, given the
  // steps this rank completed (collective over the new members; a rank may have completed one more
  // step than another before the failure reached it). Its error is recovered from like a step's.
  // Unset: each rank goes on from its own count.
  std::function<absl::StatusOr<int64_t>(int64_t completed)> agree_resume = nullptr;
  // Called after each completed step with the number completed so far.
  std::function<void(int64_t completed)> on_step = nullptr;
};

struct SoakOptions {
  std::optional<int64_t> steps = std::nullopt;
  std::optional<absl::Duration> duration = std::nullopt;
  // One step on the job's current meshes (required).
  std::function<absl::Status(Job& job, int64_t step)> step = nullptr;
  // Called after each completed step with the number completed so far.
  std::function<void(int64_t completed)> on_step = nullptr;
};

// InvalidArgument unless steps (>= 1) or duration (> 0) is given, and the step is set.
absl::Status ValidateSoakOptions(std::optional<int64_t> steps,
                                 std::optional<absl::Duration> duration, bool has_step);

// Runs `loop` until `steps` steps completed or `duration` passed (see the overview).
SoakReport RunSoakLoop(std::optional<int64_t> steps, std::optional<absl::Duration> duration,
                       const SoakLoop& loop);

// `value` reduced by `op` (max, min, sum) over every member of `mesh`: an all_reduce over each of
// its native axes with more than one rank, in order, which covers the mesh. Collective over the
// members; a non-member gets `value` back.
absl::StatusOr<int64_t> ReduceOverMesh(const mesh::DeviceMesh& mesh, int64_t value,
                                       comm::ReduceOp op);
// Whether `want` holds on any member of `mesh` (ReduceOverMesh with max).
absl::StatusOr<bool> AnyOverMesh(const mesh::DeviceMesh& mesh, bool want);

// RunSoakLoop over `job`: each failure goes to job.Recover unless the job's policy is abort
// (JobOptions::on_failure); the stop and resume agreements run over the job's first mesh. A rank
// that is not a member of that mesh returns kSpare at once.
SoakReport RunSoak(Job& job, const SoakOptions& options);

}  // namespace nmesh::job

#endif  // NMESH_JOB_SOAK_H_
