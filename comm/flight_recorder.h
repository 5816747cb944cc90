// The flight recorder of a communicator: its last N operations, kept in a fixed ring, and the
// analysis that turns the records of every rank of a hung communicator into one line naming the
// culprit.
//
// Every Communicator records each operation it issues (blocking or asynchronous, Split included;
// zero-count collectives, which communicate nothing, are not recorded): a sequence number
// (1, 2, ... per communicator), the operation, its count, DataType and root or peer, when it was
// issued, when it ended and how (OpState). The ring holds CommOptions::flight_recorder_entries
// records (default kDefaultFlightRecorderEntries); the oldest is overwritten, and recording never
// allocates. Reading it (Communicator::flight_recorder()->Snapshot()) copies the records out.
//
// When an operation outlives its timeout, the watchdog (comm/watchdog.h) gathers the records of
// every rank of the communicator over a separate channel and calls DiagnoseTimeout, e.g.
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp,
//                          world->Split(world->rank() / 2, world->rank(),
//                                       {.name = "tp", .timeout = absl::Seconds(30)}));
//   for (const OpRecord& record : tp->flight_recorder()->Snapshot()) {
//     std::cout << record.seq << " " << OpStateName(record.state) << "\n";
//   }
//
// which, for a hung all_reduce, reads
//
//  timeout on axis 'tp' (group [2, 3]): rank 3 never entered all_reduce #42 (4 MiB float32);
//  rank 2 waits in it since 2.0 s
//
// Ranks appear by their global rank (their rank in the job's world) where the backend knows it.
// FlightRecordJson writes the gathered records as JSON for later analysis.
//
// Thread safety: a FlightRecorder may be written by the communicator's thread while another thread
// (the watchdog) reads it; DiagnoseTimeout and the formatting functions are pure.
#ifndef NMESH_COMM_FLIGHT_RECORDER_H_
#define NMESH_COMM_FLIGHT_RECORDER_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/op.h"

namespace nmesh::comm {

enum class OpState : uint8_t {
  kRunning,    // issued, not yet ended (or its end not yet observed: an asynchronous operation
               // that nobody has waited on or tested)
  kCompleted,  // ended with OK
  kFailed,     // ended with an error
};
// "running", "completed", "failed".
std::string_view OpStateName(OpState state);

// One operation. Fixed size and trivially copyable, so that ranks can exchange records as bytes.
// Times are nanoseconds since the Unix epoch (absl::GetCurrentTimeNanos); 0 means "not yet".
struct OpRecord {
  uint64_t seq = 0;  // 1, 2, ... per communicator; 0: an empty slot
  // 1, 2, ... over the operations every rank takes part in (the collectives and split), so that
  // ranks' records line up even when they made different point-to-point calls; 0 for send, recv
  // and sendrecv.
  uint64_t collective_seq = 0;
  int64_t count = 0;        // the per-rank count (as in OpArgs: all_gather's send count, ...)
  int64_t enqueue_ns = 0;   // when the caller issued it
  int64_t start_ns = 0;     // when the backend was handed it (after the argument checks)
  int64_t end_ns = 0;       // when it was seen to end
  int64_t deadline_ns = 0;  // when the watchdog gives up on it; 0: not watched
  int32_t peer = -1;        // root, peer or destination; -1: none
  OpKind op = OpKind::kBarrier;
  DataType type = DataType::kUint8;
  OpState state = OpState::kRunning;
};

// "all_reduce #42 (4 MiB float32)", "broadcast #3 (16 B int32, root 1)", "barrier #7".
std::string DescribeRecord(const OpRecord& record);
// "4 MiB", "1.5 KiB", "16 B".
std::string FormatBytes(uint64_t bytes);

// A ring of the last capacity() operations of one communicator.
class FlightRecorder {
 public:
  // At least one entry (0 is treated as 1).
  explicit FlightRecorder(size_t capacity = kDefaultFlightRecorderEntries);
  FlightRecorder(const FlightRecorder&) = delete;
  FlightRecorder& operator=(const FlightRecorder&) = delete;

  size_t capacity() const { return ring_.size(); }

  // Records an operation issued at `now_ns` and handed to the backend at once; returns its
  // sequence number. `deadline_ns` 0: not watched. Never allocates.
  uint64_t Start(OpKind op, int64_t count, DataType type, int32_t peer, int64_t now_ns,
                 int64_t deadline_ns);
  // Records that operation `seq` ended at `now_ns`. A record already overwritten by later ones is
  // left alone; so is one that has already ended.
  void Finish(uint64_t seq, bool ok, int64_t now_ns);
  // Stops watching every running operation (deadline_ns = 0): after SetTimeout or an abort.
  void Unwatch();

