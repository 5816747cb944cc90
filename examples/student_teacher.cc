// A student and a teacher model in one job, each on its own mesh (knowledge distillation with
// `separate_meshes: true`). Run from the repository root:
//
//   scripts/mpirun.sh -np 8 build/examples/student_teacher [RECIPE]
//
// The default recipe is examples/student_teacher.yaml at 8 ranks and
// examples/student_teacher_np4.yaml at 4. The student takes ranks 0..S-1 and the teacher S..W-1;
// every rank builds both meshes (collectively) and is a member of one. Each rank checks that it is
// in the right mesh, then sums the global ranks over each group of its model (an all_reduce on
// every communicator) against the plan. Exit code: 0 when every check passes, 1 otherwise, 2 for
// a bad recipe.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/nmesh.h"

int main(int argc, char** argv) {
  absl::StatusOr<std::unique_ptr<nmesh::comm::mpi::Session>> session =
      nmesh::comm::mpi::Session::Init(&argc, &argv);
  if (!session.ok()) {
    std::cerr << "student_teacher: " << session.status().message() << "\n";
    return 1;
  }
  const int world = (*session)->world_size();
  std::string recipe = "examples/student_teacher.yaml";
  if (argc > 1) {
    recipe = argv[1];
  } else if (world == 4) {
    recipe = "examples/student_teacher_np4.yaml";
  }
  nmesh::job::JobOptions options;
  options.mesh.config_path = recipe;
  options.backend = nmesh::job::BackendChoice::kMpi;
  absl::StatusOr<std::unique_ptr<nmesh::job::Job>> job = nmesh::job::Job::Start(**session, options);
  if (!job.ok()) {
    const bool agreed = nmesh::job::IsAgreed(job.status());
    if (!agreed || (*session)->world_rank() == 0) {
      std::cerr << "student_teacher: " << job.status().message() << "\n";
    }
    if (!agreed) nmesh::comm::mpi::Session::AbortJob(1);
    return 2;
  }
  const int64_t rank = (*job)->rank();
  std::vector<nmesh::job::JobMesh>& meshes = (*job)->meshes();
  auto fail = [&](const std::string& what) {
    std::cerr << absl::StrFormat("student_teacher: rank %d: %s\n", rank, what);
    nmesh::comm::mpi::Session::AbortJob(1);
  };
  if (meshes.size() != 2) fail("expected a student and a teacher mesh");
  const int64_t student_size = meshes[0].plan->device_mesh().size();
  // The student holds ranks [0, S), the teacher [S, W).
  const size_t mine = rank < student_size ? 0 : 1;
  if (!meshes[mine].mesh->is_member() || meshes[1 - mine].mesh->is_member()) {
    fail("member of the wrong mesh");
  }
  nmesh::job::JobMesh& model = meshes[mine];
  int checked = 0;
  for (const std::string group :
       {"pp", "dp_replicate", "dp_shard", "cp", "tp", "dp", "dp_shard_cp", "dp_cp"}) {
    absl::StatusOr<nmesh::comm::Communicator*> comm = model.mesh->Comm(group);
    if (!comm.ok()) fail(std::string(comm.status().message()));
    std::vector<int64_t> value = {rank};
    if (absl::Status s =
            (*comm)->AllReduce<int64_t>(value, absl::MakeSpan(value), nmesh::comm::ReduceOp::kSum);
        !s.ok()) {
      fail(std::string(s.message()));
    }
    int64_t expected = 0;
    for (int64_t member : model.plan->ViewGroup(rank, group)->Ranks()) expected += member;
    if (value[0] != expected)
      fail(absl::StrFormat("%s: all_reduce gave %d, expected %d", group, value[0], expected));
    ++checked;
  }
  std::cout << absl::StrFormat("student_teacher: rank %d: %s (tp %d, dp %d): %d groups ok\n", rank,
                               model.spec.label, model.context->sizes().tp_size(),
                               model.context->sizes().dp_size().value_or(1), checked);
  return 0;
}
