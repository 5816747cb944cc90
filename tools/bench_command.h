// `nmesh bench`: collective bandwidth per mesh axis, measured and reported the way nccl-tests does
// (contract §9).
//
//   mpirun -np 8 nmesh bench --tp 2 --cp 2 --op all_reduce -b 8 -e 64M -f 2 -n 20 -w 5
//
// For each selected axis (by default every distinct group kind of the mesh with more than one rank
// per group, named by every name that shares it, e.g. "dp_shard/dp"), every rank runs the
// collective on its own group of that axis, so all groups of the axis run concurrently, over a
// size sweep from -b to -e bytes multiplying by -f. Each size: -w warm-up calls, then -n timed
// calls; the time of a row is the largest per-rank average over the world, as nccl-tests reports
// it. Elements are float32 and the reduction is a sum; broadcast's root is local rank 0.
//
// Columns (nccl-tests' conventions):
//   size(B)   the bytes of the largest buffer of the call: the whole output of all_gather, the
//   whole
//             input of reduce_scatter, the whole send buffer of all_to_all, the buffer of
//             all_reduce and broadcast. A requested size is rounded down to whole elements (and
//             for all_gather, reduce_scatter and all_to_all to whole elements per rank); sizes that
//             round to zero elements are skipped.
//   count     the element count passed to the collective: per rank for all_gather (send count),
//             reduce_scatter (receive count) and all_to_all (per-peer block); the whole buffer for
//             all_reduce and broadcast.
//   algbw     size / time, in GB/s (10^9 bytes per second).
//   busbw     algbw * factor: 2(n-1)/n for all_reduce, (n-1)/n for all_gather, reduce_scatter and
//             all_to_all, 1 for broadcast, n being the group size.
//   #wrong    elements of every rank's output that differ from the expected values, summed over
//             the world. Inputs are small integers that depend on the local rank and the element
//             index, so sums are exact in float32; the expected outputs are computed on the host
//             from the same formula, independently of the collective.
//
// Buffers come from the axis communicator's AllocateBuffer (device memory on NCCL); outputs are
// copied back to the host to be checked after the timed calls. Memory per rank: the send and
// output buffers of the largest size plus a host copy of each (for all_reduce at -e S: 2S of
// buffers, 2S on the host); a sweep needing more host memory than the machine has fails before
// allocating.
#ifndef NMESH_TOOLS_BENCH_COMMAND_H_
#define NMESH_TOOLS_BENCH_COMMAND_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "nmesh/comm/communicator.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/tools/mesh_options.h"

namespace nmesh::tools {

enum class BenchOp { kAllReduce, kAllGather, kReduceScatter, kBroadcast, kAllToAll };

// "all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all".
std::string_view BenchOpName(BenchOp op);
// The inverse of BenchOpName; InvalidArgument naming the valid ops otherwise.
absl::StatusOr<BenchOp> ParseBenchOp(std::string_view name);

// nccl-tests' bus-bandwidth factor of `op` over groups of `n` ranks (see the overview).
double BusBandwidthFactor(BenchOp op, int64_t n);

// A byte count as nccl-tests' -b/-e take it: a non-negative number, optionally with a fraction,
// then an optional K, M or G suffix (powers of 1024, case-insensitive), e.g. "8", "64K", "1.5M".
// The result must be a whole number of bytes of at most 1 TiB. InvalidArgument otherwise, quoting
// the text. Thread-safe.
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

// What to measure.
struct BenchConfig {
  BenchOp op = BenchOp::kAllReduce;
  // Names of axes or groups to run (any name of a group kind selects it); empty: every kind whose
  // groups have more than one rank.
  std::vector<std::string> axes;
  uint64_t min_bytes = 8;
  uint64_t max_bytes = uint64_t{32} << 20;
  int64_t factor = 2;
  int64_t iters = 20;
  int64_t warmup = 5;
};

// The requested sizes: min_bytes, min_bytes * factor, ... up to max_bytes inclusive.
// Pure; requires factor >= 2 and min_bytes >= 1.
std::vector<uint64_t> SweepSizes(const BenchConfig& config);

// The group kinds `config.axes` selects in `plan`, in the plan's kind order (mesh::
// DistinctGroupKinds). InvalidArgument "--axes: unknown axis 'x'; this mesh has ..." for a name the
// plan does not have. Pure: every rank computes the same answer.
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
  std::string backend;
  int64_t world_size = 0;
  std::vector<BenchAxis> axes;
  // #wrong over every row of every axis.
  int64_t TotalWrong() const;
};

