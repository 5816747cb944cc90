// The text and JSON forms of a `nmesh bench` report (perf/bench.h), and its progress lines.
#ifndef NMESH_TOOLS_BENCH_FORMAT_H_
#define NMESH_TOOLS_BENCH_FORMAT_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "nlohmann/json.hpp"
#include "nmesh/mesh/plan.h"
#include "nmesh/perf/bench.h"

namespace nmesh::tools {

// A byte count as the size flags take it, exactly: the largest binary suffix that divides it,
// 1024 -> "1K", 1536 -> "1536" (comm::FormatBytes rounds for people: "1.5 KiB").
std::string FormatExactSize(uint64_t bytes);

// One progress line for a finished row, e.g.
// "nmesh bench: tp all_reduce [3/3] 1K B: 12.30 us, busbw 0.083 GB/s".
std::string BenchProgressLine(perf::BenchOp op, const perf::BenchAxis& axis,
                              const perf::BenchRow& row, size_t index, size_t rows);

// The report as nccl-tests-style text: a header naming the op, the backend and the sweep, then per
// axis a comment line, the column header, one line per row and the average bus bandwidth; then
// the total #wrong.
void WriteBenchText(const perf::BenchReport& report, const perf::BenchConfig& config,
                    const mesh::MeshPlan& plan, std::ostream& out);

// The report as one JSON object:
//   {"op", "type": "float32", "redop": "sum"|"none", "root": 0|null, "async": true (only with
//    --async), "backend", "world_size",
//    "sweep": {"min_bytes", "max_bytes", "factor", "iters", "warmup"},
//    "mesh": <the plan summary of `nmesh plan`>,
//    "axes": [{"name", "names", "group_size", "group_count", "avg_busbw",
//              "rows": [{"size", "count", "type", "redop", "time_us", "algbw", "busbw",
//                        "wrong"}]}],
//    "wrong": <total>}
nlohmann::ordered_json BenchJson(const perf::BenchReport& report, const perf::BenchConfig& config,
                                 const mesh::MeshPlan& plan);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_BENCH_FORMAT_H_
