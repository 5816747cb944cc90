// A job's start-up as a library: from a recipe and/or explicit sizes to live meshes and their
// contexts on every rank, over MPI or NCCL. This is what `nmesh run` and `nmesh bench` do before
// they verify or measure, and what an engine does at start-up:
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<comm::mpi::Session> session,
//                          comm::mpi::Session::Init(&argc, &argv));
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<job::Job> job,
//                          job::Job::Start(*session, {.mesh = {.config_path = "recipe.yaml"}}));
//   job::JobMesh& student = job->meshes()[0];
//   if (student.mesh->is_member()) {
//     NMESH_ASSIGN_OR_RETURN(comm::Communicator* tp, student.mesh->Comm("tp"));
//     std::vector<float> grad(1024, 1.0f);
//     NMESH_RETURN_IF_ERROR(
//         tp->AllReduce<float>(grad, absl::MakeSpan(grad), comm::ReduceOp::kSum));
//     int64_t dp = student.context->dp_size().value_or(1);
//   }
//
// Start is collective over MPI_COMM_WORLD: every rank calls it with the same options. The caller
// owns MPI (the Session), which must outlive the job; it stays usable after Start fails, so that
// the caller can end the job (AbortJob) or exit in order.
//
// A job launched without MPI (torchrun, Kubernetes, srun) starts over a store instead, and never
// initialises MPI; its host world is gloo's, and its meshes run on gloo or NCCL:
//
//   NMESH_ASSIGN_OR_RETURN(job::LaunchEnvironment env, job::ReadLaunchEnvironment());
//   NMESH_ASSIGN_OR_RETURN(std::shared_ptr<comm::Store> store,
//                          job::OpenJobStore("redis://10.0.0.1:6379/job1"));
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<job::Job> job,
//                          job::Job::Start({.store = store, .environment = env},
//                                          {.mesh = {.config_path = "recipe.yaml"}}));
//
// Its failures sort the same way; a failure that is not agreed ends only this process (no
// launcher ends the others: they fail at their own deadline, naming this rank).
//
// Errors. A failure is either agreed on by every rank (a config error in the recipe or the values,
// ranks that disagree on the meshes, a backend that cannot be used): every rank gets the same
// status, and IsAgreed(status) is true, so every rank can exit in order; or it is local to this
// rank (a communication failure or timeout) while others may be blocked in a collective waiting
// for it, and IsAgreed(status) is false: the caller should end the whole job (MPI_Abort, e.g.
// comm::mpi::Session::AbortJob).
//
// Thread safety: one thread per process calls Start; a Job is used like its communicators (see
// comm/communicator.h).
#ifndef NMESH_JOB_JOB_H_
#define NMESH_JOB_JOB_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/base/enum_names.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/recovery_channel.h"
#include "nmesh/comm/store.h"
#include "nmesh/comm/topology.h"
#include "nmesh/job/environment.h"
#include "nmesh/job/recovery.h"
#include "nmesh/job/spec.h"
#include "nmesh/job/startup.h"
#include "nmesh/mesh/context.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::job {

// IsAgreed and MarkAgreed (whether every rank holds the same error) are in job/startup.h.

// Which backend the meshes are built over.
enum class BackendChoice {
  // NCCL when nmesh was built with it and every rank sees a GPU for its local rank; otherwise the
  // host world's backend: MPI under mpirun, gloo under a store launch.
  kAuto,
  kMpi,
  kNccl,
  // The host world of a store launch (gloo); a job started over MPI cannot use it.
  kGloo,
};

// The name of each choice, in the order messages list them (base/enum_names.h).
inline constexpr NamedValue<BackendChoice> kBackendChoiceNames[] = {{BackendChoice::kAuto, "auto"},
                                                                    {BackendChoice::kMpi, "mpi"},
                                                                    {BackendChoice::kNccl, "nccl"},
                                                                    {BackendChoice::kGloo, "gloo"}};

// "auto", "mpi", "nccl" or "gloo"; InvalidArgument naming the value otherwise.
absl::StatusOr<BackendChoice> ParseBackendChoice(std::string_view name);
std::string_view BackendChoiceName(BackendChoice choice);

// The communicator the meshes are built over, and why it was chosen.
struct Backend {
  // The NCCL world, when NCCL was chosen; otherwise null and `world` is the host world.
  std::unique_ptr<comm::Communicator> owned;
  comm::Communicator* world = nullptr;
  std::string name;  // "mpi", "gloo", "nccl" (or "self": a store launch of one rank without gloo)
  // e.g. "--backend mpi", "auto: nmesh was built without NCCL", "auto: every rank has a GPU (NCCL
  // 2.28.9)".
  std::string reason;
};

