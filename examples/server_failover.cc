// A server holding the meshes of two models in one job, where one rank is late at model A's step:
// A fails on every rank, the server drops A and keeps serving model B, then rebuilds A and serves
// it again, without a restart. Run from the repository root:
//
//   scripts/mpirun.sh -np 4 build/examples/server_failover [LATE_RANK [LATE_S [TIMEOUT_S]]]
//
// Model A comes from examples/fsdp2_tp2_cp2.yaml with an interruptible timeout of TIMEOUT_S
// (default 2 s), model B from examples/megatron_fsdp_cp2.yaml with the default timeout; both over
// every rank. A's step is an all_reduce on tp, then on dp_shard_cp (together they connect every
// rank). Rank LATE_RANK (default 1) starts A's step LATE_S (default 5) seconds late. What happens
// (MPI, docs/GUIDE.md "When a communicator fails"):
//   - the ranks waiting for it get DeadlineExceeded after TIMEOUT_S; each revokes A's whole mesh
//     and tells the other members of A's communicators (revocation notices), so the ranks waiting
//     elsewhere in A fail at once (Aborted naming the timeout);
//   - they drop A (its communicators are quarantined, never freed under MPI) and serve B: twenty
//     checked collectives on B's groups, which the late rank joins once it is back;
//   - the late rank's A step fails at once, naming the timeout, never OK;
//   - every rank rebuilds A (DeviceMesh::Create over the world again) and checks its step.
// Exit code: 0 when every check passes on this rank, 1 otherwise, 2 for a bad recipe or argument.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/nmesh.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::mesh::DeviceMesh;
using nmesh::mesh::MeshPlan;

struct Model {
  std::string name;
  std::optional<MeshPlan> plan;
  std::optional<DeviceMesh> mesh;
};

// Plans the first section of `options` over the world and builds it over `world` (collective).
absl::StatusOr<Model> BuildModel(const std::string& name, const nmesh::job::MeshOptions& options,
                                 Communicator& world, nmesh::mesh::DeviceMeshOptions mesh_options) {
  NMESH_ASSIGN_OR_RETURN(std::vector<nmesh::job::MeshSpec> specs,
                         nmesh::job::ResolveMeshSpecs(options, world.size(), false));
  Model model{.name = name, .plan = std::nullopt, .mesh = std::nullopt};
  NMESH_ASSIGN_OR_RETURN(model.plan, nmesh::job::PlanMeshSpec(specs.front()));
  mesh_options.name = name;
  NMESH_ASSIGN_OR_RETURN(model.mesh, DeviceMesh::Create(*model.plan, world, mesh_options));
  return model;
}

// An all_reduce of the global ranks over `group` of `model`, checked against the plan's group.
absl::Status CheckGroup(const Model& model, const std::string& group, int64_t rank) {
  NMESH_ASSIGN_OR_RETURN(Communicator * comm, model.mesh->Comm(group));
  std::vector<int64_t> value = {rank};
  NMESH_RETURN_IF_ERROR(
      comm->AllReduce<int64_t>(value, absl::MakeSpan(value), nmesh::comm::ReduceOp::kSum));
  int64_t expected = 0;
  for (int64_t member : model.plan->ViewGroup(rank, group)->Ranks()) expected += member;
  if (value[0] != expected) {
    return absl::InternalError(absl::StrFormat("model %s: %s all_reduce gave %d, expected %d",
                                               model.name, group, value[0], expected));
  }
  return absl::OkStatus();
}

