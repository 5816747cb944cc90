#include "nmesh/tools/bench_flags.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/job/job.h"
#include "nmesh/tools/mesh_job.h"

namespace nmesh::tools {
namespace {

constexpr uint64_t kMaxBytes = uint64_t{1} << 40;

// Sizes are whole bytes with an optional K/M/G suffix (case-insensitive).
absl::StatusOr<uint64_t> ParseSizeFlag(std::string_view flag, const std::string& text) {
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s", flag, bytes.status().message()));
  }
  if (*bytes == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be at least 1 byte, got '%s'", flag, Abbreviate(text)));
  }
  return *bytes;
}

}  // namespace

CLI::App* AddBenchCommand(CLI::App& app, BenchOptions& options) {
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Measure a collective per mesh axis, nccl-tests style, and check its results (mpirun -np N)");
  AddMeshOptions(*bench, options.mesh);
  bench
      ->add_option("--axes", options.axes,
                   "Comma-separated axes or groups to measure (default: every kind of group with "
                   "more than one rank)")
      ->type_name("A,B,...");
  std::vector<std::string> ops;
  for (perf::BenchOp op : perf::AllBenchOps()) ops.emplace_back(perf::BenchOpName(op));
  bench->add_option("--op", options.op, "Collective: " + absl::StrJoin(ops, ", "))
      ->check(CLI::IsMember(ops));
  bench->add_option("-b,--minbytes", options.min_bytes, "Smallest size in bytes (K/M/G suffixes)")
      ->type_name("SIZE");
  bench->add_option("-e,--maxbytes", options.max_bytes, "Largest size in bytes (default 32M)")
      ->type_name("SIZE");
  AddInt64Option(*bench, "-f,--stepfactor", options.factor,
                 "Multiply the size by this between rows (default 2)");
  AddInt64Option(*bench, "-n,--iters", options.iters, "Timed calls per size (default 20)");
  AddInt64Option(*bench, "-w,--warmup_iters", options.warmup, "Warm-up calls per size (default 5)");
  bench->add_flag("--async", options.async,
                  "Issue each call through the asynchronous path and wait its handle");
  bench
      ->add_option(
          "--backend", options.backend,
          "auto (NCCL when every rank has a GPU, else MPI; gloo under --store), mpi, nccl or "
          "gloo (with --store)")
      ->check(CLI::IsMember(FlagValues<job::BackendChoice>(job::kBackendChoiceNames)));
  AddStoreFlag(*bench, options.store);
  bench->add_option("--format", options.format, "Output format: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  bench
      ->add_option_function<std::string>(
          "--plot", [&options](const std::string& v) { options.plot = v; },
          "Draw busbw against size into this PNG (rank 0, with gnuplot)")
      ->type_name("FILE.png");
  bench->add_flag("--progress", options.progress,
                  "One line per axis and size on stderr (default: only when stderr is a terminal)");
  AddTimeoutFlag(*bench, options.timeout_s,
                 "600, 10 minutes; the recipe's dist_env.timeout_minutes is ignored");
  AddStartupTimeoutFlag(*bench, options.startup_timeout_s);
  bench
      ->add_option("--flight-recorder", options.flight_recorder,
                   "On a timeout, write each reporting rank's flight records as JSON into DIR")
      ->type_name("DIR");
  return bench;
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid size '%s' (%s; expected bytes with an optional K, M or G suffix, e.g. 64K)",
        Abbreviate(text), why));
  };
  std::string digits(text);
  uint64_t unit = 1;
  if (!digits.empty()) {
    switch (absl::ascii_toupper(static_cast<unsigned char>(digits.back()))) {
      case 'K':
        unit = uint64_t{1} << 10;
        break;
      case 'M':
        unit = uint64_t{1} << 20;
        break;
      case 'G':
        unit = uint64_t{1} << 30;
        break;
      default:
        break;
    }
    if (unit != 1) digits.pop_back();
  }
  if (digits.empty() || digits.find_first_not_of("0123456789.") != std::string::npos ||
      std::count(digits.begin(), digits.end(), '.') > 1 || digits == ".") {
    return bad("not a number");
  }
  const double value = std::strtod(digits.c_str(), nullptr) * static_cast<double>(unit);
  if (value > static_cast<double>(kMaxBytes)) return bad("more than 1 TiB");
  if (value != std::floor(value)) return bad("not a whole number of bytes");
  return static_cast<uint64_t>(value);
}

absl::StatusOr<perf::BenchConfig> BenchConfigFromOptions(const BenchOptions& options) {
  perf::BenchConfig config;
  absl::StatusOr<perf::BenchOp> op = perf::ParseBenchOp(options.op);
  if (!op.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("--op: %s", op.status().message()));
  }
  config.op = *op;
  if (!options.axes.empty()) {
    const std::vector<std::string> names = absl::StrSplit(options.axes, ',');
    for (const std::string& name : names) {
      if (name.empty()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("--axes: empty axis name in '%s'", Abbreviate(options.axes)));
      }
      config.axes.emplace_back(name);
    }
  }
  NMESH_ASSIGN_OR_RETURN(config.min_bytes, ParseSizeFlag("-b (--minbytes)", options.min_bytes));
  NMESH_ASSIGN_OR_RETURN(config.max_bytes, ParseSizeFlag("-e (--maxbytes)", options.max_bytes));
  if (config.min_bytes > config.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("-b (--minbytes) %s is larger than -e (--maxbytes) %s", options.min_bytes,
                        options.max_bytes));
  }
  config.factor = options.factor.value_or(config.factor);
  if (config.factor < 2) {
    return absl::InvalidArgumentError(
        absl::StrFormat("-f (--stepfactor) must be at least 2, got %d", config.factor));
  }
  config.iters = options.iters.value_or(config.iters);
  // A bound keeps a typo (or INT64_MAX) from running for ever; nccl-tests runs 20.
  constexpr int64_t kMaxIters = 1000000;
  if (config.iters < 1 || config.iters > kMaxIters) {
    return absl::InvalidArgumentError(
        absl::StrFormat("-n (--iters) must be between 1 and %d, got %d", kMaxIters, config.iters));
  }
  config.warmup = options.warmup.value_or(config.warmup);
  if (config.warmup < 0 || config.warmup > kMaxIters) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "-w (--warmup_iters) must be between 0 and %d, got %d", kMaxIters, config.warmup));
  }
  config.async = options.async;
  if (options.plot.has_value()) {
    const std::string& plot = *options.plot;
    if (plot.size() <= 4 || absl::AsciiStrToLower(plot.substr(plot.size() - 4)) != ".png") {
      return absl::InvalidArgumentError(
          absl::StrFormat("--plot: the file name must end in .png, got '%s'",
                          Abbreviate(plot, kMaxQuotedPathBytes)));
    }
  }
  return config;
}

}  // namespace nmesh::tools
