#include "nmesh/job/soak.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::job {

std::string_view SoakStatusName(SoakStatus status) {
  switch (status) {
    case SoakStatus::kCompleted:
      return "completed";
    case SoakStatus::kSpare:
      return "spare";
    case SoakStatus::kFailed:
      return "failed";
  }
  return "failed";
}

double SoakEvent::resume_seconds() const {
  if (resumed_at == absl::InfiniteFuture() || failed_at == absl::InfinitePast()) return -1;
  return absl::ToDoubleSeconds(resumed_at - failed_at);
}

absl::Status ValidateSoakOptions(std::optional<int64_t> steps,
                                 std::optional<absl::Duration> duration, bool has_step) {
  if (!steps.has_value() && !duration.has_value()) {
    return absl::InvalidArgumentError("a soak needs a number of steps, a duration or both");
  }
  if (steps.has_value() && *steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the number of steps must be at least 1, got %d", *steps));
  }
  if (duration.has_value() && *duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the duration must be positive, got %s", absl::FormatDuration(*duration)));
  }
  if (!has_step) return absl::InvalidArgumentError("a soak needs a step to run");
  return absl::OkStatus();
}

SoakReport RunSoakLoop(std::optional<int64_t> steps, std::optional<absl::Duration> duration,
                       const SoakLoop& loop) {
  SoakReport report;
  if (absl::Status valid = ValidateSoakOptions(steps, duration, loop.step != nullptr);
      !valid.ok()) {
    report.status = SoakStatus::kFailed;
    report.error = std::move(valid);
    return report;
  }
  const absl::Time start = absl::Now();
  // Events whose next completed step has not come yet.
  size_t unresumed = 0;
  while (!steps.has_value() || report.steps < *steps) {
    absl::Status failure;
    bool stop = false;
    if (duration.has_value()) {
      // A recovery is always followed by a completed step (the new meshes shown to work), even
      // past the duration.
      const bool want = absl::Now() - start >= *duration && unresumed == report.events.size();
      if (loop.agree_stop == nullptr) {
        stop = want;
      } else if (absl::StatusOr<bool> agreed = loop.agree_stop(want); agreed.ok()) {
        stop = *agreed;
      } else {
        failure = agreed.status();
      }
    }
    if (failure.ok() && stop) break;
    if (failure.ok()) failure = loop.step(report.steps);
    if (failure.ok()) {
      ++report.steps;
      const absl::Time now = absl::Now();
      for (; unresumed < report.events.size(); ++unresumed) {
        report.events[unresumed].resumed_at = now;
      }
      if (loop.on_step != nullptr) loop.on_step(report.steps);
      continue;
    }
    // Recover, then agree where to go on from; a failure of that agreement is recovered from too.
    while (!failure.ok()) {
      const absl::Time failed_at = absl::Now();
      // A wrong result is not a failure of the transport: recovering would only repeat it.
      if (loop.recover == nullptr || failure.code() == absl::StatusCode::kDataLoss) {
        report.status = SoakStatus::kFailed;
        report.error = std::move(failure);
        return report;
      }
      absl::StatusOr<RecoveryEvent> recovered = loop.recover(failure);
      if (!recovered.ok()) {
        report.status = SoakStatus::kFailed;
        report.error = recovered.status();
        return report;
      }
      report.events.push_back(
          {.step = report.steps, .recovery = *std::move(recovered), .failed_at = failed_at});
      if (report.events.back().recovery.spare) {
        report.status = SoakStatus::kSpare;
        return report;
      }
      failure = absl::OkStatus();
      if (loop.agree_resume != nullptr) {
        absl::StatusOr<int64_t> resume = loop.agree_resume(report.steps);
        if (!resume.ok()) {
          failure = resume.status();
        } else if (*resume < 0 || *resume > report.steps) {
          report.status = SoakStatus::kFailed;
          report.error = absl::InternalError(absl::StrFormat(
              "the survivors agreed to go on from step %d, but this rank completed %d", *resume,
              report.steps));
          return report;
        } else {
          report.steps = *resume;
        }
      }
    }
  }
  report.status = SoakStatus::kCompleted;
  return report;
}

absl::StatusOr<int64_t> ReduceOverMesh(const mesh::DeviceMesh& mesh, int64_t value,
                                       comm::ReduceOp op) {
  if (!mesh.is_member()) return value;
  for (const std::string& axis : mesh.axis_names()) {
    NMESH_ASSIGN_OR_RETURN(comm::Communicator * comm, mesh.Comm(axis));
    if (comm->size() <= 1) continue;
    int64_t reduced = 0;
    NMESH_RETURN_IF_ERROR(comm->AllReduce(&value, &reduced, 1, comm::DataType::kInt64, op));
    value = reduced;
  }
  return value;
}

absl::StatusOr<bool> AnyOverMesh(const mesh::DeviceMesh& mesh, bool want) {
  NMESH_ASSIGN_OR_RETURN(int64_t any, ReduceOverMesh(mesh, want ? 1 : 0, comm::ReduceOp::kMax));
  return any != 0;
}

SoakReport RunSoak(Job& job, const SoakOptions& options) {
  if (!job.model().is_member()) {
    SoakReport report;
    if (absl::Status valid =
            ValidateSoakOptions(options.steps, options.duration, options.step != nullptr);
        !valid.ok()) {
      report.status = SoakStatus::kFailed;
      report.error = std::move(valid);
      return report;
    }
    report.status = SoakStatus::kSpare;
    return report;
  }
  SoakLoop loop;
  if (options.step != nullptr) {
    loop.step = [&job, &options](int64_t step) { return options.step(job, step); };
  }
  // After a recovery the first mesh is the new one: read it at each call.
  loop.agree_stop = [&job](bool want) { return AnyOverMesh(*job.model().mesh, want); };
  loop.agree_resume = [&job](int64_t completed) {
    return ReduceOverMesh(*job.model().mesh, completed, comm::ReduceOp::kMin);
  };
  if (job.options().on_failure != FailurePolicy::kAbort) {
    loop.recover = [&job](const absl::Status& cause) { return job.Recover(cause); };
  }
  loop.on_step = options.on_step;
  return RunSoakLoop(options.steps, options.duration, loop);
}

}  // namespace nmesh::job
