// How one process of a launched job (mpirun, srun; or torchrun, Kubernetes, srun over a store)
// starts and how it fails: its launcher rank before MPI starts, which failures every rank reports
// together and which end the whole job, and the start (MPI or the store, then Job::Start) with its
// outcome sorted that way.
//
//   const absl::Status flags = Given<absl::Status>();  // the command line's error, before MPI
//   if (!flags.ok()) {
//     const FlagErrorOutcome agreed = AgreeOnFlagError(flags);
//     if (agreed.rank == 0 || agreed.end_job) std::cerr << agreed.status.message() << "\n";
//     if (agreed.end_job) EndJob(agreed.status, 1);
//     return agreed.status;  // exit 2 on every rank
//   }
//   MpiJob started = StartMpiJob({.mesh = {.config_path = "recipe.yaml"}});
//   if (MustEndJob(started.status)) EndJob(started.status, 1);  // others may be waiting for us
//   NMESH_RETURN_IF_ERROR(started.status);  // every rank holds this error: exit in order
//   Job& job = *started.job;
//
// A failure is agreed (IsAgreed in job/startup.h: every rank holds the same status, and may exit
// in order, rank 0 reporting it once) or local to this rank while others may be blocked in a
// collective waiting for it (MustEndJob: end the whole job).
#ifndef NMESH_JOB_LAUNCH_H_
#define NMESH_JOB_LAUNCH_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/store.h"
#include "nmesh/job/environment.h"
#include "nmesh/job/job.h"

