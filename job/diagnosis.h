// How a job reports a timeout the watchdog found (comm/watch/watchdog.h): the lines `nmesh run` and
// `nmesh bench` print, and the flight-record dumps of --flight-recorder.
//
//   NMESH_RETURN_IF_ERROR(job::CheckFlightRecorderDir(dir));   // before the job starts
//   job::ReportTimeouts({.flight_recorder_dir = dir});
// or, running on without dumps when the directory cannot be written,
//   if (absl::Status s = job::StartTimeoutReporting(dir); !s.ok()) std::cerr << s.message();
//
// On a timeout every rank of the timed-out communicator writes one line to stderr,
//   nmesh: error: rank 2: all_gather on axis 'tp' timed out after 1 s (rank 0 of 2): timeout on
//   axis 'tp' (group [2, 3]): rank 3 never entered all_gather #3 (8 B int64); rank 2 waits in it
//   since 1.0 s
// and, with a flight-recorder directory, the records it gathered from every rank of that
// communicator to <dir>/nmesh_flight_rank<rank>.json. The job's rank 0 first writes a summary:
// where the waits of the ranks it heard from end, followed across axes (comm::TraceWaits), e.g.
//   nmesh: error: summary: rank 2 waits in all_gather #1 (8 B int64) on axis 'tp' (group [2, 3]),
//   which rank 3 never entered; rank 3 waits in all_reduce #9 (8 B int64) on axis 'world' (group
//   [0, 1, 2, 3, 4, 5, 6, 7]), which ranks 0, 2 never entered: a cycle (...)
// or, when nothing could be followed, its own diagnosis. Then the watchdog ends the job (exit 1);
// under a store launch (gloo) the timed-out operation returns DeadlineExceeded marked as reported
// (comm::TimeoutReported), and the CLI exits 1 without printing it again.
#ifndef NMESH_JOB_DIAGNOSIS_H_
#define NMESH_JOB_DIAGNOSIS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "nmesh/comm/watch/watchdog.h"

namespace nmesh::job {

struct TimeoutReporting {
  // Where each reporting rank writes its flight records as JSON; unset: nowhere.
  std::optional<std::string> flight_recorder_dir = std::nullopt;
};

// Installs the process's timeout handler (comm::SetTimeoutHandler) described above. A dump that
// cannot be written adds "nmesh: error: rank R: --flight-recorder: cannot write '<path>'" and
// changes nothing else. Thread-safe.
void ReportTimeouts(TimeoutReporting reporting);

// ReportTimeouts with `flight_recorder_dir` for the dumps when CheckFlightRecorderDir accepts it.
// Otherwise installs the report without dumps and returns the directory's error: the job runs on
// without flight records, and the caller says so. Thread-safe.
absl::Status StartTimeoutReporting(const std::optional<std::string>& flight_recorder_dir);

// OK when `dir` is an existing directory this process may write into; otherwise
// FailedPrecondition "--flight-recorder: cannot write into '<dir>': <reason>".
absl::Status CheckFlightRecorderDir(const std::string& dir);

// The line printed for `report` (without the newline): "nmesh: error: " + FormatTimeoutReport.
std::string TimeoutLine(const comm::TimeoutReport& report);
// Rank 0's summary line for `report` (without the newline): "nmesh: error: summary: " + the trace
// of the waits, or the diagnosis when there is none.
std::string SummaryLine(const comm::TimeoutReport& report);

}  // namespace nmesh::job

#endif  // NMESH_JOB_DIAGNOSIS_H_
