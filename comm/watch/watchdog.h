// The watchdog: one thread per process that watches every outstanding operation of every watched
// communicator against its deadline, and what it reports when one outlives it.
//
// Which operations are watched. An operation of an MPI communicator created with a timeout
// (CommOptions::timeout; Communicator::SetTimeout may change it later) and without
// CommOptions::interruptible:
// blocking ones (run as the fast blocking MPI call) and asynchronous ones (whose completion the
// watchdog tests when their deadline passes). The thread starts with the first such communicator
// and wakes every kWatchdogTick.
//
// What happens on expiry (the operation cannot be interrupted: a blocking MPI call does not
// return until its peers arrive):
// 1. Every communicator of the timed-out one's family (all those of one DeviceMesh) is aborted.
// 2. The ranks of the timed-out communicator exchange their flight records
// (comm/watch/flight_recorder.h) over a separate channel, a duplicate made when the communicator
// was created, within deadlines that scale with the operation's timeout and with the ranks'
// shown liveness (below: "The exchange's deadlines"). Every rank's watchdog answers such requests
// on every tick, whatever its main thread is doing; a rank that does not answer in time is
// reported as stopped or dead.
// 3. DiagnoseTimeout names the culprit, TraceWaits follows the waits across the ranks' other
// communicators (each answer carries where its process stands on all of them), and the process's
// TimeoutHandler gets a TimeoutReport (default: one line on stderr, FormatTimeoutReport). The
// job's rank 0 (global rank 0, which prints the job's summary) follows the waits over every rank
// of the widest communicator it watches with a channel (the job's world), asked over that one's
// channel: a wait that leaves the timed-out group (rank 2 waits on 'pp' for rank 6) is followed
// to its end instead of stopping at a rank that is itself only waiting.
// 4. After a grace (at least kAbortGrace, while still answering the other ranks' requests, so that
// they can name the culprit too) the job ends: MPI_Abort(MPI_COMM_WORLD, 1). A communicator with
// CommOptions::interruptible polls nonblocking calls instead and returns DeadlineExceeded from the
// operation, leaving the caller to recover; the watchdog leaves it alone.
//
// NCCL communicators (comm/nccl/communicator.h) are watched too, in the self-polling mode
// (Communicator::WatchMode): a blocking operation enforces its own deadline, but an asynchronous
// one (enqueued on the engine's stream, perhaps never waited for) is watched against its deadline,
// and every tick asks NCCL for asynchronous errors (ncclCommGetAsyncError), timeout or not. On a
// timeout or an error the watchdog aborts the communicator's family in one grouped call
// (AbortTogether), which fails the outstanding operations, and reports this rank's records
// (there is no separate channel for an exchange); the job goes on, so that the caller can
// rebuild, and the watchdog keeps watching the other communicators.
//
// gloo communicators of a store-launched job enforce their own deadlines; the watchdog thread
// answers the other ranks' asks for their records over the store, and a timed-out operation has
// its ranks' records exchanged, diagnosed and reported (Watchdog::ReportTimeout in
// watch/watchdog_thread.h, the channel in watch/store_side_channel.h) before it returns
// DeadlineExceeded; the job goes on.
//
// The separate channel needs MPI's "multiple" thread level (comm/mpi/session.h requests it): the
// watchdog makes MPI calls while the main thread is blocked in another. Where MPI grants less, MPI
// communicators with a timeout run as if interruptible.
#ifndef NMESH_COMM_WATCH_WATCHDOG_H_
#define NMESH_COMM_WATCH_WATCHDOG_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/watch/diagnosis.h"

