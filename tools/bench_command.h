// `nmesh bench`: collective bandwidth per mesh axis, measured and reported the way nccl-tests does.
//
//   mpirun -np 8 nmesh bench --tp 2 --cp 2 --op all_reduce -b 8 -e 64M -f 2 -n 20 -w 5
//   mpirun -np 8 nmesh bench --config examples/fsdp2_ep4_moe.yaml --op all_to_all_v --async
//
// The measurement is the bench engine's (perf/bench.h: sweep, columns, result check); this verb
// starts the job, turns the flags into its configuration (tools/bench_flags.h), prints the report
// as text or JSON (tools/bench_format.h) and draws it with --plot (tools/bench_plot.h).
#ifndef NMESH_TOOLS_BENCH_COMMAND_H_
#define NMESH_TOOLS_BENCH_COMMAND_H_

#include <ostream>

#include "nmesh/tools/bench_flags.h"

namespace nmesh::tools {

// Runs `nmesh bench` as one rank of the MPI job and returns the process exit code: the mesh is
// built as `nmesh run` builds it (tools/mesh_job.h: the first mesh of the recipe, or --section's;
// no communicator timeout unless --timeout-s sets one, since a timeout changes the measured path),
// then perf::RunBench; rank 0 writes the report to `out` and, with --plot, draws it. Exit codes: 0
// when every #wrong is 0; 1 when an element is wrong, a collective fails (the job is aborted), or
// the plot cannot be written or drawn (checked before the sweep where possible); 2 on a usage or
// config error ("nmesh: error: ..." naming the flag; {"error": ...} on stdout under --format
// json). Under --format json a plot adds {"plot": {"path", "error"?}} to the object. Collective
// over MPI_COMM_WORLD: every rank calls it with the same options.
int RunBenchCommand(const BenchOptions& options, std::ostream& out, std::ostream& err);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_BENCH_COMMAND_H_
