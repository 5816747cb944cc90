#include "nmesh/tools/mesh_job.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/job/diagnosis.h"
#include "nmesh/job/startup.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {

using nlohmann::ordered_json;

int ExitCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    default:
      return kExitRuntimeFailure;
  }
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
    err_ << absl::StrFormat("nmesh: error: %s\n", status.message());
    if (json_) out_ << DumpJson(ordered_json{{"error", std::string(status.message())}}) << "\n";
  }
  return ExitCodeOf(status);
}

void JobReporter::Abort(const absl::Status& status) {
  // One write: several ranks report at once, and the launcher interleaves their writes.
  err_ << absl::StrFormat("nmesh: error: rank %d: %s\n", rank_, status.message());
  if (json_ && rank_ == 0) {
    out_ << DumpJson(ordered_json{{"error", std::string(status.message())}}) << "\n";
  }
  out_.flush();
  err_.flush();
  if (status.code() == absl::StatusCode::kDeadlineExceeded) absl::SleepFor(kTimeoutReportGrace);
  comm::mpi::Session::AbortJob(kExitRuntimeFailure);
}

void JobReporter::Note(const std::string& line) {
  if (rank_ == 0) err_ << absl::StrFormat("nmesh: %s\n", line);
}

int ReportFlagError(const absl::Status& status, bool json, std::ostream& out, std::ostream& err) {
  JobReporter reporter(LauncherRank(), json, out, err);
  if (LauncherSize() <= 1) return reporter.Fail(status);
  absl::StatusOr<std::unique_ptr<comm::mpi::Session>> session =
      comm::mpi::Session::Init(nullptr, nullptr);
  if (!session.ok()) return reporter.Fail(status);
  reporter.set_rank((*session)->world_rank());
  absl::Status agreed =
      job::AgreeAtStartup(**session, job::MakeStartupRecord("", "", std::nullopt, status, {}, {}),
                          job::kDefaultStartupTimeout);
  if (agreed.ok() || job::IsAgreed(agreed)) return reporter.Fail(agreed.ok() ? status : agreed);
  reporter.Abort(agreed);
}

void ReportTimeouts(const std::optional<std::string>& dir, JobReporter& reporter) {
  std::optional<std::string> usable = dir;
  if (dir.has_value()) {
    if (absl::Status s = job::CheckFlightRecorderDir(*dir); !s.ok()) {
      reporter.Note(
          absl::StrFormat("error: %s (the job runs on without flight records)", s.message()));
      usable.reset();
    }
  }
  job::ReportTimeouts({.flight_recorder_dir = usable});
}

std::variant<CliJob, int> StartJob(job::JobOptions options, JobReporter& reporter,
                                   absl::Duration late) {
  absl::StatusOr<std::unique_ptr<comm::mpi::Session>> session =
      comm::mpi::Session::Init(nullptr, nullptr);
  if (!session.ok()) {
    reporter.err() << absl::StrFormat("nmesh: error: cannot start MPI: %s\n",
                                      session.status().message());
    return kExitRuntimeFailure;
  }
  reporter.set_rank((*session)->world_rank());
  if (late > absl::ZeroDuration()) absl::SleepFor(late);
  options.warn = [&reporter](const std::string& warning) { reporter.Note("warning: " + warning); };
  absl::StatusOr<std::unique_ptr<Job>> started = Job::Start(**session, options);
  if (!started.ok()) {
    if (job::IsAgreed(started.status())) return reporter.Fail(started.status());
    reporter.Abort(started.status());
  }
  CliJob cli_job;
  cli_job.session = *std::move(session);
  cli_job.job = *std::move(started);
  return cli_job;
}

}  // namespace nmesh::tools
