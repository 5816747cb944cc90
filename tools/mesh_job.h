// The start shared by the verbs that run as an MPI job (`nmesh run`, `nmesh bench`): from the mesh
// flags to live meshes over the chosen backend, on every rank.
//
//   std::variant<std::unique_ptr<MeshJob>, int> started =
//       MeshJob::Start({.mesh = options.mesh, .backend = "auto"}, json, out, err);
//   if (const int* code = std::get_if<int>(&started)) return *code;
//   MeshJob& job = *std::get<std::unique_ptr<MeshJob>>(started);
//   for (JobMesh& m : job.meshes()) ... m.plan, m.mesh (built over job.backend().world)
//
// A failure is either agreed on by every rank (reported once by rank 0, and Start returns the exit
// code) or local to one rank while others may be blocked in a collective (the job is ended with
// MPI_Abort), so Start returns the job or an exit code rather than a Status.
//
// Steps, on every rank:
//   1. MPI session; the mesh specs from the flags and --config (ResolveMeshSpecs) and their plans;
//      the MPI world. Every rank learns every other rank's config error (comm::AgreeOnStatus) and
//      the ranks compare how many meshes they plan, so all exit 2 together instead of hanging.
//   2. Topology and backend: auto picks NCCL when it was built and every rank sees a GPU for its
//      local rank, MPI otherwise, and says why; --backend nccl without a GPU fails on every rank
//      (exit 1); without NCCL built it is a usage error (exit 2).
//   3. DeviceMesh::Create for each mesh (every rank, in order), timed.
#ifndef NMESH_TOOLS_MESH_JOB_H_
#define NMESH_TOOLS_MESH_JOB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/topology.h"
#include "nmesh/mesh/context.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/tools/mesh_options.h"

namespace nmesh::tools {

// The exit code of a failed status: config errors (InvalidArgument, NotFound, OutOfRange: found
// from the flags and the recipe, identically on every rank) are usage errors; anything else is a
// runtime failure.
int ExitCodeOf(const absl::Status& status);

// Prints from rank 0 only, so that an error every rank agreed on appears once.
// The --timeout-s flag of `run` and `bench`: unset gives no timeout; otherwise a positive, finite
// number of seconds. InvalidArgument naming the flag and the value otherwise.
absl::StatusOr<std::optional<absl::Duration>> TimeoutFromFlag(std::optional<double> seconds);

class JobReporter {
 public:
  JobReporter(int rank, bool json, std::ostream& out, std::ostream& err)
      : rank_(rank), json_(json), out_(out), err_(err) {}

  int rank() const { return rank_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // An error every rank has: rank 0 writes "nmesh: error: <message>" (and {"error": ...} under
  // JSON); returns ExitCodeOf(status).
  int Fail(const absl::Status& status);

  // An error of this rank alone, while other ranks may be blocked in a collective waiting for it:
  // reports it here (naming the rank) and ends the whole job (MPI_Abort, exit 1). After a timeout
  // (DeadlineExceeded) it first waits kTimeoutReportGrace: the other members of the same
  // collective started it within moments of this rank and are timing out too, and each one's own
  // report (its axis, operation and place in the group) is what tells an operator who is missing.
  [[noreturn]] void Abort(const absl::Status& status);
  static constexpr absl::Duration kTimeoutReportGrace = absl::Milliseconds(250);

  // "nmesh: <line>" on stderr, from rank 0.
  void Note(const std::string& line);

 private:
  int rank_;
  bool json_;
  std::ostream& out_;
  std::ostream& err_;
};

// The communicator the meshes are built over, and why it was chosen.
struct JobBackend {
  std::unique_ptr<comm::Communicator> owned;  // the NCCL world, when NCCL was chosen
  comm::Communicator* world = nullptr;
  std::string name;  // "mpi" or "nccl"
  std::string reason;
};

// One mesh of the job.
struct JobMesh {
  MeshSpec spec;
  std::optional<mesh::MeshPlan> plan;
  std::optional<mesh::DeviceMesh> mesh;
  // Filled by the verb when it needs one (`run`: on members).
  std::optional<mesh::MeshContext> context;
  // This rank's DeviceMesh::Create time.
  double build_seconds = 0;
};

struct MeshJobOptions {
  MeshOptions mesh;
  // "auto", "mpi" or "nccl".
  std::string backend = "auto";
  // The timeout of every communicator (the world's and the meshes'); overrides the recipe's.
  std::optional<absl::Duration> timeout = std::nullopt;
  // Without `timeout`, whether the recipe's dist_env.timeout_minutes applies. A benchmark turns it
  // off: a timeout makes the MPI backend poll nonblocking calls instead of blocking in them.
  bool recipe_timeout = true;
  // Build both meshes of a recipe with a teacher section (ResolveMeshSpecs' all_sections).
  bool all_sections = true;
};

class MeshJob {
 public:
  // Steps 1-3 of the overview, as one rank of the job (collective over MPI_COMM_WORLD: every rank
  // calls it with the same options). Initialises MPI unless it already is (then the job does not
  // finalise it). Returns the job, or the exit code after the failure was reported; a failure of
  // this rank alone that may leave others blocked ends the job instead (JobReporter::Abort).
  // Recipe warnings are noted on stderr from rank 0.
  static std::variant<std::unique_ptr<MeshJob>, int> Start(const MeshJobOptions& options, bool json,
                                                           std::ostream& out, std::ostream& err);

  ~MeshJob();
  MeshJob(const MeshJob&) = delete;
  MeshJob& operator=(const MeshJob&) = delete;

  int64_t rank() const { return reporter_.rank(); }
  JobReporter& reporter() { return reporter_; }
  // The MPI world (always MPI, whatever the backend): for gathering reports on the host.
  comm::Communicator& mpi_world() { return *mpi_world_; }
  const comm::Topology& topology() const { return topology_; }
  const JobBackend& backend() const { return backend_; }
  // In spec order: the student (or the only mesh) first.
  std::vector<JobMesh>& meshes() { return meshes_; }

 private:
  MeshJob(std::unique_ptr<comm::mpi::Session> session, JobReporter reporter)
      : session_(std::move(session)), reporter_(reporter) {}

  // Members are destroyed in reverse order: the meshes' communicators before the worlds they
  // were split from, and MPI last.
  std::unique_ptr<comm::mpi::Session> session_;
  JobReporter reporter_;
  std::unique_ptr<comm::Communicator> mpi_world_;
  comm::Topology topology_;
  JobBackend backend_;
  std::vector<JobMesh> meshes_;
};

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_MESH_JOB_H_
