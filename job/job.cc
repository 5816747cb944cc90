#include "nmesh/job/job.h"

#include <signal.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/build_config.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/store/store.h"
#include "nmesh/comm/store_exchange.h"
#include "nmesh/job/launch.h"
#include "nmesh/job/placement.h"
#include "nmesh/job/startup.h"
#if NMESH_HAVE_GLOO
#include "nmesh/comm/gloo/communicator.h"
#endif
#if NMESH_HAVE_NCCL
#include "nmesh/comm/nccl/bootstrap.h"
#include "nmesh/comm/nccl/communicator.h"
#include "nmesh/comm/nccl/runtime.h"
#endif

namespace nmesh::job {
namespace {

using comm::Communicator;

absl::StatusOr<std::vector<JobMesh>> PlanAll(const MeshOptions& options, int64_t world,
                                             bool all_sections) {
  NMESH_ASSIGN_OR_RETURN(std::vector<MeshSpec> specs,
                         ResolveMeshSpecs(options, world, all_sections));
  std::vector<JobMesh> meshes;
  for (MeshSpec& spec : specs) {
    JobMesh job_mesh;
    NMESH_ASSIGN_OR_RETURN(mesh::MeshPlan plan, PlanMeshSpec(spec));
    if (plan.world_size() > world) {
      // Name what asked for the larger world: the world size, the rank list, or the sizes.
      std::string what = spec.label == "flags" ? "the mesh given by the flags"
                                               : absl::StrFormat("mesh '%s'", spec.label);
      if (options.sizes.world_size.has_value()) {
        what = absl::StrFormat("--world %d", *options.sizes.world_size);
      } else if (options.ranks.has_value()) {
        what = absl::StrFormat("--ranks (highest rank %d)", plan.world_size() - 1);
      }
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s needs a world of %d ranks, but this job has %d (run it with mpirun -np %d, or "
          "change %s)",
          what, plan.world_size(), world, plan.world_size(),
          options.sizes.world_size.has_value() ? "--world" : "the mesh's sizes or ranks"));
    }
    job_mesh.spec = std::move(spec);
    job_mesh.plan = std::move(plan);
    meshes.push_back(std::move(job_mesh));
  }
  return meshes;
}

// Whether this rank has a GPU for its local rank.
absl::Status CheckLocalGpu(const comm::Topology& topo) {
#if NMESH_HAVE_NCCL
  NMESH_ASSIGN_OR_RETURN(int devices, comm::nccl::VisibleCudaDevices());
  if (topo.local_rank >= devices) {
    return absl::FailedPreconditionError(
        absl::StrFormat("host '%s' runs %d ranks but only %d CUDA devices are visible",
                        topo.host_names[static_cast<size_t>(topo.rank)], topo.local_size, devices));
  }
  return absl::OkStatus();
#else
  (void)topo;
  return absl::FailedPreconditionError("nmesh was built without NCCL");
#endif
}

// Orders each mesh's ranks by host, then local rank (PackByHost), and plans it again when the
// order changes.
absl::Status PackMeshes(std::vector<JobMesh>& meshes, const comm::Topology& topo, int64_t world) {
  for (JobMesh& job_mesh : meshes) {
    const mesh::Layout& layout = job_mesh.plan->device_mesh();
    std::vector<int64_t> ranks(static_cast<size_t>(layout.size()));
    for (int64_t p = 0; p < layout.size(); ++p) {
      ranks[static_cast<size_t>(p)] = layout.RankAtPosition(p);
    }
    NMESH_ASSIGN_OR_RETURN(std::vector<int64_t> packed, PackByHost(ranks, topo.host_names));
    if (packed == ranks) continue;
    MeshSpec& spec = job_mesh.spec;
    spec.request.sizes.world_size = layout.size();
    spec.request.job_world_size = world;
    spec.request.ranks = std::move(packed);
    absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
    if (!plan.ok()) {
      return absl::Status(
          plan.status().code(),
          absl::StrFormat("--placement pack: mesh '%s': %s", spec.label, plan.status().message()));
    }
    job_mesh.plan = *std::move(plan);
  }
  return absl::OkStatus();
}

// Agreement over `world` of a step every rank took; the agreed failure is marked as such.
absl::Status Agree(Communicator& world, const absl::Status& local) {
  absl::Status agreed = comm::AgreeOnStatus(world, local);
  return agreed.ok() ? agreed : MarkAgreed(std::move(agreed));
}

}  // namespace

