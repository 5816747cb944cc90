#include "nmesh/job/diagnosis.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/printable.h"

namespace nmesh::job {

std::string TimeoutLine(const comm::TimeoutReport& report) {
  return absl::StrFormat("nmesh: error: %s", comm::FormatTimeoutReport(report));
}

std::string SummaryLine(const comm::TimeoutReport& report) {
  return absl::StrFormat("nmesh: error: summary: %s", report.diagnosis.trace.empty()
                                                          ? report.diagnosis.summary
                                                          : report.diagnosis.trace);
}

void ReportTimeouts(TimeoutReporting reporting) {
  comm::SetTimeoutHandler([reporting = std::move(reporting)](const comm::TimeoutReport& report) {
    // One write per line, so that lines of several ranks do not interleave.
    std::string text;
    if (report.global_rank == 0) text = SummaryLine(report) + "\n";
    text += TimeoutLine(report) + "\n";
    if (reporting.flight_recorder_dir.has_value()) {
      absl::StatusOr<std::string> path =
          comm::WriteFlightRecord(*reporting.flight_recorder_dir, report);
      if (!path.ok()) {
        absl::StrAppendFormat(&text, "nmesh: error: rank %d: --flight-recorder: %s\n",
                              report.global_rank >= 0 ? report.global_rank : report.rank,
                              PrintableLines(std::string(path.status().message())));
      }
    }
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  });
}

absl::Status CheckFlightRecorderDir(const std::string& dir) {
  std::error_code error;
  if (dir.empty()) {
    return absl::FailedPreconditionError("--flight-recorder: the directory name is empty");
  }
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("--flight-recorder: cannot write into '%s': not a directory",
                        Abbreviate(dir, kMaxQuotedPathBytes)));
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("--flight-recorder: cannot write into '%s': %s",
                        Abbreviate(dir, kMaxQuotedPathBytes), std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status StartTimeoutReporting(const std::optional<std::string>& flight_recorder_dir) {
  absl::Status usable;
  if (flight_recorder_dir.has_value()) usable = CheckFlightRecorderDir(*flight_recorder_dir);
  ReportTimeouts({.flight_recorder_dir = usable.ok() ? flight_recorder_dir : std::nullopt});
  return usable;
}

}  // namespace nmesh::job
