// Collective bandwidth per mesh axis, measured and reported the way nccl-tests does: the engine
// behind `nmesh bench`, as a library for engines and other drivers.
//
//   // `plan`, the DeviceMesh built from it (`mesh`) and the communicator it was built over:
//   perf::BenchConfig config{.op = perf::BenchOp::kAllReduce, .max_bytes = 64 << 20};
//   NMESH_ASSIGN_OR_RETURN(perf::BenchReport report,
//                          perf::RunBench(*plan, *mesh, *world, config));
//   for (const perf::BenchAxis& axis : report.axes) {
//     for (const perf::BenchRow& row : axis.rows) {
//       std::cout << axis.name << " " << row.size << " B: " << row.busbw << " GB/s, "
//                 << row.wrong << " wrong\n";
//     }
//   }
//
// For each selected axis (by default every distinct group kind of the mesh with more than one rank
// per group, named by every name that shares it, e.g. "dp_shard/dp"), every rank runs the
// collective on its own group of that axis, so all groups of the axis run concurrently, over a
// size sweep from min_bytes to max_bytes multiplying by `factor`. Each size: `warmup` calls, then
// `iters` timed calls; the time of a row is the largest per-rank average over the world, as
// nccl-tests reports it. Elements are float32 and the reduction is a sum; broadcast's root is
// local rank 0. With `async`, every call is issued through the communicator's *Async method and
// its Work handle is waited before the next call (the path an engine overlapping communication
// uses), instead of the blocking method.
//
// Columns (nccl-tests' conventions):
//   size(B)   the bytes of the largest buffer of the call: the whole output of all_gather, the
//             whole input of reduce_scatter, the whole send buffer of all_to_all and
//             all_to_all_v, the buffer of all_reduce and broadcast. A requested size is rounded
//             down to whole elements (for all_gather, reduce_scatter and all_to_all to whole
//             elements per rank; for all_to_all_v to whole units of its pattern, below); sizes
//             that round to zero elements are skipped.
//   count     the element count passed to the collective: per rank for all_gather (send count),
//             reduce_scatter (receive count) and all_to_all (per-peer block); the whole buffer for
//             all_reduce and broadcast; for all_to_all_v the elements each rank sends (and
//             receives) in total, spread unevenly over its peers.
//   algbw     size / time, in GB/s (10^9 bytes per second).
//   busbw     algbw * factor: 2(n-1)/n for all_reduce, (n-1)/n for all_gather, reduce_scatter,
//             all_to_all and all_to_all_v, 1 for broadcast, n being the group size.
//   #wrong    elements of every rank's output that differ from the expected values, summed over
//             the world (perf/check.h: inputs are small integers that depend on the local rank and
//             the element index, so sums are exact in float32; the expected outputs are computed on
//             the host from the same formula, independently of the collective).
//
// all_to_all_v's pattern (MoE token dispatch with an uneven routing): in a group of n > 1 ranks,
// local rank s sends unit * ((s + d) mod n) elements to local rank d, so each rank sends nothing to
// one peer and up to (n-1) units to another, and every rank sends and receives unit * n(n-1)/2
// elements in total (one group of 1 rank: one unit to itself). In the send buffer the blocks lie
// back to back in peer order; in the output, back to back in reverse peer order after a gap of a
// few elements (the smallest that leaves no non-empty block at the same displacement as in the
// send buffer), so that every receive displacement differs from the send one and the gap must
// stay unwritten. The unit is the largest whole number of elements that keeps the total within
// the requested size.
//
// Buffers come from the axis communicator's AllocateBuffer (device memory on NCCL); outputs are
// copied back to the host to be checked after the timed calls. Memory per rank: the send and
// output buffers of the largest size plus a host copy of each (for all_reduce at max_bytes S: 2S
// of buffers, 2S on the host); a sweep needing more host memory than the machine has fails before
// allocating.
#ifndef NMESH_PERF_BENCH_H_
#define NMESH_PERF_BENCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::perf {

// The operations the bench measures are the communicator's (comm/op.h's table), these six of them.
using BenchOp = comm::OpKind;
inline constexpr BenchOp kBenchOps[] = {BenchOp::kAllReduce,     BenchOp::kAllGather,
                                        BenchOp::kReduceScatter, BenchOp::kBroadcast,
                                        BenchOp::kAllToAll,      BenchOp::kAllToAllV};

// Every op the bench measures, in the order above.
std::vector<BenchOp> AllBenchOps();
// "all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "all_to_all_v" (the op
// table's names, comm::OpKindName).
std::string_view BenchOpName(BenchOp op);
// The inverse of BenchOpName over kBenchOps; InvalidArgument "unknown collective 'x'; expected ..."
// otherwise.
absl::StatusOr<BenchOp> ParseBenchOp(std::string_view name);
// Whether `op` reduces (all_reduce, reduce_scatter), and the redop column: "sum" or "none".
bool Reduces(BenchOp op);
std::string_view RedopName(BenchOp op);

// The element type of every measurement: float32.
inline constexpr comm::DataType kBenchType = comm::DataType::kFloat32;

// nccl-tests' bus-bandwidth factor of `op` over groups of `n` ranks (see the overview).
double BusBandwidthFactor(BenchOp op, int64_t n);