absl::StatusOr<BackendChoice> ParseBackendChoice(std::string_view name) {
  if (std::optional<BackendChoice> choice = ValueNamed<BackendChoice>(kBackendChoiceNames, name)) {
    return *choice;
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown backend '%s': expected %s",
                                                    std::string(name),
                                                    NameList<BackendChoice>(kBackendChoiceNames)));
}

std::string_view BackendChoiceName(BackendChoice choice) {
  return NameOf<BackendChoice>(kBackendChoiceNames, choice, "auto");
}

std::string NcclSettingsStatus(const comm::NcclSettingsMap& settings, const Backend& backend) {
  if (comm::NcclSettingsMapText(settings).empty()) return "none";
  if (backend.name == "nccl") return "applied";
  return absl::StrFormat("not applicable (%s backend)", backend.name);
}

absl::StatusOr<Backend> ChooseBackend(BackendChoice choice, Communicator& host_world,
                                      const comm::Topology& topo,
                                      std::optional<absl::Duration> timeout,
                                      int nccl_ranks_per_root, comm::Store* store) {
  const std::string choice_name(BackendChoiceName(choice));
  Backend backend;
  backend.world = &host_world;
  backend.name = std::string(host_world.backend());
  if (choice == BackendChoice::kMpi && store != nullptr) {
    return absl::InvalidArgumentError(
        "--backend mpi: a job launched over a store (--store, NMESH_STORE) runs without MPI; "
        "use --backend gloo, nccl or auto, or start it with mpirun and no store");
  }
  if (choice == BackendChoice::kGloo && store == nullptr) {
    return absl::InvalidArgumentError(
        "--backend gloo: gloo needs a store launch (--store URL or NMESH_STORE, with RANK and "
        "WORLD_SIZE in the environment); under mpirun use --backend mpi, nccl or auto");
  }
  if (choice == BackendChoice::kMpi || choice == BackendChoice::kGloo) {
    backend.reason = absl::StrCat("--backend ", choice_name);
    return backend;
  }
#if NMESH_HAVE_NCCL
  if (choice == BackendChoice::kAuto) {
    absl::Status gpus = comm::AgreeOnStatus(host_world, CheckLocalGpu(topo));
    if (!gpus.ok()) {
      backend.reason = absl::StrCat("auto: ", gpus.message());
      return backend;
    }
  }
  const comm::nccl::BootstrapOptions bootstrap{.ranks_per_root = nccl_ranks_per_root};
  const comm::nccl::NcclWorldOptions world_options{.comm = {.name = "world", .timeout = timeout},
                                                   .local_rank = topo.local_rank,
                                                   .bootstrap = bootstrap};
  absl::StatusOr<std::unique_ptr<Communicator>> nccl_world =
      store != nullptr ? comm::nccl::CreateWorld(*store, topo.rank, topo.size, world_options)
                       : comm::nccl::CreateWorld(host_world, world_options);
  if (!nccl_world.ok()) {
    return absl::Status(nccl_world.status().code(),
                        absl::StrFormat("--backend %s: cannot create the NCCL world: %s",
                                        choice_name, nccl_world.status().message()));
  }
  backend.owned = *std::move(nccl_world);
  backend.world = backend.owned.get();
  backend.name = "nccl";
  const std::string boot =
      comm::nccl::PlanBootstrap(host_world.size(), bootstrap, comm::nccl::LinkedNcclVersionCode())
          .reason;
  const std::string over = store != nullptr ? absl::StrCat(" over ", store->Describe()) : "";
  backend.reason = choice == BackendChoice::kAuto
                       ? absl::StrFormat("auto: every rank has a GPU (NCCL %s; bootstrap: %s%s)",
                                         comm::nccl::LinkedNcclVersion(), boot, over)
                       : absl::StrFormat("--backend nccl (bootstrap: %s%s)", boot, over);
  return backend;
#else
  (void)timeout;
  (void)nccl_ranks_per_root;
  if (choice == BackendChoice::kNccl) {
    return absl::InvalidArgumentError(
        "--backend nccl: this nmesh was built without NCCL (configure with NMESH_WITH_NCCL=ON "
        "where CUDA and NCCL are installed)");
  }
  backend.reason = absl::StrCat("auto: ", CheckLocalGpu(topo).message());
  return backend;
#endif
}

