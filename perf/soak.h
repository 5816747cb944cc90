// One synthetic training step's communication over a mesh, every result checked: the step that
// `nmesh soak` repeats to burn a job in (job/soak.h runs it in a loop that survives failures).
//
//   // `plan` and the DeviceMesh built from it (`mesh`), e.g. job::Job::model()'s:
//   NMESH_RETURN_IF_ERROR(perf::RunSoakStep(plan, mesh, step));
//
// A step runs, on this rank, in this order and each only where the mesh has the group with more
// than one rank:
//   1. pp: the activations forward (stage i receives from stage i-1, then sends to stage i+1),
//      then the gradients backward (stage i receives from stage i+1, then sends to stage i-1);
//   2. tp: an all_gather;
//   3. ep (the MoE mesh): an all_to_all_v with uneven counts (local rank s sends
//      unit * perf::AllToAllVWeight(s, d, n) elements to local rank d, so one peer gets nothing);
//   4. dp_shard_cp: a reduce_scatter (sum), then an all_gather of its result;
//   5. dp: an all_reduce (sum).
// Element k of a buffer that global rank g contributes at step s to operation o is
// SoakValue(g, s, o, k): a small integer, so that sums over any group are exact in float32. Every
// output is compared with values computed from SoakValue and the group's global ranks in the plan
// (mesh::MeshPlan::ViewGroup), never with the output of another collective: a block from the wrong
// rank, the wrong step, the wrong operation or a partial sum is caught.
#ifndef NMESH_PERF_SOAK_H_
#define NMESH_PERF_SOAK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::perf {

// The operations of a step, as SoakValue's `op`.
enum class SoakOp : int64_t {
  kPpForward = 0,
  kPpBackward = 1,
  kTpAllGather = 2,
  kEpAllToAllV = 3,
  kDpShardCpReduceScatter = 4,
  kDpAllReduce = 5,
};

struct SoakStepConfig {
  // Elements (float32) each rank contributes per operation: the all_gather's and all_reduce's
  // count, the reduce_scatter's count per rank, the pp messages' length; the all_to_all_v's unit is
  // max(1, elements / n).
  uint64_t elements = 1024;
};

// Element k of what global rank `rank` contributes at step `step` to operation `op`: an integer in
// [0, 100]. Pure.
float SoakValue(int64_t rank, int64_t step, SoakOp op, uint64_t k);

// The groups a step on `mesh` uses, in the order it runs them: each of "pp", "tp", "ep",
// "dp_shard_cp", "dp" that the mesh has with more than one rank. Empty on a rank that is not a
// member.
std::vector<std::string> SoakGroups(const mesh::DeviceMesh& mesh);

// Runs step `step` (see the overview) on this rank's groups of `mesh`, built from `plan`; a rank
// that is not a member does nothing. Collective over the mesh's members, which must pass the same
// `step` and `config`. Returns the first communicator error as it is (a timeout, a peer gone); an
// output that differs from the expected values is DataLoss naming the operation, the group, the
// step, the first wrong element and how many differ.
absl::Status RunSoakStep(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh, int64_t step,
                         const SoakStepConfig& config = {});

}  // namespace nmesh::perf

#endif  // NMESH_PERF_SOAK_H_
