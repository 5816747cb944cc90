#include "nmesh/tools/mesh_job.h"

#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/build_config.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/plan_command.h"
#if NMESH_HAVE_NCCL
#include "nmesh/comm/nccl/communicator.h"
#include "nmesh/comm/nccl/runtime.h"
#endif

namespace nmesh::tools {
namespace {

using comm::Communicator;
using nlohmann::ordered_json;

absl::StatusOr<std::vector<JobMesh>> PlanAll(const MeshOptions& options, int64_t world,
                                             bool all_sections) {
  NMESH_ASSIGN_OR_RETURN(std::vector<MeshSpec> specs,
                         ResolveMeshSpecs(options, world, all_sections));
  std::vector<JobMesh> meshes;
  for (MeshSpec& spec : specs) {
    JobMesh job_mesh;
    NMESH_ASSIGN_OR_RETURN(mesh::MeshPlan plan, PlanMeshSpec(spec));
    if (plan.world_size() > world) {
      // Name what asked for the larger world: --world, a rank of --ranks, or the mesh's sizes.
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
  return absl::FailedPreconditionError("nmesh was built without NCCL");
#endif
}

// Collective over `mpi_world`. Usage errors (NCCL not built) are InvalidArgument on every rank;
// NCCL setup failures are agreed on by every rank inside nccl::CreateWorld.
absl::StatusOr<JobBackend> ChooseBackend(const std::string& choice, Communicator& mpi_world,
                                         const comm::Topology& topo,
                                         std::optional<absl::Duration> timeout) {
  JobBackend backend;
  backend.world = &mpi_world;
  backend.name = "mpi";
  if (choice == "mpi") {
    backend.reason = "--backend mpi";
    return backend;
  }
#if NMESH_HAVE_NCCL
  if (choice == "auto") {
    absl::Status gpus = comm::AgreeOnStatus(mpi_world, CheckLocalGpu(topo));
    if (!gpus.ok()) {
      backend.reason = absl::StrCat("auto: ", gpus.message());
      return backend;
    }
  }
  absl::StatusOr<std::unique_ptr<Communicator>> nccl_world = comm::nccl::CreateWorld(
      mpi_world, {.comm = {.name = "world", .timeout = timeout}, .local_rank = topo.local_rank});
  if (!nccl_world.ok()) {
    return absl::Status(nccl_world.status().code(),
                        absl::StrFormat("--backend %s: cannot create the NCCL world: %s", choice,
                                        nccl_world.status().message()));
  }
  backend.owned = *std::move(nccl_world);
  backend.world = backend.owned.get();
  backend.name = "nccl";
  backend.reason = choice == "auto" ? absl::StrFormat("auto: every rank has a GPU (NCCL %s)",
                                                      comm::nccl::LinkedNcclVersion())
                                    : "--backend nccl";
  return backend;
#else
  if (choice == "nccl") {
    return absl::InvalidArgumentError(
        "--backend nccl: this nmesh was built without NCCL (configure with NMESH_WITH_NCCL=ON "
        "where CUDA and NCCL are installed)");
  }
  backend.reason = absl::StrCat("auto: ", CheckLocalGpu(topo).message());
  return backend;
#endif
}

std::string MeshName(const MeshSpec& spec) {
  return spec.label == "flags" ? "device_mesh" : spec.label;
}

}  // namespace

int ExitCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    default:
      return kExitRuntimeFailure;
  }
}

absl::StatusOr<std::optional<absl::Duration>> TimeoutFromFlag(std::optional<double> seconds) {
  if (!seconds.has_value()) return std::nullopt;
  return TimeoutFromNumber(*seconds, absl::Seconds(1), "seconds", "--timeout-s");
}

int JobReporter::Fail(const absl::Status& status) {
  if (rank_ == 0) {
    err_ << absl::StrFormat("nmesh: error: %s\n", status.message());
    if (json_) out_ << DumpJson(ordered_json{{"error", std::string(status.message())}}) << "\n";
  }
  return ExitCodeOf(status);
}

void JobReporter::Abort(const absl::Status& status) {
  // One write: several ranks report at once, and the launcher interleaves their writes.
  err_ << absl::StrFormat("nmesh: error: rank %d: %s\n", rank_, status.message());
  if (json_ && rank_ == 0) {
    out_ << DumpJson(ordered_json{{"error", std::string(status.message())}}) << "\n";
  }
  out_.flush();
  err_.flush();
  if (status.code() == absl::StatusCode::kDeadlineExceeded) absl::SleepFor(kTimeoutReportGrace);
  comm::mpi::Session::AbortJob(kExitRuntimeFailure);
}

void JobReporter::Note(const std::string& line) {
  if (rank_ == 0) err_ << absl::StrFormat("nmesh: %s\n", line);
}

MeshJob::~MeshJob() = default;

std::variant<std::unique_ptr<MeshJob>, int> MeshJob::Start(const MeshJobOptions& options, bool json,
                                                           std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::unique_ptr<comm::mpi::Session>> session =
      comm::mpi::Session::Init(nullptr, nullptr);
  if (!session.ok()) {
    err << absl::StrFormat("nmesh: error: cannot start MPI: %s\n", session.status().message());
    return kExitRuntimeFailure;
  }
  const int rank = (*session)->world_rank();
  std::unique_ptr<MeshJob> job(new MeshJob(*std::move(session), JobReporter(rank, json, out, err)));
  JobReporter& reporter = job->reporter_;

  // 1. Specs and plans; every rank learns every rank's config error.
  absl::StatusOr<std::vector<JobMesh>> planned =
      PlanAll(options.mesh, job->session_->world_size(), options.all_sections);
  std::optional<absl::Duration> timeout = options.timeout;
  if (!timeout.has_value() && options.recipe_timeout && planned.ok() && !planned->empty()) {
    timeout = planned->front().spec.timeout;
  }
  absl::StatusOr<std::unique_ptr<Communicator>> mpi_world =
      comm::mpi::WorldCommunicator(*job->session_, {.name = "world", .timeout = timeout});
  if (!mpi_world.ok()) reporter.Abort(mpi_world.status());
  job->mpi_world_ = *std::move(mpi_world);
  Communicator& world = *job->mpi_world_;
  if (absl::Status agreed = comm::AgreeOnStatus(world, planned.status()); !agreed.ok()) {
    return reporter.Fail(agreed);
  }
  job->meshes_ = *std::move(planned);
  std::vector<JobMesh>& meshes = job->meshes_;
  {
    // Ranks launched with different flags could plan a different number of meshes and then wait
    // in different collectives: compare the counts first.
    const int64_t count = static_cast<int64_t>(meshes.size());
    int64_t extremes[2] = {count, -count};
    if (absl::Status s = comm::HostAllReduce(world, extremes, extremes, 2, comm::DataType::kInt64,
                                             comm::ReduceOp::kMin);
        !s.ok()) {
      reporter.Abort(s);
    }
    if (extremes[0] != -extremes[1]) {
      return reporter.Fail(absl::InvalidArgumentError(absl::StrFormat(
          "ranks disagree on the mesh: rank %d builds %d mesh(es), others between %d and %d", rank,
          count, extremes[0], -extremes[1])));
    }
  }
  for (const JobMesh& job_mesh : meshes) {
    for (const std::string& warning : job_mesh.spec.warnings) reporter.Note("warning: " + warning);
  }

  // 2. Topology and backend.
  absl::StatusOr<comm::Topology> topo = comm::mpi::GetTopology(world);
  if (!topo.ok()) reporter.Abort(topo.status());
  job->topology_ = *std::move(topo);
  absl::StatusOr<JobBackend> backend =
      ChooseBackend(options.backend, world, job->topology_, timeout);
  if (!backend.ok()) return reporter.Fail(backend.status());
  job->backend_ = *std::move(backend);

  // 3. Meshes: every rank builds every mesh, in order.
  for (JobMesh& job_mesh : meshes) {
    std::optional<absl::Duration> mesh_timeout = options.timeout;
    if (!mesh_timeout.has_value() && options.recipe_timeout) mesh_timeout = job_mesh.spec.timeout;
    const absl::Time start = absl::Now();
    absl::StatusOr<mesh::DeviceMesh> built =
        mesh::DeviceMesh::Create(*job_mesh.plan, *job->backend_.world,
                                 {.name = MeshName(job_mesh.spec), .timeout = mesh_timeout});
    if (!built.ok()) {
      // Disagreement and size errors are found by every rank together; anything else may leave
      // the others inside a split.
      if (ExitCodeOf(built.status()) == kExitUsage) return reporter.Fail(built.status());
      reporter.Abort(built.status());
    }
    job_mesh.build_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    job_mesh.mesh = *std::move(built);
  }
  return job;
}

}  // namespace nmesh::tools