namespace nmesh::comm {

inline constexpr absl::Duration kWatchdogTick = absl::Milliseconds(10);

// The exchange's deadlines. The exchange waits for the other ranks' watchdog threads to answer.
// How soon they do depends on the machine, not on nmesh: a loaded node (or a sanitizer build)
// schedules them late. So a fixed window would report live ranks as "stopped or dead" there, and
// a job could end before every rank has reported. Instead:
// - A rank is given up on (reported as stopped or dead) when it has neither answered nor shown
//   that its process is alive within ExchangeSilentLimit(timeout): a tenth of the timed-out
//   operation's timeout, at least kExchangeTimeout (1 s) and at most kExchangeSilentMax (10 s).
//   A longer timeout says that the job tolerates slower ranks, and a rank that is stopped or
//   dead is reported at most 10 s later than with 1 s.
// - A rank whose process has shown that it is alive (the backend's channel saw it take the
//   request, e.g. MPI matched a synchronous send: its MPI progresses, so it is neither stopped
//   nor dead) is waited for until ExchangeAliveLimit(timeout): twice the silent limit, at least
//   kExchangeAliveMin (20 s). Its answer is late only because its watchdog has not been
//   scheduled yet.
// - After reporting, a rank keeps answering the others before it ends the job (so that they can
//   name the culprit too) for kAbortGrace, extended by kAbortGrace after each request it answers
//   (a peer still exchanging), and until every rank that answered waiting in a watched operation
//   has had time to reach that operation's deadline, exchange and report (ranks that entered the
//   collective later, e.g. started late on a loaded node); never beyond AbortGraceLimit(timeout).
inline constexpr absl::Duration kExchangeTimeout = absl::Seconds(1);
inline constexpr absl::Duration kExchangeSilentMax = absl::Seconds(10);
inline constexpr absl::Duration kExchangeAliveMin = absl::Seconds(20);
inline constexpr absl::Duration kAbortGrace = absl::Seconds(1);
absl::Duration ExchangeSilentLimit(absl::Duration timeout);
absl::Duration ExchangeAliveLimit(absl::Duration timeout);
// ExchangeAliveLimit(timeout) + kAbortGrace.
absl::Duration AbortGraceLimit(absl::Duration timeout);
// How long the watchdog thread may make no progress (stuck in a backend's abort, in a handler)
// before its monitor ends the process: without it, no timeout would be enforced any more.
inline constexpr absl::Duration kWatchdogStallLimit = absl::Seconds(120);

// What the watchdog found when an operation outlived its timeout, or when a communicator reported
// an asynchronous error (then `error` is that error, `stuck` the oldest operation in flight, if
// any, and `ranks` this rank's records only).
struct TimeoutReport {
  std::string axis;  // the communicator's name (CommOptions::name)
  int rank = 0;      // this process's rank in it
  int size = 1;
  int64_t global_rank = -1;  // this process's rank in the job's world; -1: unknown
  absl::Duration timeout;
  OpRecord stuck;  // the operation that timed out
  // "all_reduce on axis 'tp' timed out after 1 s (rank 0 of 2)", as the operation's
  // DeadlineExceeded message would say.
  std::string error;
  TimeoutDiagnosis diagnosis;
  std::vector<RankRecords> ranks;  // every rank's records, in rank order
};

using TimeoutHandler = std::function<void(const TimeoutReport&)>;

// Replaces the process's handler (an empty function restores the default, which writes
// FormatTimeoutReport and a newline to stderr). Runs on the watchdog thread, before the job ends;
// it should only report. Thread-safe.
void SetTimeoutHandler(TimeoutHandler handler);

// What the monitor does when the watchdog thread has stalled for the limit: gets one line, e.g.
// "the watchdog thread made no progress for 120 s (last: aborting the family of axis 'tp'); ending
// the process". The default writes "nmesh: error: " and the line to stderr and ends the process
// with exit code 1 (std::_Exit: the stuck thread may hold locks a normal exit would need).
using WatchdogStallHandler = std::function<void(const std::string& line)>;

// Sets the monitor's limit (positive) and action (empty: the default). The monitor thread runs
// beside the watchdog thread, from the first watched communicator on, and wakes at least every
// second. Thread-safe.
void SetWatchdogStall(absl::Duration limit, WatchdogStallHandler handler = {});

// "rank 2: all_reduce on axis 'tp' timed out after 1 s (rank 0 of 2): timeout on axis 'tp' (group
// [2, 3]): rank 3 never entered all_reduce #42 (4 MiB float32); rank 2 waits in it since 1.0 s".
std::string FormatTimeoutReport(const TimeoutReport& report);

// The type URL of the payload that marks a DeadlineExceeded whose report the process's
// TimeoutHandler has already had: a backend that returns its timeouts instead of ending the job
// (gloo, whose communicators of a store-launched job are diagnosed as MPI's are) reports first, so
// that a caller that prints errors need not print the timeout again.
inline constexpr std::string_view kTimeoutReportedPayloadUrl = "nmesh.timeout_reported";
// `status` marked as reported (an OK status stays OK).
absl::Status MarkTimeoutReported(absl::Status status);
// Whether `status` is so marked.
bool TimeoutReported(const absl::Status& status);

// Writes the report's records (FlightRecordJson) to `dir`/nmesh_flight_rank<global rank>.json and
// returns the path; an error naming the path when it cannot be written. The file must not exist
// yet: an existing file is never truncated and a link at that name never followed
// (base/file.h's WriteNewFile; AlreadyExists).
absl::StatusOr<std::string> WriteFlightRecord(const std::string& dir, const TimeoutReport& report);

}  // namespace nmesh::comm

#endif  // NMESH_COMM_WATCH_WATCHDOG_H_
