#include "nmesh/tools/mesh_job.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/printable.h"
#include "nmesh/base/timeout.h"
#include "nmesh/job/diagnosis.h"
#include "nmesh/job/launch.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {

using nlohmann::ordered_json;

int ExitCodeOf(const absl::Status& status) {
  return job::IsConfigError(status) ? kExitUsage : kExitRuntimeFailure;
}

absl::StatusOr<std::optional<absl::Duration>> TimeoutFromFlag(std::optional<double> seconds) {
  if (!seconds.has_value()) return std::nullopt;
  return TimeoutFromNumber(*seconds, absl::Seconds(1), "seconds", "--timeout-s");
}

void AddStartupTimeoutFlag(CLI::App& verb, std::optional<double>& seconds) {
  verb.add_option("--startup-timeout-s", seconds,
                  "How long the ranks wait for each other at start-up, in seconds (default: the "
                  "timeout, at least 10; without one 300); a rank missing by then is named")
      ->type_name("T");
}

absl::StatusOr<std::optional<absl::Duration>> StartupTimeoutFromFlag(
    std::optional<double> seconds) {
  if (!seconds.has_value()) return std::nullopt;
  return TimeoutFromNumber(*seconds, absl::Seconds(1), "seconds", "--startup-timeout-s");
}

int JobReporter::Fail(const absl::Status& status) {
  if (rank_ == 0) {
    const std::string message = PrintableLines(std::string(status.message()));
    err_ << absl::StrFormat("nmesh: error: %s\n", message);
    if (json_) out_ << DumpJson(ordered_json{{"error", message}}) << "\n";
  }
  return ExitCodeOf(status);
}

void JobReporter::Abort(const absl::Status& status) {
  // One write: several ranks report at once, and the launcher interleaves their writes.
  const std::string message = PrintableLines(std::string(status.message()));
  err_ << absl::StrFormat("nmesh: error: rank %d: %s\n", rank_, message);
  if (json_ && rank_ == 0) {
    out_ << DumpJson(ordered_json{{"error", message}}) << "\n";
  }
  out_.flush();
  err_.flush();
  job::EndJob(status, kExitRuntimeFailure);
}

void JobReporter::Note(const std::string& line) {
  if (rank_ == 0) err_ << absl::StrFormat("nmesh: %s\n", PrintableLines(line));
}

int ReportFlagError(const absl::Status& status, bool json, std::ostream& out, std::ostream& err) {
  const job::FlagErrorOutcome agreed = job::AgreeOnFlagError(status);
  JobReporter reporter(agreed.rank, json, out, err);
  if (agreed.end_job) reporter.Abort(agreed.status);
  return reporter.Fail(agreed.status);
}

void ApplyFlightRecorderFlag(const std::optional<std::string>& dir, JobReporter& reporter) {
  if (absl::Status s = job::StartTimeoutReporting(dir); !s.ok()) {
    reporter.Note(
        absl::StrFormat("error: %s (the job runs on without flight records)", s.message()));
  }
}

std::variant<CliJob, int> StartJob(job::JobOptions options, JobReporter& reporter,
                                   absl::Duration late) {
  // Job::Start calls `warn` on rank 0 only, possibly before the reporter knows its MPI rank.
  options.warn = [&err = reporter.err()](const std::string& warning) {
    err << absl::StrFormat("nmesh: warning: %s\n", PrintableLines(warning));
  };
  CliJob started = job::StartMpiJob(options, late);
  if (started.session == nullptr) {
    reporter.err() << absl::StrFormat("nmesh: error: cannot start MPI: %s\n",
                                      PrintableLines(std::string(started.status.message())));
    return kExitRuntimeFailure;
  }
  reporter.set_rank(started.session->world_rank());
  if (!started.status.ok()) {
    if (job::MustEndJob(started.status)) reporter.Abort(started.status);
    return reporter.Fail(started.status);
  }
  return started;
}

}  // namespace nmesh::tools
