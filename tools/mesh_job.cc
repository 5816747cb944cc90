#include "nmesh/tools/mesh_job.h"

#include <cmath>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/printable.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/watch/watchdog.h"
#include "nmesh/job/diagnosis.h"
#include "nmesh/job/launch.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {

using nlohmann::ordered_json;

int ExitCodeOf(const absl::Status& status) {
  return job::IsConfigError(status) ? kExitUsage : kExitRuntimeFailure;
}

void AddTimeoutFlag(CLI::App& verb, std::optional<std::string>& value,
                    const std::string& default_text) {
  verb.add_option("--timeout-s", value,
                  absl::StrFormat(
                      "Timeout of every communicator, in seconds (default: %s); a collective that "
                      "a rank never joins then ends the job with a report naming it. 0 or none: "
                      "no timeout, at a cost: such a collective hangs the job forever, silently",
                      default_text))
      ->type_name("T|none");
}

absl::StatusOr<TimeoutFlag> TimeoutFromFlag(const std::optional<std::string>& text) {
  TimeoutFlag flag;
  if (!text.has_value()) return flag;
  if (*text == "none") {
    flag.none = true;
    return flag;
  }
  double seconds = 0;
  if (!absl::SimpleAtod(*text, &seconds)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--timeout-s must be a number of seconds or none, got '%s'", Abbreviate(*text)));
  }
  if (seconds == 0) {
    flag.none = true;
    return flag;
  }
  NMESH_ASSIGN_OR_RETURN(flag.timeout,
                         TimeoutFromNumber(seconds, absl::Seconds(1), "seconds", "--timeout-s"));
  return flag;
}

void AddStoreFlag(CLI::App& verb, std::optional<std::string>& url) {
  verb.add_option_function<std::string>(
          "--store", [&url](const std::string& value) { url = value; },
          "Launch without MPI: meet at this store (redis://HOST:PORT[/PREFIX] or file:///DIR), "
          "with RANK and WORLD_SIZE (or SLURM_PROCID and SLURM_NTASKS) from the environment "
          "(default: NMESH_STORE)")
      ->type_name("URL");
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
  // A timeout the watchdog's report has named already (gloo: comm/watch/watchdog.h) is not
  // repeated.
  if (!comm::TimeoutReported(status)) {
    err_ << absl::StrFormat("nmesh: error: rank %d: %s\n", rank_, message);
  }
  if (json_ && rank_ == 0) {
    out_ << DumpJson(ordered_json{{"error", message}}) << "\n";
  }
  out_.flush();
  err_.flush();
  // Without MPI this process alone exits: with its own status's code.
  job::EndJob(status, job::MpiRunning() ? kExitRuntimeFailure : ExitCodeOf(status));
}

void JobReporter::Note(const std::string& line) {
  if (rank_ == 0) err_ << absl::StrFormat("nmesh: %s\n", PrintableLines(line));
}

int ReportFlagError(const absl::Status& status, bool json, std::ostream& out, std::ostream& err,
                    const std::optional<std::string>& store_url) {
  const job::FlagErrorOutcome agreed = job::AgreeOnFlagError(status, store_url);
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
                                   const std::optional<std::string>& store_url,
                                   absl::Duration late) {
  // Job::Start calls `warn` on rank 0 only, possibly before the reporter knows its MPI rank.
  options.warn = [&err = reporter.err()](const std::string& warning) {
    err << absl::StrFormat("nmesh: warning: %s\n", PrintableLines(warning));
  };
  CliJob started = job::StartLaunchedJob(options, store_url, late);
  if (!started.started) {
    const std::string message = PrintableLines(std::string(started.status.message()));
    if (!store_url.has_value()) {
      reporter.err() << absl::StrFormat("nmesh: error: cannot start MPI: %s\n", message);
      return kExitRuntimeFailure;
    }
    // Before any meeting: the environment is this rank's to report; the store (its URL, its
    // server) is the same for every rank, and rank 0 reports it.
    const bool environment = job::IsEnvironmentError(started.status);
    if (environment || job::LauncherRank() == 0) {
      reporter.err() << absl::StrFormat("nmesh: error: %s\n", message);
    }
    return ExitCodeOf(started.status);
  }
  reporter.set_rank(started.rank);
  if (!started.status.ok()) {
    if (job::MustEndJob(started.status)) reporter.Abort(started.status);
    return reporter.Fail(started.status);
  }
  return started;
}

}  // namespace nmesh::tools
