#include "nmesh/job/launch.h"

#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/time/clock.h"
#include "nmesh/job/startup.h"

namespace nmesh::job {
namespace {

// The first of `names` set to an integer of at least `min`, or `fallback`.
int IntFromEnvironment(std::initializer_list<const char*> names, long min, int fallback) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') continue;
    char* end = nullptr;
    const long number = std::strtol(value, &end, 10);
    if (*end == '\0' && number >= min) return static_cast<int>(number);
  }
  return fallback;
}

// The number of processes of an MPI launcher's job (not torchrun's): whether a flag error is agreed
// on over MPI.
int MpiLauncherSize() {
  return IntFromEnvironment({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}, /*min=*/1,
                            /*fallback=*/1);
}

}  // namespace

int LauncherRank() {
  // Open MPI, MPICH/Hydra and PMIx launchers, torchrun and Kubernetes, then Slurm's srun.
  return IntFromEnvironment(
      {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "RANK", "SLURM_PROCID"}, /*min=*/0,
      /*fallback=*/0);
}

int LauncherSize() {
  return IntFromEnvironment({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "WORLD_SIZE", "SLURM_NTASKS"},
                            /*min=*/1, /*fallback=*/1);
}

bool IsConfigError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
      return true;
    default:
      return false;
  }
}

bool MustEndJob(const absl::Status& status) { return !status.ok() && !IsAgreed(status); }

void EndJob(const absl::Status& status, int exit_code) {
  if (status.code() == absl::StatusCode::kDeadlineExceeded) absl::SleepFor(kTimeoutReportGrace);
  comm::mpi::Session::AbortJob(exit_code);
}

FlagErrorOutcome AgreeOnFlagError(const absl::Status& flag_error) {
  FlagErrorOutcome outcome;
  outcome.status = flag_error;
  outcome.rank = LauncherRank();
  if (MpiLauncherSize() <= 1) return outcome;
  absl::StatusOr<std::unique_ptr<comm::mpi::Session>> session =
      comm::mpi::Session::Init(nullptr, nullptr);
  if (!session.ok()) return outcome;
  outcome.rank = (*session)->world_rank();
  absl::Status agreed =
      AgreeAtStartup(**session, MakeStartupRecord("", "", std::nullopt, flag_error, {}, {}),
                     kDefaultStartupTimeout);
  if (!agreed.ok()) outcome.status = agreed;
  outcome.end_job = MustEndJob(agreed);
  outcome.session = *std::move(session);
  return outcome;
}

MpiJob StartMpiJob(const JobOptions& options, absl::Duration late) {
  MpiJob started;
  absl::StatusOr<std::unique_ptr<comm::mpi::Session>> session =
      comm::mpi::Session::Init(nullptr, nullptr);
  if (!session.ok()) {
    started.status = session.status();
    return started;
  }
  started.session = *std::move(session);
  if (late > absl::ZeroDuration()) absl::SleepFor(late);
  absl::StatusOr<std::unique_ptr<Job>> job = Job::Start(*started.session, options);
  if (!job.ok()) {
    started.status = job.status();
    return started;
  }
  started.job = *std::move(job);
  return started;
}

}  // namespace nmesh::job