// One step of a model: a checked all_reduce on each of `groups` it has, in order; the first error.
absl::Status Step(const Model& model, const std::vector<std::string>& groups, int64_t rank) {
  for (const std::string& group : groups) {
    if (!model.mesh->HasGroup(group)) continue;
    NMESH_RETURN_IF_ERROR(CheckGroup(model, group, rank));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<std::unique_ptr<nmesh::comm::mpi::Session>> session =
      nmesh::comm::mpi::Session::Init(&argc, &argv);
  if (!session.ok()) {
    std::cerr << "server_failover: " << session.status().message() << "\n";
    return 1;
  }
  const int64_t late = argc > 1 ? std::atoi(argv[1]) : 1;
  const int late_s = argc > 2 ? std::atoi(argv[2]) : 5;
  const int timeout_s = argc > 3 ? std::atoi(argv[3]) : 2;
  const int64_t rank = (*session)->world_rank();
  if (late < 0 || late >= (*session)->world_size() || late_s < 0 || timeout_s <= 0) {
    std::cerr << "server_failover: usage: server_failover [LATE_RANK [LATE_S [TIMEOUT_S]]]\n";
    return 2;
  }
  int exit_code = 0;
  auto fail = [&](std::string_view what, const absl::Status& status) {
    std::cerr << absl::StrFormat("server_failover: rank %d: %s: %s\n", rank, what,
                                 status.message());
    exit_code = status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  };
  {
    absl::StatusOr<std::unique_ptr<Communicator>> world =
        nmesh::comm::mpi::WorldCommunicator(**session, {.name = "world"});
    if (!world.ok()) {
      std::cerr << "server_failover: " << world.status().message() << "\n";
      return 1;
    }
    const nmesh::job::MeshOptions options_a{.config_path = "examples/fsdp2_tp2_cp2.yaml"};
    const nmesh::job::MeshOptions options_b{.config_path = "examples/megatron_fsdp_cp2.yaml"};
    const nmesh::mesh::DeviceMeshOptions interruptible{.timeout = absl::Seconds(timeout_s),
                                                       .interruptible = true};
    const std::vector<std::string> a_step = {"tp", "dp_shard_cp"};
    const std::vector<std::string> b_step = {"tp", "cp", "dp"};

    absl::StatusOr<Model> a = BuildModel("model_a", options_a, **world, interruptible);
    absl::StatusOr<Model> b = BuildModel("model_b", options_b, **world, {});
    if (!a.ok() || !b.ok()) {
      fail("building the models", !a.ok() ? a.status() : b.status());
      nmesh::comm::mpi::Session::AbortJob(exit_code);
    }
    // 1. A's step with one rank late: it fails on every rank (never OK on one and not another).
    if (rank == late) absl::SleepFor(absl::Seconds(late_s));
    const absl::Status failed = Step(*a, a_step, rank);
    std::string seen;
    if (failed.ok()) {
      fail("model_a's step", absl::InternalError("returned OK although a rank was late"));
    } else if (rank == late && !absl::StrContains(failed.message(), "timed out")) {
      fail("model_a's step on the late rank does not name the timeout", failed);
    } else if (failed.code() != absl::StatusCode::kDeadlineExceeded &&
               failed.code() != absl::StatusCode::kAborted &&
               failed.code() != absl::StatusCode::kFailedPrecondition) {
      fail("model_a's step", failed);
    } else {
      seen = std::string(absl::StatusCodeToString(failed.code()));
    }
    // 2. Drop A at once and keep serving B.
    a->mesh.reset();
    int served = 0;
    for (int i = 0; i < 20 && exit_code == 0; ++i) {
      if (absl::Status s = Step(*b, b_step, rank); !s.ok()) {
        fail("model_b's step", s);
      } else {
        ++served;
      }
    }
    // 3. Rebuild A over the same ranks and serve it again.
    if (exit_code == 0) {
      a = BuildModel("model_a", options_a, **world, interruptible);
      if (!a.ok()) {
        fail("rebuilding model_a", a.status());
      } else if (absl::Status s = Step(*a, a_step, rank); !s.ok()) {
        fail("model_a's step after the rebuild", s);
      }
    }
    if (exit_code == 0) {
      std::cout << absl::StrFormat(
          "server_failover: rank %d: model_a failed (%s%s), model_b served %d steps, model_a "
          "rebuilt and serves\n",
          rank, seen, rank == late ? ", late rank" : "", served);
    }
  }
  if (exit_code != 0) nmesh::comm::mpi::Session::AbortJob(exit_code);
  return 0;
}
