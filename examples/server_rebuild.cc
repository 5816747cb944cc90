// A server holding the meshes of two models in one job, and rebuilding one of them while the other
// keeps serving. Run from the repository root:
//
//   scripts/mpirun.sh -np 8 build/examples/server_rebuild [RECIPE_A RECIPE_B]
//
// Model A comes from examples/fsdp2_tp2_cp2.yaml, model B from examples/megatron_fsdp_cp2.yaml,
// both over every rank of the job. The server checks a collective on each model's tp group, then
// rebuilds model B with cp 1 (its dp grows to fill the job), and checks both models again: A's
// communicators are untouched by B's rebuild. This uses the layer under job::Job::Start: specs and
// plans (job/spec.h) and DeviceMesh::Create over the server's own world communicator.
// Exit code: 0 when every check passes, 1 otherwise, 2 for a bad recipe.
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/nmesh.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::mesh::DeviceMesh;
using nmesh::mesh::MeshPlan;

// One model's mesh: its plan and the live mesh.
struct Model {
  std::string name;
  std::optional<MeshPlan> plan;
  std::optional<DeviceMesh> mesh;
};

// Plans the first section of `options` over a world of `world_size` ranks and builds it over
// `world` (collective over `world`).
absl::StatusOr<Model> BuildModel(const std::string& name, const nmesh::job::MeshOptions& options,
                                 Communicator& world) {
  NMESH_ASSIGN_OR_RETURN(std::vector<nmesh::job::MeshSpec> specs,
                         nmesh::job::ResolveMeshSpecs(options, world.size(), false));
  Model model{.name = name, .plan = std::nullopt, .mesh = std::nullopt};
  NMESH_ASSIGN_OR_RETURN(model.plan, nmesh::job::PlanMeshSpec(specs.front()));
  NMESH_ASSIGN_OR_RETURN(model.mesh, DeviceMesh::Create(*model.plan, world, {.name = name}));
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

}  // namespace

int main(int argc, char** argv) {
  const std::string recipe_a = argc > 2 ? argv[1] : "examples/fsdp2_tp2_cp2.yaml";
  const std::string recipe_b = argc > 2 ? argv[2] : "examples/megatron_fsdp_cp2.yaml";
  absl::StatusOr<std::unique_ptr<nmesh::comm::mpi::Session>> session =
      nmesh::comm::mpi::Session::Init(&argc, &argv);
  if (!session.ok()) {
    std::cerr << "server_rebuild: " << session.status().message() << "\n";
    return 1;
  }
  const int64_t rank = (*session)->world_rank();
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      nmesh::comm::mpi::WorldCommunicator(**session, {.name = "world"});
  if (!world.ok()) {
    std::cerr << "server_rebuild: " << world.status().message() << "\n";
    return 1;
  }
  auto fail = [&](const absl::Status& status) {
    std::cerr << absl::StrFormat("server_rebuild: rank %d: %s\n", rank, status.message());
    nmesh::comm::mpi::Session::AbortJob(status.code() == absl::StatusCode::kInvalidArgument ? 2
                                                                                            : 1);
  };

  nmesh::job::MeshOptions options_a{.config_path = recipe_a};
  nmesh::job::MeshOptions options_b{.config_path = recipe_b};
  absl::StatusOr<Model> a = BuildModel("model_a", options_a, **world);
  if (!a.ok()) fail(a.status());
  absl::StatusOr<Model> b = BuildModel("model_b", options_b, **world);
  if (!b.ok()) fail(b.status());
  for (const Model* model : {&*a, &*b}) {
    for (const char* group : {"tp", "cp"}) {
      if (absl::Status s = CheckGroup(*model, group, rank); !s.ok()) fail(s);
    }
  }

  // Rebuild model B without context parallelism: the old mesh's communicators are freed, A's
  // stay as they are.
  const int64_t old_cp = b->plan->sizes().cp.value_or(1);
  options_b.sizes.cp = 1;
  b->mesh.reset();
  b = BuildModel("model_b", options_b, **world);
  if (!b.ok()) fail(b.status());
  if (b->plan->sizes().cp != 1) fail(absl::InternalError("model_b was not rebuilt with cp 1"));
  for (const Model* model : {&*a, &*b}) {
    for (const char* group : {"tp", "cp", "dp"}) {
      if (!model->mesh->HasGroup(group)) continue;
      if (absl::Status s = CheckGroup(*model, group, rank); !s.ok()) fail(s);
    }
  }
  std::cout << absl::StrFormat(
      "server_rebuild: rank %d: both models serve; model_b rebuilt from cp %d to cp %d (dp %d)\n",
      rank, old_cp, b->plan->sizes().cp.value_or(1), b->plan->sizes().dp.value_or(1));
  return 0;
}
