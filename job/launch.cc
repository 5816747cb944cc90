#include "nmesh/job/launch.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/store/store.h"
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

// Bounds MPI's start (Session::Init) on this rank: MPI_Init waits for every process of the
// launcher's job, and one that left without starting MPI (a rank that printed --help, another
// program) would hold it forever. Past `limit` this process says so and exits 1; the launcher
// then ends the others.
class StartGuard {
 public:
  explicit StartGuard(absl::Duration limit) : limit_(limit), thread_([this] { Watch(); }) {}
  ~StartGuard() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
  }
  StartGuard(const StartGuard&) = delete;
  StartGuard& operator=(const StartGuard&) = delete;

 private:
  void Watch() {
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&done_), limit_)) return;
    const std::string line = absl::StrFormat(
        "nmesh: error: rank %d: MPI did not start within %s: a process of the job left without "
        "starting MPI (a rank that ran --help, --version or another verb, or another program) or "
        "is stopped (--startup-timeout-s sets how long the ranks wait)\n",
        LauncherRank(), absl::FormatDuration(limit_));
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
    std::_Exit(1);
  }

  absl::Mutex mu_;
  bool done_ = false;  // guarded by mu_
  absl::Duration limit_;
  std::thread thread_;
};

// MPI's own start takes seconds on a loaded host: a short --startup-timeout-s bounds the
// agreement, not this.
constexpr absl::Duration kMinMpiStart = absl::Seconds(60);

absl::StatusOr<std::unique_ptr<comm::mpi::Session>> StartMpi(absl::Duration limit) {
  StartGuard guard(std::max(limit, kMinMpiStart));
  return comm::mpi::Session::Init(nullptr, nullptr);
}

// The agreement of a rank that leaves before its job starts: `error` (a flag error) or OK (it
// runs `command`, e.g. "--help", and leaves), so that the ranks of a multi-program launch that
// start a job learn at once that this one will not.
FlagErrorOutcome AgreeBeforeLeaving(std::string_view command, const absl::Status& error) {
  FlagErrorOutcome outcome;
  outcome.status = error;
  outcome.rank = LauncherRank();
  if (MpiLauncherSize() <= 1) return outcome;
  absl::StatusOr<std::unique_ptr<comm::mpi::Session>> session = StartMpi(kDefaultStartupTimeout);
  if (!session.ok()) return outcome;
  outcome.rank = (*session)->world_rank();
  absl::Status agreed =
      AgreeAtStartup(**session, MakeStartupRecord(command, "", std::nullopt, error, {}, {}),
                     kDefaultStartupTimeout);
  if (!agreed.ok()) outcome.status = agreed;
  outcome.end_job = MustEndJob(agreed);
  outcome.session = *std::move(session);
  return outcome;
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
  if (!MpiRunning()) {
    std::fflush(nullptr);
    std::_Exit(exit_code);
  }
  comm::mpi::Session::AbortJob(exit_code);
}

bool MpiRunning() { return comm::mpi::Session::Running(); }

absl::StatusOr<std::shared_ptr<comm::Store>> OpenJobStore(std::string_view url,
                                                          const EnvironmentReader& environment) {
  NMESH_ASSIGN_OR_RETURN(std::shared_ptr<comm::Store> store, comm::store::OpenStore(url));
  // A Redis URL's path is the job's prefix already (OpenStore applied it).
  const std::string_view redis = "redis://";
  if (url.substr(0, redis.size()) == redis &&
      url.find('/', redis.size()) != std::string_view::npos) {
    return store;
  }
  const char* job_id = environment("NMESH_JOB_ID");
  if (job_id == nullptr || *job_id == '\0') return store;
  absl::StatusOr<std::shared_ptr<comm::Store>> prefixed = comm::store::WithPrefix(store, job_id);
  if (!prefixed.ok()) {
    return MarkEnvironmentError(absl::InvalidArgumentError(
        absl::StrFormat("environment variable NMESH_JOB_ID='%s' is not a store prefix: %s",
                        Abbreviate(job_id), prefixed.status().message())));
  }
  return prefixed;
}

FlagErrorOutcome AgreeOnFlagError(const absl::Status& flag_error,
                                  const std::optional<std::string>& store_url) {
  FlagErrorOutcome outcome;
  outcome.status = flag_error;
  outcome.rank = LauncherRank();
  if (store_url.has_value()) {
    absl::StatusOr<LaunchEnvironment> env = ReadLaunchEnvironment();
    if (!env.ok() || env->size <= 1) return outcome;
    absl::StatusOr<std::shared_ptr<comm::Store>> store = OpenJobStore(*store_url);
    if (!store.ok()) return outcome;
    outcome.rank = env->rank;
    std::unique_ptr<StartupExchange> exchange =
        StoreStartupExchange(**store, env->rank, env->size, env->size_variable);
    absl::Status agreed =
        AgreeAtStartup(*exchange, MakeStartupRecord("", "", std::nullopt, flag_error, {}, {}),
                       kDefaultStartupTimeout);
    if (!agreed.ok()) outcome.status = agreed;
    outcome.end_job = MustEndJob(agreed);
    return outcome;
  }
  return AgreeBeforeLeaving("", flag_error);
}

FlagErrorOutcome AgreeOnLeaving(std::string_view command) {
  return AgreeBeforeLeaving(command, absl::OkStatus());
}

MpiJob StartMpiJob(const JobOptions& options, absl::Duration late) {
  MpiJob started;
  started.rank = LauncherRank();
  absl::StatusOr<std::unique_ptr<comm::mpi::Session>> session = StartMpi(StartupTimeout(
      CheckTimeout(options.startup_timeout, "").ok() ? options.startup_timeout : std::nullopt,
      CheckTimeout(options.timeout, "").ok() ? options.timeout : std::nullopt));
  if (!session.ok()) {
    started.status = session.status();
    return started;
  }
  started.session = *std::move(session);
  started.rank = started.session->world_rank();
  started.started = true;
  if (late > absl::ZeroDuration()) absl::SleepFor(late);
  absl::StatusOr<std::unique_ptr<Job>> job = Job::Start(*started.session, options);
  if (!job.ok()) {
    started.status = job.status();
    return started;
  }
  started.job = *std::move(job);
  return started;
}

LaunchedJob StartLaunchedJob(const JobOptions& options, const std::optional<std::string>& store_url,
                             absl::Duration late) {
  if (!store_url.has_value()) return StartMpiJob(options, late);
  LaunchedJob started;
  started.rank = LauncherRank();
  absl::StatusOr<LaunchEnvironment> env = ReadLaunchEnvironment();
  if (!env.ok()) {
    started.status = env.status();
    return started;
  }
  started.rank = env->rank;
  absl::StatusOr<std::shared_ptr<comm::Store>> store = OpenJobStore(*store_url);
  if (!store.ok()) {
    started.status = store.status();
    return started;
  }
  started.store = *std::move(store);
  started.started = true;
  if (late > absl::ZeroDuration()) absl::SleepFor(late);
  absl::StatusOr<std::unique_ptr<Job>> job =
      Job::Start({.store = started.store, .environment = *env}, options);
  if (!job.ok()) {
    started.status = job.status();
    return started;
  }
  started.job = *std::move(job);
  return started;
}

}  // namespace nmesh::job