absl::StatusOr<std::unique_ptr<Communicator>> DefaultHostWorld(std::shared_ptr<comm::Store> store,
                                                               int rank, int size,
                                                               const comm::CommOptions& options,
                                                               absl::Duration rendezvous_timeout) {
#if NMESH_HAVE_GLOO
  return comm::gloo::WorldCommunicator(std::move(store), rank, size, options,
                                       {.rendezvous_timeout = rendezvous_timeout});
#else
  (void)rank;
  (void)rendezvous_timeout;
  if (size == 1) return comm::NewSelfCommunicator(options);
  return absl::FailedPreconditionError(absl::StrFormat(
      "a store launch of %d ranks needs the gloo backend for its host world, and this nmesh was "
      "built without gloo (store %s)",
      size, store->Describe()));
#endif
}

// How the ranks of a job meet (MPI or a store) for the steps of Job::Start that differ.
struct Job::Meeting {
  int rank = 0;
  int size = 1;
  StartupExchange* exchange = nullptr;
  comm::Store* store = nullptr;  // null under MPI
  // The host world, made once the ranks agree, by `deadline`.
  std::function<absl::StatusOr<std::unique_ptr<Communicator>>(std::optional<absl::Duration>,
                                                              absl::Time deadline)>
      host_world;
  // The topology, over the host world or the store, by `deadline`.
  std::function<absl::StatusOr<comm::Topology>(Communicator&, absl::Time deadline)> topology;
};

std::optional<absl::Duration> JobTimeout(const JobOptions& options,
                                         std::optional<absl::Duration> recipe) {
  if (options.no_timeout) return std::nullopt;
  if (options.timeout.has_value()) return options.timeout;
  if (options.recipe_timeout && recipe.has_value()) return recipe;
  return comm::kDefaultTimeout;
}

Job::~Job() { StopMonitor(); }

absl::StatusOr<std::unique_ptr<Job>> Job::Start(comm::mpi::Session& session,
                                                const JobOptions& options) {
  std::unique_ptr<StartupExchange> exchange = MpiStartupExchange(session);
  Meeting meeting{
      .rank = session.world_rank(),
      .size = session.world_size(),
      .exchange = exchange.get(),
      .host_world = [&session](std::optional<absl::Duration> timeout, absl::Time deadline)
          -> absl::StatusOr<std::unique_ptr<Communicator>> {
        // MPI_Comm_dup has no deadline: a rank stopped inside the agreement held it forever.
        NMESH_RETURN_IF_ERROR(MeetAfterAgreement(session, deadline));
        return comm::mpi::WorldCommunicator(session, {.name = "world", .timeout = timeout});
      },
      .topology = [](Communicator& world, absl::Time) { return comm::mpi::GetTopology(world); }};
  NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Job> job, StartWith(meeting, options));
  NMESH_RETURN_IF_ERROR(job->EnableMpiRecovery(session));
  return job;
}

absl::StatusOr<std::unique_ptr<Job>> Job::Start(const StoreLaunch& launch,
                                                const JobOptions& options) {
  if (launch.store == nullptr) {
    return absl::InvalidArgumentError("Job::Start: StoreLaunch::store is null");
  }
  comm::Store& store = *launch.store;
  std::shared_ptr<comm::Store> shared = launch.store;
  const LaunchEnvironment& env = launch.environment;
  std::unique_ptr<StartupExchange> exchange =
      StoreStartupExchange(store, env.rank, env.size, env.size_variable);
  const HostWorldFactory factory = launch.host_world ? launch.host_world : DefaultHostWorld;
  Meeting meeting{
      .rank = env.rank,
      .size = env.size,
      .exchange = exchange.get(),
      .store = &store,
      .host_world =
          [&](std::optional<absl::Duration> timeout, absl::Time deadline) {
            return factory(shared, env.rank, env.size, {.name = "world", .timeout = timeout},
                           deadline - absl::Now());
          },
      .topology = [&](Communicator&, absl::Time deadline) -> absl::StatusOr<comm::Topology> {
        NMESH_ASSIGN_OR_RETURN(std::string host, comm::LocalHostName());
        if (host.size() > comm::kMaxHostNameBytes) host.resize(comm::kMaxHostNameBytes);
        NMESH_ASSIGN_OR_RETURN(
            std::vector<std::string> hosts,
            comm::StoreAllGather(store, "hosts", env.rank, env.size, host, deadline));
        NMESH_ASSIGN_OR_RETURN(comm::Topology topo,
                               comm::TopologyFromHostNames(std::move(hosts), env.rank));
        // The launcher's local rank picks the GPU where it gave one (pods of one node have
        // host names of their own).
        if (env.local_rank.has_value()) topo.local_rank = *env.local_rank;
        if (env.local_size.has_value()) topo.local_size = *env.local_size;
        return topo;
      }};
  NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Job> job, StartWith(meeting, options));
  // Recovery meets at the job's store; the survivors of failure E make their world under the
  // prefix "recover/E/world", apart from every earlier world's keys.
  job->store_ = shared;
  job->recovery_channel_ = comm::StoreRecoveryChannel(shared);
  job->make_survivors_world_ =
      [shared, factory](int64_t epoch, int rank, int size, std::optional<absl::Duration> timeout,
                        absl::Time deadline) -> absl::StatusOr<std::unique_ptr<Communicator>> {
    NMESH_ASSIGN_OR_RETURN(
        std::shared_ptr<comm::Store> scoped,
        comm::store::WithPrefix(shared, absl::StrCat("recover/", epoch, "/world")));
    return factory(std::move(scoped), rank, size, {.name = "world", .timeout = timeout},
                   std::max(deadline - absl::Now(), absl::Seconds(1)));
  };
  if (options.on_failure != FailurePolicy::kAbort) {
    // A survivor's write to a dead peer's socket (gloo) raises SIGPIPE, which would kill it: a
    // job that recovers ignores the signal, unless the process handles it already.
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
    job->StartMonitor();
  }
  return job;
}

