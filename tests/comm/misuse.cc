// Library misuse, run by ctest under mpirun (tests/comm/CMakeLists.txt):
//   misuse finalized   a mesh used after the MPI session was destroyed: every rank must get
//                      FailedPrecondition (exit 0), where MPI aborted the job before;
//   misuse destroy     the last rank destroys a communicator while its all_reduce is pending: its
//                      wait fails at once, and the others, blocked in the all_reduce, end with the
//                      timeout every communicator has by default (shortened here to 500 ms with
//                      SetTimeout) instead of hanging: the job ends (exit 1) naming the last rank.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"

namespace {

using namespace nmesh;  // NOLINT: a small test program

int Finalized(std::unique_ptr<comm::mpi::Session> session) {
  auto world = comm::mpi::WorldCommunicator(*session);
  if (!world.ok()) return 2;
  const int rank = (*world)->rank();
  config::MeshRequest request;
  request.sizes.world_size = (*world)->size();
  request.sizes.tp = (*world)->size();
  auto plan = mesh::PlanMesh(request);
  if (!plan.ok()) return 2;
  auto built = mesh::DeviceMesh::Create(*plan, **world);
  if (!built.ok()) return 2;
  auto tp = built->Comm("tp");
  if (!tp.ok()) return 2;
  session.reset();  // MPI_Finalize, with the world and the mesh still alive
  std::vector<float> send(4, 1.0f), recv(4);
  absl::Status reduced = (*tp)->AllReduce<float>(send, absl::MakeSpan(recv), comm::ReduceOp::kSum);
  absl::Status rebuilt = mesh::DeviceMesh::Create(*plan, **world).status();
  std::fprintf(stderr, "misuse: rank %d: all_reduce after the session: %s\n", rank,
               reduced.ToString().c_str());
  std::fprintf(stderr, "misuse: rank %d: a new mesh after the session: %s\n", rank,
               rebuilt.ToString().c_str());
  const bool clean = reduced.code() == absl::StatusCode::kFailedPrecondition &&
                     rebuilt.code() == absl::StatusCode::kFailedPrecondition;
  return clean ? 0 : 4;
}

int Destroy(std::unique_ptr<comm::mpi::Session> session) {
  auto world = comm::mpi::WorldCommunicator(*session);
  if (!world.ok()) return 2;
  const int rank = (*world)->rank(), size = (*world)->size();
  auto tp = (*world)->Split(0, rank, {.name = "tp"});
  if (!tp.ok()) return 2;
  if ((*tp)->options().timeout != comm::kDefaultTimeout) {
    std::fprintf(stderr, "misuse: rank %d: the communicator has no default timeout\n", rank);
    return 5;
  }
  if (!(*tp)->SetTimeout(absl::Milliseconds(500)).ok()) return 2;
  std::vector<float> send(256, 1.0f), recv(256);
  if (rank == size - 1) {
    auto work = (*tp)->AllReduceAsync<float>(send, absl::MakeSpan(recv), comm::ReduceOp::kSum);
    if (!work.ok()) return 2;
    tp->reset();  // destroyed with the all_reduce pending
    const absl::Status waited = work->Wait();
    std::fprintf(stderr, "misuse: rank %d: the pending all_reduce returned: %s\n", rank,
                 waited.ToString().c_str());
    std::fflush(stderr);
    absl::SleepFor(absl::Seconds(20));
    std::fprintf(stderr, "misuse: rank %d was not ended by the others' timeout\n", rank);
    return 0;
  }
  absl::Status status = (*tp)->AllReduce<float>(send, absl::MakeSpan(recv), comm::ReduceOp::kSum);
  std::fprintf(stderr, "misuse: rank %d: all_reduce returned: %s\n", rank,
               status.ToString().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto session = comm::mpi::Session::Init(&argc, &argv);
  if (!session.ok()) return 2;
  if (argc > 1 && std::strcmp(argv[1], "finalized") == 0) return Finalized(*std::move(session));
  if (argc > 1 && std::strcmp(argv[1], "destroy") == 0) return Destroy(*std::move(session));
  return 2;
}