namespace nmesh::job {

// The rank of this process in its launcher's job, read from the environment before MPI starts
// (OMPI_COMM_WORLD_RANK, PMIX_RANK, PMI_RANK, then torchrun's and Kubernetes' RANK, then
// SLURM_PROCID, the first set to a non-negative integer); 0 outside a launcher. Errors identical
// on every rank are printed by rank 0 only. Thread-safe (reads the environment).
int LauncherRank();
// The number of processes of the launcher's job (OMPI_COMM_WORLD_SIZE, PMI_SIZE, WORLD_SIZE,
// SLURM_NTASKS, the first set to a positive integer); 1 outside a launcher. Thread-safe.
int LauncherSize();

// Whether `status` is a configuration error (InvalidArgument, NotFound, OutOfRange: found from the
// flags and the recipe, identically on every rank); any other failure is a runtime one.
bool IsConfigError(const absl::Status& status);

// Whether a failed `status` is this rank's alone (not IsAgreed): other ranks may be blocked in a
// collective waiting for it, so the whole job must end (EndJob).
bool MustEndJob(const absl::Status& status);

// How long EndJob waits after a timeout (DeadlineExceeded) before ending the job: the other members
// of the same collective started it within moments of this rank and are timing out too, and each
// one's own report (its axis, operation and place in the group) is what tells an operator who is
// missing.
inline constexpr absl::Duration kTimeoutReportGrace = absl::Milliseconds(250);

// Ends the whole job after `status`, a failure of this rank alone: waits kTimeoutReportGrace after
// a timeout, then comm::mpi::Session::AbortJob(exit_code). Without MPI (a store launch) no
// launcher can end the others: this process exits with `exit_code`, and the others fail at their
// own deadlines, naming it. The caller reports the failure first.
[[noreturn]] void EndJob(const absl::Status& status, int exit_code);

// Whether MPI runs in this process (comm::mpi::Session::Running): false under a store launch.
bool MpiRunning();

// The store of a job launched without MPI, opened from `url` (comm::store::OpenStore:
// redis://HOST:PORT[/PREFIX], file:///DIR). The job's keys go under a prefix: the URL's path
// (redis), else NMESH_JOB_ID when set (InvalidArgument naming it when it is not a usable prefix),
// else none (its error is marked as one of the environment: IsEnvironmentError). InvalidArgument
// naming a URL that cannot be parsed; Unavailable naming a store that cannot be reached.
absl::StatusOr<std::shared_ptr<comm::Store>> OpenJobStore(
    std::string_view url, const EnvironmentReader& environment = ProcessEnvironment);

// A flag error found before MPI started, agreed on by the launcher's job.
struct FlagErrorOutcome {
  // The error to report: this rank's, or the lowest rank's when the ranks of a multi-program launch
  // differ; or the failure of the agreement itself.
  absl::Status status;
  // This rank in the job (the MPI world rank once MPI started, else LauncherRank()): only rank 0
  // reports an agreed error.
  int rank = 0;
  // The agreement failed (a rank missing, MPI failing): report `status` here and EndJob.
  bool end_job = false;
  // MPI, when it was started for the agreement: keep it until the error is reported (and the job
  // ended, when end_job).
  std::unique_ptr<comm::mpi::Session> session;
};

// Collective over the launcher's job when it has more than one process (LauncherSize): starts MPI
// and runs the start-up agreement (AgreeAtStartup in job/startup.h) with `flag_error` as this
// rank's configuration error, so that an error found on some ranks only is reported once, by rank
// 0, and the ranks with good flags end with it instead of waiting. Outside a launcher, or when MPI
// cannot start, returns `flag_error` at once. `flag_error` must be an error.
// With `store_url` (a store launch) the agreement meets at that store instead (never starting
// MPI); when the environment or the store fails, `flag_error` is returned at once, rank from
// LauncherRank().
FlagErrorOutcome AgreeOnFlagError(const absl::Status& flag_error,
                                  const std::optional<std::string>& store_url = std::nullopt);

// A job started over MPI (the session) or over a store (the store), and the job (destroyed
// first).
// Collective over the launcher's job like AgreeOnFlagError, for a rank that leaves without
// starting a job (it runs `command`, e.g. "--help" or "--version", and exits): the ranks of a
// multi-program launch that start a job learn at once that this one will not ("ranks disagree on
// the job: rank 0 runs 'run ...', rank 2 runs '--help'"), instead of waiting for it in MPI's
// start. `status` is OK when every rank leaves alike (each then does what it was asked), else the
// agreed error, which every rank reports like a flag error (rank 0 prints it, exit 2). Outside a
// launcher, returns OK at once.
FlagErrorOutcome AgreeOnLeaving(std::string_view command);

// A job started over MPI: the session and the job (destroyed first).
struct MpiJob {
  // OK, or why the start failed. Null session and store: MPI failed to start, or the store launch
  // failed before its agreement (the environment, the URL, the store), see `started`. Otherwise
  // null job, and `status` agreed or not (MustEndJob).
  absl::Status status;
  std::unique_ptr<comm::mpi::Session> session;
  std::shared_ptr<comm::Store> store;
  // This process's rank in the job when known (MPI's world rank, the launch environment's rank),
  // else LauncherRank().
  int rank = 0;
  // Whether the start reached the agreement (a session or a store was made); false: `status` is
  // this process's own (every rank reports its own).
  bool started = false;
  std::unique_ptr<Job> job;

  MpiJob() = default;
  MpiJob(MpiJob&&) = default;
  MpiJob& operator=(MpiJob&&) = default;
  ~MpiJob() { job.reset(); }
};
// The same, named for both launches.
using LaunchedJob = MpiJob;

// Starts MPI, then Job::Start with `options`, as one rank of the job; `late` (fault injection)
// delays this rank after MPI has started, before the start-up agreement. Collective over
// MPI_COMM_WORLD like Job::Start. MPI's own start is bounded by the start-up deadline
// (StartupTimeout), but at least 60 s: a process of the launcher's job that never starts MPI
// would hold the others in MPI_Init; past the bound this process names the cause on stderr and
// exits 1. The same bound (kDefaultStartupTimeout) holds in AgreeOnFlagError and AgreeOnLeaving.
MpiJob StartMpiJob(const JobOptions& options, absl::Duration late = absl::ZeroDuration());

// Without `store_url`, StartMpiJob. With one, a store launch: the launch environment
// (ReadLaunchEnvironment), the store (OpenJobStore), then Job::Start over them; MPI is never
// initialised. `late` as in StartMpiJob (after the store opened).
LaunchedJob StartLaunchedJob(const JobOptions& options, const std::optional<std::string>& store_url,
                             absl::Duration late = absl::ZeroDuration());

}  // namespace nmesh::job

#endif  // NMESH_JOB_LAUNCH_H_