  // The records, oldest first (at most capacity()).
  std::vector<OpRecord> Snapshot() const;
  // The sequence number of the last operation recorded (0: none yet).
  uint64_t last_seq() const;
  // The collective_seq of the last collective (or split) recorded (0: none yet).
  uint64_t last_collective_seq() const;
  // The oldest running operation whose deadline is at or before `now_ns`, if any.
  std::optional<OpRecord> FirstExpired(int64_t now_ns) const;

 private:
  mutable std::mutex mu_;
  std::vector<OpRecord> ring_;  // slot (seq - 1) % capacity
  uint64_t last_ = 0;
  uint64_t last_collective_ = 0;
};

// Where a rank's process stands on one of its communicators, any axis (not only the one that
// timed out): for following a wait from one axis to another (TraceWaits).
struct AxisProgress {
  std::string axis;    // the communicator's name
  uint64_t group = 0;  // identifies its group (a fingerprint of the members' global ranks)
  std::vector<int64_t> members;  // their global ranks, in rank order; empty: not known
  uint64_t entered = 0;          // the collective_seq of the last collective it entered (0: none)
  OpRecord waiting;              // its oldest running operation; seq 0: none
};

// What one rank of a communicator reported about it.
struct RankRecords {
  int rank = 0;                   // in the communicator
  int64_t global_rank = -1;       // in the job's world; -1: unknown (then `rank` is shown)
  bool answered = false;          // false: it did not answer in time (stopped or dead)
  int64_t now_ns = 0;             // its clock when it answered
  std::vector<OpRecord> records;  // oldest first
  // What the rank's process waits in on any communicator, e.g. "all_gather #1 (8 B int64) on axis
  // 'tp'"; empty: nothing (or unknown).
  std::string blocked_in;
  // Where the process stands on each of its watched communicators (empty: not known).
  std::vector<AxisProgress> axes;
};

// The analysis of one timeout.
struct TimeoutDiagnosis {
  // e.g. "timeout on axis 'tp' (group [2, 3]): rank 3 never entered all_reduce #42 (4 MiB
  // float32); rank 2 waits in it since 2.0 s".
  std::string summary;
  // The global ranks (or communicator ranks) held responsible: ranks that never entered the
  // operation, called another one at its sequence number, or did not answer.
  std::vector<int64_t> culprits;
  uint64_t seq = 0;  // the operation that timed out
  // Where the waits of the ranks that answered end, across axes (TraceWaits); empty: not traced.
  std::string trace;
};

// Pure: the culprit of a timeout of operation `stuck` on communicator `axis`, from the records of
// every rank (`ranks`, one entry per rank of the communicator, in rank order; the reporting rank's
// own entry included). Ranks are compared by collective_seq, so point-to-point traffic between
// collectives does not shift them.
//   A collective: for each rank, did not answer ("rank 5 did not answer: stopped or dead"), never
//   entered the operation ("rank 3 never entered all_reduce #42 (...)", with what it waits in
//   instead if anything), called another collective in its place ("rank 1 called all_gather #42
//   (...) instead (mismatch)"), waits in it ("ranks 0, 2 wait in it since 2.0 s"), or has
//   completed it (not mentioned).
//   A send or receive: the reporting rank waits in it; its peer did not answer, waits in another
//   operation ("rank 2 waits in all_reduce #9 (...) since 1.0 s"), or is in none.
TimeoutDiagnosis DiagnoseTimeout(std::string_view axis, const OpRecord& stuck,
                                 const std::vector<RankRecords>& ranks);

// Pure: follows the waits between ranks across axes, from what `ranks` reported of every
// communicator of their processes (RankRecords::axes), to where they end: a rank that never
// entered the collective another waits in, and waits in nothing watched, or did not answer; or a
// cycle of ranks that each wait in a collective the next never entered (they called collectives in
// different orders), e.g.
//   "rank 2 waits in all_gather #1 (8 B int64) on axis 'tp' (group [2, 3]), which rank 3 never
//   entered; rank 3 waits in all_reduce #9 (8 B int64) on axis 'world' (group [0, ..., 7]),
//   which rank 2 never entered: a cycle"
// Ranks are named by global rank. Empty when nothing can be followed (no rank reported its axes,
// or nobody waits in a collective).
std::string TraceWaits(const std::vector<RankRecords>& ranks);

// The records of `ranks` as a JSON document (nlohmann-json, pretty-printed):
//   {"axis": "tp", "reporting_rank": 2, "diagnosis": "...", "trace": "...", "ranks": [{"rank": 0,
//    "global_rank": 2, "answered": true, "blocked_in": "...", "records": [{"seq": 41,
//    "op": "all_reduce", ...}], "axes": [{"axis": "tp", "group": "0x...", "members": [2, 3],
//    "entered": 41, "waiting": {...} or null}]}]}
std::string FlightRecordJson(std::string_view axis, int64_t reporting_rank,
                             std::string_view diagnosis, const std::vector<RankRecords>& ranks,
                             std::string_view trace = {});

}  // namespace nmesh::comm

#endif  // NMESH_COMM_FLIGHT_RECORDER_H_
