// `nmesh bench --plot`: busbw against size drawn with gnuplot.
#ifndef NMESH_TOOLS_BENCH_PLOT_H_
#define NMESH_TOOLS_BENCH_PLOT_H_

#include <string>

#include "absl/status/status.h"
#include "nmesh/perf/bench.h"

namespace nmesh::tools {

// Draws busbw (GB/s) against size (log2 axis), one line per axis, into the PNG `path` with
// gnuplot (the program named by $NMESH_GNUPLOT, default "gnuplot" on the PATH), using the pngcairo
// terminal when gnuplot has it and png otherwise. Fails with FailedPrecondition when gnuplot cannot
// be started, exits non-zero (its output is quoted) or writes no image. Not collective; writes a
// temporary directory under $TMPDIR (default /tmp) and removes it.
absl::Status PlotBench(const perf::BenchReport& report, const std::string& path);

// Whether `path` can be created, checked before a sweep so that a bad path fails in seconds
// rather than after the whole benchmark; nothing is left there. InvalidArgument
// "--plot: cannot write '<path>': <reason>" otherwise (bad input, like a bad flag), also when a
// file or a link already exists there: nmesh never overwrites a file.
absl::Status CheckPlotWritable(const std::string& path);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_BENCH_PLOT_H_
