#include "nmesh/tools/bench_command.h"

#include <unistd.h>

#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/printable.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/job/launch.h"
#include "nmesh/perf/bench.h"
#include "nmesh/tools/bench_format.h"
#include "nmesh/tools/bench_plot.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/mesh_job.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {

using nlohmann::ordered_json;

namespace {

// What every rank of a bench job must agree on, beyond the mesh: what it measures and how.
std::string BenchCommandWords(const perf::BenchConfig& config, const BenchOptions& options) {
  return absl::StrFormat(
      "bench op=%s axes=%s bytes=%d..%d factor=%d iters=%d warmup=%d async=%d plot=%d",
      perf::BenchOpName(config.op), absl::StrJoin(config.axes, ","), config.min_bytes,
      config.max_bytes, config.factor, config.iters, config.warmup, config.async ? 1 : 0,
      options.plot.has_value() ? 1 : 0);
}

}  // namespace

int RunBenchCommand(const BenchOptions& options, std::ostream& out, std::ostream& err) {
  const bool json = options.format == "json";
  const std::optional<std::string> store_url = job::StoreUrlFrom(options.store);
  // Flags first, before MPI: every rank finds the same error.
  absl::StatusOr<perf::BenchConfig> config = BenchConfigFromOptions(options);
  if (!config.ok()) return ReportFlagError(config.status(), json, out, err, store_url);
  absl::StatusOr<TimeoutFlag> timeout = TimeoutFromFlag(options.timeout_s);
  if (!timeout.ok()) return ReportFlagError(timeout.status(), json, out, err, store_url);
  absl::StatusOr<std::optional<absl::Duration>> startup_timeout =
      StartupTimeoutFromFlag(options.startup_timeout_s);
  if (!startup_timeout.ok())
    return ReportFlagError(startup_timeout.status(), json, out, err, store_url);

  // The communicators' timeout is --timeout-s or the default, whatever the recipe says.
  JobReporter reporter(job::LauncherRank(), json, out, err);
  ApplyFlightRecorderFlag(options.flight_recorder, reporter);
  absl::StatusOr<job::BackendChoice> backend_choice = job::ParseBackendChoice(options.backend);
  if (!backend_choice.ok())
    return ReportFlagError(backend_choice.status(), json, out, err, store_url);
  std::variant<CliJob, int> started = StartJob({.mesh = options.mesh,
                                                .command = BenchCommandWords(*config, options),
                                                .startup_timeout = *startup_timeout,
                                                .backend = *backend_choice,
                                                .timeout = timeout->timeout,
                                                .recipe_timeout = false,
                                                .no_timeout = timeout->none,
                                                .all_sections = false,
                                                .build_contexts = false},
                                               reporter, store_url);
  if (const int* code = std::get_if<int>(&started)) return *code;
  Job& job = *std::get<CliJob>(started).job;
  const JobMesh& target = job.meshes().front();
  if (absl::Status axes = perf::SelectBenchAxes(*target.plan, config->axes).status(); !axes.ok()) {
    return reporter.Fail(absl::InvalidArgumentError(absl::StrFormat("--axes: %s", axes.message())));
  }
  absl::Status writable;
  if (options.plot.has_value() && job.rank() == 0) writable = CheckPlotWritable(*options.plot);
  if (absl::Status agreed = comm::AgreeOnStatus(job.host_world(), writable); !agreed.ok()) {
    return reporter.Fail(agreed);
  }
  reporter.Note(
      absl::StrFormat("bench: backend %s (%s)", job.backend().name, job.backend().reason));
  for (const JobMesh& mesh : job.meshes()) {
    if (const std::string nccl = comm::NcclSettingsMapText(mesh.spec.nccl); !nccl.empty()) {
      reporter.Note(absl::StrFormat("bench: nccl settings of mesh '%s' %s: %s", mesh.spec.label,
                                    mesh.nccl_status, nccl));
    }
  }

  // The ranks sharing a host must fit in its memory together: said once, by rank 0.
  if (absl::Status memory =
          perf::CheckBenchMemory(*target.plan, *target.mesh, *job.backend().world, *config);
      !memory.ok()) {
    return reporter.Fail(memory);
  }

  const bool progress = options.progress || (&err == &std::cerr && isatty(STDERR_FILENO) == 1);
  perf::RowObserver on_row;
  if (progress && job.rank() == 0) {
    on_row = [&err, op = config->op](const perf::BenchAxis& axis, const perf::BenchRow& row,
                                     size_t index, size_t rows) {
      err << BenchProgressLine(op, axis, row, index, rows) << std::flush;
    };
  }
  absl::StatusOr<perf::BenchReport> report =
      perf::RunBench(*target.plan, *target.mesh, *job.backend().world, *config, on_row);
  if (!report.ok()) reporter.Abort(report.status());

  absl::Status plotted;
  if (job.rank() == 0) {
    if (options.plot.has_value()) plotted = PlotBench(*report, *options.plot);
    if (json) {
      ordered_json object = BenchJson(*report, *config, *target.plan);
      if (options.plot.has_value()) {
        object["plot"] = plotted.ok() ? ordered_json{{"path", *options.plot}}
                                      : ordered_json{{"path", *options.plot},
                                                     {"error", std::string(plotted.message())}};
      }
      out << DumpJson(object) << "\n";
    } else {
      WriteBenchText(*report, *config, *target.plan, out);
      if (options.plot.has_value() && plotted.ok()) out << "# plot: " << *options.plot << "\n";
    }
    out.flush();
  }
  // Every rank exits with the same code.
  if (absl::Status agreed = comm::AgreeOnStatus(job.host_world(), plotted); !agreed.ok()) {
    if (job.rank() == 0)
      err << absl::StrFormat("nmesh: error: %s\n", PrintableLines(std::string(agreed.message())));
    return kExitRuntimeFailure;
  }
  if (const int64_t wrong = report->TotalWrong(); wrong != 0) {
    reporter.Note(absl::StrFormat(
        "error: %d output element(s) differ from the expected values (see the #wrong column)",
        wrong));
    return kExitRuntimeFailure;
  }
  return kExitOk;
}

}  // namespace nmesh::tools
