// An engine's start-up against an installed nmesh: builds the meshes of a recipe through the job
// layer under mpirun, then checks every group of this rank through its communicator against groups
// computed here by brute force over coordinates, and the context's sizes against the recipe's;
// then measures the tp axis with the installed bench engine (nmesh::perf), which must count no
// wrong element.
//
//   mpirun -np 4 consumer RECIPE TP CP [BACKEND]
//
// TP and CP are the recipe's tp_size and cp_size (dp is inferred); BACKEND is auto, mpi (the
// default) or nccl. Prints "consumer: rank R: backend NAME (REASON)" and "consumer: rank R: N
// groups verified" per rank and exits 0 only if everything matches.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "comm/communicator.h"  // the engine's own headers of those names
#include "mesh/device_mesh.h"
#include "nmesh/nmesh.h"
#include "nmesh/perf/bench.h"

namespace {

// Row-major coordinates of `rank` in `shape`.
std::vector<int64_t> Coordinates(int64_t rank, const std::vector<int64_t>& shape) {
  std::vector<int64_t> coordinate(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    coordinate[i] = rank % shape[i];
    rank /= shape[i];
  }
  return coordinate;
}

// The group of `rank` over the axes in `axes`: every rank agreeing with it outside `axes`,
// ordered row-major over `axes` (the ranks come out in increasing order, which is that order).
std::vector<int64_t> BruteForceGroup(int64_t rank, const std::vector<int64_t>& shape,
                                     const std::vector<size_t>& axes) {
  const std::vector<int64_t> mine = Coordinates(rank, shape);
  int64_t world = 1;
  for (int64_t extent : shape) world *= extent;
  std::vector<int64_t> group;
  for (int64_t other = 0; other < world; ++other) {
    const std::vector<int64_t> theirs = Coordinates(other, shape);
    bool same = true;
    for (size_t axis = 0; axis < shape.size(); ++axis) {
      bool in_group = false;
      for (size_t a : axes) in_group = in_group || a == axis;
      if (!in_group && theirs[axis] != mine[axis]) same = false;
    }
    if (same) group.push_back(other);
  }
  return group;
}

int Fail(int64_t rank, const std::string& what) {
  std::cerr << "consumer: rank " << rank << ": " << what << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: consumer RECIPE TP CP [auto|mpi|nccl]\n";
    return 2;
  }
  absl::StatusOr<nmesh::job::BackendChoice> backend =
      nmesh::job::ParseBackendChoice(argc == 5 ? argv[4] : "mpi");
  if (!backend.ok()) return Fail(-1, std::string(backend.status().message()));
  const engine::Communicator engine_comm{.handle = 7};  // the engine's types stay usable
  const engine::DeviceMesh engine_mesh{.ndim = 5};
  const int64_t tp = std::atoll(argv[2]);
  const int64_t cp = std::atoll(argv[3]);

  absl::StatusOr<std::unique_ptr<nmesh::comm::mpi::Session>> session =
      nmesh::comm::mpi::Session::Init(&argc, &argv);
  if (!session.ok()) return Fail(-1, std::string(session.status().message()));
  nmesh::job::JobOptions options;
  options.mesh.config_path = argv[1];
  options.backend = *backend;
  absl::StatusOr<std::unique_ptr<nmesh::job::Job>> job = nmesh::job::Job::Start(**session, options);
  if (!job.ok()) return Fail((*session)->world_rank(), std::string(job.status().message()));

  const int64_t rank = (*job)->rank();
  // Each line in one write, so that the launcher's forwarding cannot interleave the ranks' lines.
  std::cout << absl::StrCat("consumer: rank ", rank, ": backend ", (*job)->backend().name, " (",
                            (*job)->backend().reason, ")\n")
            << std::flush;
  const int64_t world = (*job)->world_size();
  nmesh::job::JobMesh& m = (*job)->meshes().front();
  if (!m.mesh->is_member() || !m.context.has_value()) return Fail(rank, "not a member");

  // FSDP2: (pp, dp_replicate, dp_shard, cp, tp) with dp inferred as world / (tp * cp * pp).
  const std::vector<int64_t> shape = {1, 1, world / (tp * cp), cp, tp};
  const nmesh::validate::ResolvedSizes sizes = m.context->sizes();
  if (sizes.tp_size() != tp || sizes.cp_size() != cp || sizes.dp_shard_size() != shape[2]) {
    return Fail(rank, "context sizes differ from the recipe's");
  }
  const std::map<std::string, std::vector<size_t>> expected = {
      {"pp", {0}}, {"dp_replicate", {1}}, {"dp_shard", {2}},       {"cp", {3}},
      {"tp", {4}}, {"dp", {1, 2}},        {"dp_shard_cp", {2, 3}}, {"dp_cp", {1, 2, 3}}};
  int verified = 0;
  for (const auto& [name, axes] : expected) {
    absl::StatusOr<nmesh::comm::Communicator*> comm = m.mesh->Comm(name);
    if (!comm.ok()) return Fail(rank, std::string(comm.status().message()));
    std::vector<int64_t> gathered(static_cast<size_t>((*comm)->size()), -1);
    absl::Status s = nmesh::comm::HostAllGather<int64_t>(**comm, absl::MakeConstSpan(&rank, 1),
                                                         absl::MakeSpan(gathered));
    if (!s.ok()) return Fail(rank, std::string(s.message()));
    if (gathered != BruteForceGroup(rank, shape, axes))
      return Fail(rank, "group " + name + " differs");
    ++verified;
  }
  // Every rank measures, on its tp group, a small all_to_all_v sweep through the async path.
  absl::StatusOr<nmesh::comm::Communicator*> tp_comm = m.mesh->Comm("tp");
  if (!tp_comm.ok()) return Fail(rank, std::string(tp_comm.status().message()));
  nmesh::perf::BenchAxis axis;
  axis.name = "tp";
  axis.group_size = (*tp_comm)->size();
  const nmesh::perf::BenchConfig bench{.op = nmesh::perf::BenchOp::kAllToAllV,
                                       .min_bytes = 64,
                                       .max_bytes = 4096,
                                       .factor = 8,
                                       .iters = 2,
                                       .warmup = 1,
                                       .async = true};
  absl::StatusOr<nmesh::perf::BenchAxis> measured =
      nmesh::perf::MeasureAxis(axis, *tp_comm, *(*job)->backend().world, bench);
  if (!measured.ok()) return Fail(rank, std::string(measured.status().message()));
  if (measured->rows.empty()) return Fail(rank, "the bench engine measured no row");
  for (const nmesh::perf::BenchRow& row : measured->rows) {
    if (row.wrong != 0) return Fail(rank, "the bench engine counted wrong elements");
  }
  std::cout << absl::StrCat("consumer: rank ", rank, ": ", verified,
                            " groups verified (engine handle ",
                            engine_comm.handle + engine_mesh.ndim - 5, ")\n")
            << std::flush;
  return 0;
}