// What to measure.
struct BenchConfig {
  BenchOp op = BenchOp::kAllReduce;
  // Names of axes or groups to run (any name of a group kind selects it); empty: every kind whose
  // groups have more than one rank.
  std::vector<std::string> axes = {};
  uint64_t min_bytes = 8;
  uint64_t max_bytes = uint64_t{32} << 20;
  int64_t factor = 2;
  int64_t iters = 20;
  int64_t warmup = 5;
  // Issue every call through the *Async method and wait its handle (see the overview).
  bool async = false;
};

// InvalidArgument naming the field for a config RunBench cannot run: factor < 2, iters < 1,
// warmup < 0, min_bytes < 1 or min_bytes > max_bytes. Pure.
absl::Status ValidateBenchConfig(const BenchConfig& config);

// The requested sizes: min_bytes, min_bytes * factor, ... up to max_bytes inclusive.
// Pure; requires factor >= 2 and min_bytes >= 1.
std::vector<uint64_t> SweepSizes(const BenchConfig& config);

// The group kinds `axes` selects in `plan`, in the plan's kind order (mesh::DistinctGroupKinds).
// InvalidArgument "unknown axis 'x'; this mesh has ..." for a name the plan does not have. Pure:
// every rank computes the same answer.
absl::StatusOr<std::vector<mesh::GroupKind>> SelectBenchAxes(const mesh::MeshPlan& plan,
                                                             absl::Span<const std::string> axes);

// One row of the table.
struct BenchRow {
  uint64_t size = 0;   // bytes (see the overview)
  uint64_t count = 0;  // elements passed to the collective
  double time_us = 0;  // max over ranks of the per-rank average
  double algbw = 0;    // GB/s
  double busbw = 0;    // GB/s
  int64_t wrong = 0;   // summed over the world
};

struct BenchAxis {
  std::string name;  // the kind's names joined with "/", e.g. "dp_shard/dp"
  std::vector<std::string> names;
  int64_t group_size = 1;
  int64_t group_count = 1;
  std::vector<BenchRow> rows;
  // The mean busbw over the rows (0 without rows), as nccl-tests' "Avg bus bandwidth".
  double AverageBusBandwidth() const;
};

struct BenchReport {
  BenchOp op = BenchOp::kAllReduce;
  bool async = false;
  std::string backend;
  int64_t world_size = 0;
  std::vector<BenchAxis> axes;
  // #wrong over every row of every axis.
  int64_t TotalWrong() const;
};

// Called on every rank after each row is complete (its time and #wrong reduced over the world):
// the axis being measured (name and group sizes; its rows so far, without this one), the row, its
// index and the number of rows of the axis. For progress output.
using RowObserver =
    std::function<void(const BenchAxis& axis, const BenchRow& row, size_t index, size_t rows)>;

// Measures `config.op` over the sweep on one axis: every rank of `world` calls it, members with
// their group's communicator `group` (group->size() == axis.group_size), others with nullptr, so
// that all groups of the axis run at once; rows start together (a barrier over `world`) and each
// row's time and #wrong are reduced over `world`. `axis` names the axis (its rows are ignored);
// the result has the same name and sizes plus the rows, identical on every rank. To measure one
// communicator on its own, pass it as both `group` and `world`. Fails with InvalidArgument for a
// bad config or a group of the wrong size (before any communication), ResourceExhausted for a
// sweep larger than the host's memory, or with the communicators' errors.
absl::StatusOr<BenchAxis> MeasureAxis(BenchAxis axis, comm::Communicator* group,
                                      comm::Communicator& world, const BenchConfig& config,
                                      const RowObserver& on_row = nullptr);

// What one rank's sweep needs of its host's memory (see CheckHostMemory).
struct RankMemory {
  uint64_t host = 0;      // identifies the rank's host (a fingerprint of its name)
  uint64_t bytes = 0;     // host memory this rank's buffers and their host copies need
  uint64_t physical = 0;  // the host's physical memory
};

// Pure: OK when, on every host, the sum of what its ranks need (`ranks`, indexed by rank) fits in
// its physical memory; otherwise ResourceExhausted naming the lowest rank on the first host that
// does not fit, its ranks, their need and the host's memory, e.g. "bench: the sweep needs 64 GiB of
// host memory on the host of ranks 0..15 (16 ranks, up to 4 GiB each: the buffers and their host
// copies for -e 512M), more than its 24 GiB; lower -e or run fewer ranks per host". Linux
// overcommits: without this, ranks sharing a host would be killed while filling their buffers.
absl::Status CheckHostMemory(absl::Span<const RankMemory> ranks, uint64_t max_bytes);

// Collective over `world` (as RunBench): what each rank's sweep of the selected axes of `mesh`
// needs, gathered and checked per host (CheckHostMemory); the same answer on every rank.
absl::Status CheckBenchMemory(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh,
                              comm::Communicator& world, const BenchConfig& config);

// Runs the sweep on every selected axis of `mesh`, which must have been built from `plan` over
// `world` (mesh::DeviceMesh::Create; its moe mesh serves the moe axes). Collective over `world`:
// every rank calls it with the same plan and config; ranks outside the mesh take part in the
// world-wide reductions only. The returned report is complete on every rank. Fails with
// InvalidArgument for a bad config or axis name (before any communication, identically on every
// rank), ResourceExhausted on every rank when the ranks sharing a host need more than its memory
// (CheckBenchMemory, first), or as MeasureAxis does.
absl::StatusOr<BenchReport> RunBench(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh,
                                     comm::Communicator& world, const BenchConfig& config,
                                     const RowObserver& on_row = nullptr);

}  // namespace nmesh::perf

#endif  // NMESH_PERF_BENCH_H_