absl::StatusOr<std::unique_ptr<Job>> Job::StartWith(Meeting& meeting, const JobOptions& options) {
  std::unique_ptr<Job> job(new Job());
  job->options_ = options;
  job->rank_ = meeting.rank;
  job->world_size_ = meeting.size;
  job->launch_rank_ = meeting.rank;
  job->launch_size_ = meeting.size;
  job->launch_ranks_.resize(static_cast<size_t>(meeting.size));
  for (int r = 0; r < meeting.size; ++r) job->launch_ranks_[static_cast<size_t>(r)] = r;
  job->store_launched_ = meeting.store != nullptr;

  // 1. Specs and plans, then the start-up agreement: from here on every rank has the same plans.
  absl::StatusOr<std::vector<JobMesh>> planned =
      PlanAll(options.mesh, job->world_size_, options.all_sections);
  std::optional<absl::Duration> recipe_timeout;
  if (planned.ok() && !planned->empty()) recipe_timeout = planned->front().spec.timeout;
  const std::optional<absl::Duration> timeout = JobTimeout(options, recipe_timeout);
  // What the caller or the recipe asked for: the start-up deadline follows it, not the default.
  const std::optional<absl::Duration> asked =
      options.no_timeout
          ? std::nullopt
          : (options.timeout.has_value() || !options.recipe_timeout ? options.timeout
                                                                    : recipe_timeout);
  job->timeout_ = timeout;
  absl::Status local = planned.status();
  const absl::Status timeout_ok = CheckTimeout(timeout, "the job's timeout");
  const absl::Status startup_ok = CheckTimeout(options.startup_timeout, "the start-up timeout");
  local.Update(timeout_ok);
  local.Update(startup_ok);
  std::vector<const mesh::MeshPlan*> plans;
  std::vector<std::string> names;
  // The NCCL settings are part of what the ranks agree on: each split's config depends on them.
  std::string nccl;
  if (planned.ok()) {
    for (const JobMesh& job_mesh : *planned) {
      plans.push_back(&*job_mesh.plan);
      names.push_back(MeshName(job_mesh.spec));
      if (const std::string text = comm::NcclSettingsMapText(job_mesh.spec.nccl); !text.empty()) {
        absl::StrAppend(&nccl, " nccl[", names.back(), "]=", text);
      }
      if (job_mesh.spec.comm_sharing != config::CommSharing::kPartition) {
        absl::StrAppend(&nccl, " comm_sharing[", names.back(), "]=",
                        std::string(NameOf<config::CommSharing>(config::kCommSharingNames,
                                                                job_mesh.spec.comm_sharing)));
      }
    }
  }
  const absl::Duration startup_timeout =
      StartupTimeout(startup_ok.ok() ? options.startup_timeout : std::nullopt,
                     timeout_ok.ok() ? asked : std::nullopt);
  const absl::Time startup_deadline = absl::Now() + startup_timeout;
  job->startup_timeout_ = startup_timeout;
  NMESH_RETURN_IF_ERROR(AgreeAtStartup(
      *meeting.exchange,
      MakeStartupRecord(
          absl::StrFormat("%s placement=%s nccl_ranks_per_root=%d%s%s", options.command,
                          PlacementName(options.mesh.placement), options.nccl_ranks_per_root, nccl,
                          options.check_arguments ? " check_arguments" : ""),
          BackendChoiceName(options.backend), timeout, local, plans, names),
      startup_timeout));
  job->meshes_ = *std::move(planned);
  // The host world's timeout bounds its own creation; over a store, at least the start-up's.
  // Ranks that passed the agreement meet again within the start-up deadline, or at least a
  // start-up timeout from now.
  const absl::Time meet_by = std::max(startup_deadline, absl::Now() + kMinStartupTimeout);
  NMESH_ASSIGN_OR_RETURN(job->host_world_, meeting.host_world(timeout, meet_by));
  Communicator& world = *job->host_world_;

  if (options.warn && job->rank_ == 0) {
    for (const JobMesh& job_mesh : job->meshes_) {
      for (const std::string& warning : job_mesh.spec.warnings) options.warn(warning);
    }
  }

  // 2. Topology and backend.
  NMESH_ASSIGN_OR_RETURN(job->topology_, meeting.topology(world, meet_by));
  absl::StatusOr<Backend> backend = ChooseBackend(options.backend, world, job->topology_, timeout,
                                                  options.nccl_ranks_per_root, meeting.store);
  if (!backend.ok()) return MarkAgreed(backend.status());
  job->backend_ = *std::move(backend);
  for (JobMesh& job_mesh : job->meshes_) {
    job_mesh.nccl_status = NcclSettingsStatus(job_mesh.spec.nccl, job->backend_);
  }

  // The meshes' ranks ordered by host, when asked: every rank holds the same host names, so
  // every rank reaches the same plans (or the same error).
  job->placement_ = options.mesh.placement;
  if (options.mesh.placement == Placement::kPack) {
    absl::Status packed = PackMeshes(job->meshes_, job->topology_, job->world_size_);
    if (!packed.ok()) return MarkAgreed(std::move(packed));
  }

  NMESH_RETURN_IF_ERROR(job->BuildMeshes());
  return job;
}