// Collective over `host_world` (MPI's, or gloo's under a store launch): chooses the backend and
// creates its world communicator (NCCL: one GPU per local rank, from `topology`). Every rank gets
// the same answer. kNccl without NCCL built: InvalidArgument; NCCL without a GPU or failing to
// start: FailedPrecondition or the NCCL error, on every rank. `store`: the job's store under a
// store launch (null under MPI): NCCL then bootstraps over it, kMpi is InvalidArgument; without
// one, kGloo is InvalidArgument.
// `nccl_ranks_per_root`: one NCCL bootstrap root per this many ranks (ncclCommInitRankScalable
// where the NCCL has it and the job is larger; one root otherwise), named in Backend::reason.
absl::StatusOr<Backend> ChooseBackend(BackendChoice choice, comm::Communicator& host_world,
                                      const comm::Topology& topology,
                                      std::optional<absl::Duration> timeout,
                                      int nccl_ranks_per_root = 128, comm::Store* store = nullptr);

// Makes the host world of a store launch from the job's store: collective over the `size` ranks,
// within `rendezvous_timeout`.
using HostWorldFactory = std::function<absl::StatusOr<std::unique_ptr<comm::Communicator>>(
    std::shared_ptr<comm::Store> store, int rank, int size, const comm::CommOptions& options,
    absl::Duration rendezvous_timeout)>;

// The host world a store launch uses by default: gloo's (comm::gloo::WorldCommunicator) when
// nmesh was built with gloo; otherwise a one-rank job gets a self communicator and a larger one
// FailedPrecondition.
absl::StatusOr<std::unique_ptr<comm::Communicator>> DefaultHostWorld(
    std::shared_ptr<comm::Store> store, int rank, int size, const comm::CommOptions& options,
    absl::Duration rendezvous_timeout);

// A job launched without MPI: its store and where this process stands in it.
struct StoreLaunch {
  // The job's store (OpenJobStore in job/launch.h); shared with the host world.
  std::shared_ptr<comm::Store> store = nullptr;
  LaunchEnvironment environment;
  // How the host world is made over the store; null: DefaultHostWorld.
  HostWorldFactory host_world = nullptr;
};

// What a mesh's NCCL settings (comm/nccl_settings.h) come to on `backend`: "none" without
// settings, "applied" on NCCL, "not applicable (mpi backend)" on MPI (the settings are accepted,
// checked and agreed on, but MPI has no ncclConfig_t). Pure.
std::string NcclSettingsStatus(const comm::NcclSettingsMap& settings, const Backend& backend);

// One mesh of the job.
struct JobMesh {
  MeshSpec spec;
  std::optional<mesh::MeshPlan> plan;
  std::optional<mesh::DeviceMesh> mesh;
  // On members, when JobOptions::build_contexts: sizes read from the live communicators.
  std::optional<mesh::MeshContext> context;
  // This rank's DeviceMesh::Create time, in seconds.
  double build_seconds = 0;
  // NcclSettingsStatus of the spec's NCCL settings on the job's backend.
  std::string nccl_status;

  // The communicator of `name` (mesh->Comm); FailedPrecondition before the mesh is built.
  absl::StatusOr<comm::Communicator*> Comm(std::string_view name) const;
  // Whether this rank is one of the mesh's (false before it is built).
  bool is_member() const { return mesh.has_value() && mesh->is_member(); }
};

struct JobOptions {
  MeshOptions mesh;
  // What this rank runs, in words every rank must match exactly (the CLI gives its verb and the
  // options that change what the ranks do, e.g. "bench op=all_reduce sizes=8..1048576"; an
  // engine may give its own configuration's digest). Compared at start-up.
  std::string command = "job";
  // How long the start-up agreement waits for every rank to arrive (see StartupTimeout in
  // job/startup.h for the default).
  std::optional<absl::Duration> startup_timeout = std::nullopt;
  BackendChoice backend = BackendChoice::kAuto;
  // The timeout of every communicator (the world's and the meshes'); overrides the recipe's
  // dist_env.timeout_minutes. Neither given: comm::kDefaultTimeout (10 minutes).
  std::optional<absl::Duration> timeout = std::nullopt;
  // Without `timeout`, whether the recipe's dist_env.timeout_minutes applies.
  bool recipe_timeout = true;
  // The caller's explicit opt-out: no communicator timeout at all (over `timeout`, the recipe and
  // the default). A collective a rank never joins then hangs the job with no report.
  bool no_timeout = false;
  // One NCCL bootstrap root per this many ranks (the NCCL backend only; see ChooseBackend).
  int nccl_ranks_per_root = 128;
  // CommOptions::check_arguments for every communicator of the meshes (mesh::DeviceMeshOptions):
  // the ranks compare each collective's arguments first, and a mismatch (a count differing on one
  // rank) fails on every rank instead of returning wrong data. A debugging aid.
  bool check_arguments = false;
  // Build both meshes of a recipe with a teacher section (student first).
  bool all_sections = true;
  // Make the MeshContext of every mesh this rank is a member of (agreed on by every rank).
  bool build_contexts = true;
  // What the job does when a communicator fails (job/recovery.h): kAbort ends it (Recover returns
  // the failure); kRebuild and kShrink make Recover agree with the other ranks and build the
  // meshes again, and start a thread that revokes the meshes as soon as any rank announces a
  // failure (so that a rank blocked in, or late to, an operation fails at once, naming it). Under
  // a store launch such a job ignores SIGPIPE when the process left it at its default (a write
  // to a dead peer's socket would otherwise end a survivor).
  FailurePolicy on_failure = FailurePolicy::kAbort;
  // With kShrink: how long the survivors' meeting waits after the last rank arrived before it
  // counts the ranks still missing as dead.
  absl::Duration recovery_quiet = absl::Seconds(1);
  // Called on rank 0 with each recipe warning (e.g. a dropped `pipeline:` block, naming
  // file:line:col) once the ranks agree on the plans, before any mesh is built. Unset: ignored
  // (they stay in JobMesh::spec.warnings).
  std::function<void(const std::string&)> warn = nullptr;
};

