// The flags of `nmesh bench`: their registration on the command line and their translation into
// the bench engine's configuration (perf/bench.h).
//
//   BenchOptions options;
//   AddBenchCommand(app, options);          // registers `bench` and its flags
//   ... app.parse(...) ...
//   absl::StatusOr<perf::BenchConfig> config = BenchConfigFromOptions(options);
//
// A new flag is a field of BenchOptions, one registration in AddBenchCommand and, when it changes
// what is measured, one check in BenchConfigFromOptions.
#ifndef NMESH_TOOLS_BENCH_FLAGS_H_
#define NMESH_TOOLS_BENCH_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "nmesh/perf/bench.h"
#include "nmesh/tools/mesh_options.h"

namespace nmesh::tools {

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
  // Issue every call through the communicator's *Async method and wait its handle.
  bool async = false;
  std::string backend = "auto";
  std::string format = "text";
  std::optional<std::string> plot;
  bool progress = false;
  // --timeout-s (TimeoutFromFlag): 10 minutes by default, the recipe's ignored. With a timeout the
  // MPI backend still runs the blocking calls (the watchdog watches them;
  // comm/watch/watchdog.h), so the measured path is the same.
  std::optional<std::string> timeout_s;
  // How long the ranks wait for each other at start-up (job::JobOptions::startup_timeout).
  std::optional<double> startup_timeout_s;
  // --store URL: a launch without MPI (job::StoreUrlFrom: else NMESH_STORE).
  std::optional<std::string> store;
  // --flight-recorder DIR: where ranks that report a timeout write their flight records.
  std::optional<std::string> flight_recorder;
};

// Registers the `bench` subcommand and its flags on `app`; `options` must outlive the parse.
CLI::App* AddBenchCommand(CLI::App& app, BenchOptions& options);

// A byte count as nccl-tests' -b/-e take it: a non-negative number, optionally with a fraction,
// then an optional K, M or G suffix (powers of 1024, case-insensitive), e.g. "8", "64K", "1.5M".
// The result must be a whole number of bytes of at most 1 TiB. InvalidArgument otherwise, quoting
// the text. Thread-safe.
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

// The perf::BenchConfig the flags describe. InvalidArgument naming the flag for a bad value: an
// unknown --op, a bad -b/-e size or -b > -e, -f < 2, -n < 1, -w < 0, an empty --axes entry, a
// --plot path not ending in ".png". Pure.
absl::StatusOr<perf::BenchConfig> BenchConfigFromOptions(const BenchOptions& options);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_BENCH_FLAGS_H_