// Runs the sweep on every selected axis of `mesh`, which must have been built from `plan` over
// `world` (mesh::DeviceMesh::Create; its moe mesh serves the moe axes). Collective over `world`:
// every rank calls it with the same plan and config; ranks outside the mesh take part in the
// world-wide reductions only. `progress`, when not null, gets one line per axis and size from
// rank 0 of `world`. The returned report is complete on every rank. Fails with InvalidArgument
// for a bad config (before any communication, identically on every rank) or with the
// communicators' errors (allocation, copies, collectives).
absl::StatusOr<BenchReport> RunBench(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh,
                                     comm::Communicator& world, const BenchConfig& config,
                                     std::ostream* progress = nullptr);

// The report as nccl-tests-style text: a header naming the op, the backend and the sweep, then per
// axis a comment line, the column header, one line per row and the average bus bandwidth; then
// the total #wrong.
void WriteBenchText(const BenchReport& report, const BenchConfig& config,
                    const mesh::MeshPlan& plan, std::ostream& out);

// The report as one JSON object:
//   {"op", "type": "float32", "redop": "sum"|"none", "root": 0|null, "backend", "world_size",
//    "sweep": {"min_bytes", "max_bytes", "factor", "iters", "warmup"},
//    "mesh": <the plan summary of `nmesh plan`>,
//    "axes": [{"name", "names", "group_size", "group_count", "avg_busbw",
//              "rows": [{"size", "count", "type", "redop", "time_us", "algbw", "busbw",
//                        "wrong"}]}],
//    "wrong": <total>}
nlohmann::ordered_json BenchJson(const BenchReport& report, const BenchConfig& config,
                                 const mesh::MeshPlan& plan);

// Draws busbw (GB/s) against size (log2 axis), one line per axis, into the PNG `path` with
// gnuplot (the program named by $NMESH_GNUPLOT, default "gnuplot" on the PATH), using the pngcairo
// terminal when gnuplot has it and png otherwise. Fails with FailedPrecondition when gnuplot cannot
// be started, exits non-zero (its output is quoted) or writes no image. Not collective; writes a
// temporary directory under $TMPDIR (default /tmp) and removes it.
absl::Status PlotBench(const BenchReport& report, const std::string& path);

// The command line of `nmesh bench`.
struct BenchOptions {
  MeshOptions mesh;
  std::string axes;
  std::string op = "all_reduce";
  std::string min_bytes = "8";
  std::string max_bytes = "32M";
  std::optional<int64_t> factor;
  std::optional<int64_t> iters;
  std::optional<int64_t> warmup;
  std::string backend = "auto";
  std::string format = "text";
  std::optional<std::string> plot;
  bool progress = false;
  // Off by default. With a timeout the MPI backend still runs the blocking calls (the watchdog
  // watches them; comm/watchdog.h), so the measured path is the same.
  std::optional<double> timeout_s;
  // --flight-recorder DIR: where ranks that report a timeout write their flight records.
  std::optional<std::string> flight_recorder;
};

// Registers the `bench` subcommand and its flags on `app`; `options` must outlive the parse.
CLI::App* AddBenchCommand(CLI::App& app, BenchOptions& options);

// The BenchConfig the flags describe. InvalidArgument naming the flag for a bad value: an unknown
// --op, a bad -b/-e size or -b > -e, -f < 2, -n < 1, -w < 0, an empty --axes entry, a --plot path
// not ending in ".png". Pure.
absl::StatusOr<BenchConfig> BenchConfigFromOptions(const BenchOptions& options);

// Runs `nmesh bench` as one rank of the MPI job and returns the process exit code: the mesh is
// built as `nmesh run` builds it (tools/mesh_job.h: the first mesh of the recipe, or --section's;
// no communicator timeout unless --timeout-s sets one, since a timeout changes the measured path),
// then RunBench; rank 0 writes the report to `out` and, with --plot, draws it. Exit codes: 0 when
// every #wrong is 0; 1 when an element is wrong, a collective fails (the job is aborted), or the
// plot cannot be written or drawn (checked before the sweep where possible); 2 on a usage or config
// error ("nmesh: error: ..." naming the flag; {"error": ...} on stdout under --format json). Under
// --format json a plot adds {"plot": {"path", "error"?}} to the object. Collective over
// MPI_COMM_WORLD: every rank calls it with the same options.
int RunBenchCommand(const BenchOptions& options, std::ostream& out, std::ostream& err);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_BENCH_COMMAND_H_