absl::Status Job::BuildMeshes() {
  // 3. Meshes: every rank builds every mesh, in order.
  for (JobMesh& job_mesh : meshes_) {
    const std::optional<absl::Duration> mesh_timeout = JobTimeout(options_, job_mesh.spec.timeout);
    const absl::Time start = absl::Now();
    absl::StatusOr<mesh::DeviceMesh> built =
        mesh::DeviceMesh::Create(*job_mesh.plan, *backend_.world,
                                 {.name = MeshName(job_mesh.spec),
                                  .timeout = mesh_timeout,
                                  // A job that recovers gets its failures back as statuses:
                                  // on MPI, operations poll instead of the watchdog ending it.
                                  .interruptible = options_.on_failure != FailurePolicy::kAbort,
                                  .nccl = job_mesh.spec.nccl,
                                  .comm_sharing = job_mesh.spec.comm_sharing,
                                  .check_arguments = options_.check_arguments,
                                  // Two models in one process: their axes' messages name the model.
                                  .qualify_names = meshes_.size() > 1});
    if (!built.ok()) {
      // Disagreement and size errors are found by every rank together (InvalidArgument);
      // anything else may leave the others inside a split.
      if (IsConfigError(built.status())) return MarkAgreed(built.status());
      return built.status();
    }
    job_mesh.build_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    job_mesh.mesh = *std::move(built);
  }

  // 4. Contexts, on members; a context error is the config's, so every rank learns it.
  if (!options_.build_contexts) return absl::OkStatus();
  absl::Status contexts;
  for (JobMesh& run : meshes_) {
    if (!run.mesh->is_member() || !contexts.ok()) continue;
    absl::StatusOr<mesh::MeshContext> context = mesh::MeshContext::FromMeshes(
        *run.mesh, run.mesh->moe_mesh(), run.spec.strategy_config, run.spec.pipeline, run.spec.moe,
        run.spec.activation_checkpointing);
    if (context.ok()) {
      run.context = *std::move(context);
    } else {
      contexts = absl::Status(
          context.status().code(),
          absl::StrFormat("mesh '%s': %s", run.spec.label, context.status().message()));
    }
  }
  return Agree(*host_world_, contexts);
}

absl::StatusOr<comm::Communicator*> JobMesh::Comm(std::string_view name) const {
  if (!mesh.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("mesh '%s' has not been built, so it has no '%s' group", spec.label, name));
  }
  return mesh->Comm(name);
}

JobMesh* Job::my_mesh() {
  for (JobMesh& m : meshes_) {
    if (m.is_member()) return &m;
  }
  return nullptr;
}

const JobMesh* Job::my_mesh() const { return const_cast<Job*>(this)->my_mesh(); }

}  // namespace nmesh::job