// The timeout of a job's communicators: none with `no_timeout`; else `timeout`, else the recipe's
// (`recipe`, when `use_recipe`), else comm::kDefaultTimeout.
std::optional<absl::Duration> JobTimeout(const JobOptions& options,
                                         std::optional<absl::Duration> recipe);

class Job {
 public:
  // The whole start-up, as one rank of the job:
  //   1. The mesh specs from the options and their plans, then the start-up agreement
  //      (AgreeAtStartup in job/startup.h): within the start-up deadline every rank learns that
  //      all ranks arrived and agree on the command, the backend choice, the timeout and the
  //      meshes, or every rank gets the same error (a missing rank is named, and ends the job).
  //      Only then the MPI world is created.
  //   2. Topology (host names, local ranks) and the backend (ChooseBackend); under
  //      Placement::kPack, each mesh's ranks ordered by host, then local rank, and planned again.
  //   3. DeviceMesh::Create for each mesh, in order, timed; the moe mesh with it.
  //   4. With build_contexts, the MeshContext of each mesh on its members.
  // See the overview for how errors are told apart (IsAgreed).
  static absl::StatusOr<std::unique_ptr<Job>> Start(comm::mpi::Session& session,
                                                    const JobOptions& options);
  // The same start over a store (see the overview): the agreement meets at the store
  // (StoreStartupExchange), the host names are exchanged through it (topology: from the names,
  // with the launcher's local rank when it gave one), and the host world is made from it. Never
  // initialises MPI.
  static absl::StatusOr<std::unique_ptr<Job>> Start(const StoreLaunch& launch,
                                                    const JobOptions& options);

  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }
  // The host world, whatever the backend: MPI's under mpirun, gloo's under a store launch; for
  // exchanging reports between hosts.
  comm::Communicator& host_world() { return *host_world_; }
  // host_world(), by its name from before store launches.
  comm::Communicator& mpi_world() { return *host_world_; }
  // Whether the job was started over a store (StoreLaunch).
  bool store_launched() const { return store_launched_; }
  const comm::Topology& topology() const { return topology_; }
  const Backend& backend() const { return backend_; }
  // In spec order: the student (or the only mesh) first.
  std::vector<JobMesh>& meshes() { return meshes_; }
  const std::vector<JobMesh>& meshes() const { return meshes_; }
  // The first mesh (the student, or the only one): `job->model()` for `job->meshes().front()`.
  JobMesh& model() { return meshes_.front(); }
  const JobMesh& model() const { return meshes_.front(); }
  // The first mesh this rank is a member of (with a student and a teacher over disjoint ranks,
  // this rank's model); nullptr when it is a member of none.
  JobMesh* my_mesh();
  const JobMesh* my_mesh() const;
  // How the meshes' ranks were ordered over the hosts (MeshOptions::placement). Under kPack each
  // mesh's plan lists its ranks by host, then local rank, when that differs from the request.
  Placement placement() const { return placement_; }
  // The timeout the meshes were built with (JobTimeout); none only when opted out.
  std::optional<absl::Duration> timeout() const { return timeout_; }
  // The options the job was started with.
  const JobOptions& options() const { return options_; }
  // This rank and the job's size as launched: unchanged by Recover (rank() and world_size() are
  // the current host world's).
  int64_t launch_rank() const { return launch_rank_; }
  int64_t launch_size() const { return launch_size_; }
  // The launch rank of each rank of the current host world, in rank order (ascending).
  const std::vector<int64_t>& launch_ranks() const { return launch_ranks_; }
  // The failures recovered from so far (the epoch of the next one).
  int64_t epoch() const;

  // Recovers from a failure `cause` of one of this job's operations (job/recovery.h), per
  // options().on_failure. kAbort: returns `cause`. Otherwise collective over the ranks still
  // alive, every one of which calls it (spares included; a rank that learned of the failure from
  // AnnouncedFailure() may pass OK):
  //   1. announces "rank <launch rank>: <cause's message>" on the recovery channel unless a rank
  //      announced this failure already, and revokes every mesh and the host world here with the
  //      announced cause;
  //   2. meets the others over the channel: kRebuild waits for every rank until the start-up
  //      timeout (StartupTimeout) has passed, kShrink until none has arrived for
  //      options().recovery_quiet (the ranks that did not come are dead);
  //   3. makes a new host world over the survivors (rank = index among them, in launch order),
  //      chooses the backend again, and builds the meshes as Start does: kRebuild the same
  //      meshes (FailedPrecondition naming the dead ranks when one did not come), kShrink the
  //      meshes PlanShrink makes without the dead ranks' data-parallel slices.
  // Returns the same event on every survivor (RecoveryEvent::spare aside); rank(), world_size(),
  // host_world(), backend(), topology(), meshes() and model() are then the new ones (JobMesh
  // references and communicator pointers taken before are stale). A rank that arrives after the
  // others agreed without it gets FailedPrecondition. Any error leaves the job without meshes: end
  // it. FailedPrecondition under mpirun until the MPI recovery channel is wired in.
  absl::StatusOr<RecoveryEvent> Recover(const absl::Status& cause);
  // The failure announced for the current epoch by any rank, or nullopt (also under kAbort or
  // without a recovery channel). Never waits: for a rank that runs no operation (a spare) to learn
  // that it must call Recover.
  std::optional<std::string> AnnouncedFailure();

 private:
  Job() = default;
  struct Meeting;
  static absl::StatusOr<std::unique_ptr<Job>> StartWith(Meeting& meeting,
                                                        const JobOptions& options);
  // Steps 3 and 4 of Start (and Recover): every mesh of meshes_ (spec and plan set) built over
  // backend_.world, then the contexts.
  absl::Status BuildMeshes();
  // Revokes every mesh, the backend's world and the host world with `cause` (job/recover.cc).
  // Requires state_mu_.
  void RevokeAllLocked(const std::string& cause);
  // The monitor (job/recover.cc): started by Start when a policy recovers, stopped by ~Job.
  // Under mpirun, with a policy that recovers: the MPI recovery channel (collective) and the
  // survivors' world, then the monitor (job/recover.cc).
  absl::Status EnableMpiRecovery(comm::mpi::Session& session);
  void StartMonitor();
  void StopMonitor();
  void MonitorLoop();

  // Members are destroyed in reverse order: the meshes' communicators before the worlds they
  // were split from.
  JobOptions options_;
  int64_t rank_ = 0;
  int64_t world_size_ = 1;
  int64_t launch_rank_ = 0;
  int64_t launch_size_ = 1;
  std::vector<int64_t> launch_ranks_;
  // Launch ranks lost at earlier failures.
  std::vector<int64_t> gone_;
  std::optional<absl::Duration> timeout_;
  // The start-up deadline's length (StartupTimeout): how long a recovery's meeting and its new
  // world's rendezvous may take.
  absl::Duration startup_timeout_ = kDefaultStartupTimeout;
  Placement placement_ = Placement::kAsLaunched;
  bool store_launched_ = false;
  // The hooks of recovery, set by Start: the channel that outlives a failure (under a store
  // launch, comm::StoreRecoveryChannel over the job's store; under mpirun null until
  // comm::mpi::MpiRecoveryChannel is wired in here), and how the host world of the survivors of
  // failure `epoch` is made (this rank being `rank` of `size`, by `deadline`).
  std::shared_ptr<comm::Store> store_;  // the job's store; null under mpirun
  std::unique_ptr<comm::RecoveryChannel> recovery_channel_;
  std::function<absl::StatusOr<std::unique_ptr<comm::Communicator>>(
      int64_t epoch, int rank, int size, std::optional<absl::Duration> timeout,
      absl::Time deadline)>
      make_survivors_world_;
  std::unique_ptr<comm::Communicator> host_world_;
  comm::Topology topology_;
  Backend backend_;
  std::vector<JobMesh> meshes_;

  // Guards what the monitor reads: epoch_, revoked_epoch_, and (while revoked_epoch_ < epoch_)
  // the communicators it revokes.
  mutable std::mutex state_mu_;
  int64_t epoch_ = 0;
  int64_t revoked_epoch_ = -1;
  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  bool monitor_stop_ = false;  // guarded by monitor_mu_
  std::thread monitor_;
};

}  // namespace nmesh::job

#endif  // NMESH_JOB_JOB_H_
