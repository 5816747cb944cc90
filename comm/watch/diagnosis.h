// The analysis that turns the flight records (comm/watch/flight_recorder.h) of every rank of a hung
// communicator into one line naming the culprit, follows the waits across the ranks' other
// communicators, and writes the records as JSON. Used by the watchdog (comm/watch/watchdog.h), e.g.
//
//   TimeoutDiagnosis diagnosis = DiagnoseTimeout("tp", stuck, ranks);
//   diagnosis.trace = TraceWaits(ranks);
//   std::string json = FlightRecordJson("tp", /*reporting_rank=*/2, diagnosis.summary, ranks,
//                                       diagnosis.trace);
//
// which, for a hung all_reduce, reads
//
//  timeout on axis 'tp' (group [2, 3]): rank 3 never entered all_reduce #42 (4 MiB float32);
//  rank 2 waits in it since 2.0 s
//
// Ranks appear by their global rank (their rank in the job's world) where the backend knows it.
// Pure functions; thread-safe.
#ifndef NMESH_COMM_WATCH_DIAGNOSIS_H_
#define NMESH_COMM_WATCH_DIAGNOSIS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nmesh/comm/watch/flight_recorder.h"

namespace nmesh::comm {

// The version of FlightRecordJson's document ("version"), raised when its fields change meaning.
inline constexpr int kFlightRecordJsonVersion = 1;

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
// collectives does not shift them. What it names:
// - a collective: for each rank, whether it did not answer ("rank 5 did not answer: stopped or
//   dead"), never entered the operation ("rank 3 never entered all_reduce #42 (...)", with what it
//   waits in instead if anything), called another collective in its place ("rank 1 called
//   all_gather #42 (...) instead (mismatch)"), waits in it ("ranks 0, 2 wait in it since 2.0 s"),
//   or has completed it (not mentioned);
// - a send or receive: the reporting rank waits in it; whether its peer did not answer, waits in
//   another operation ("rank 2 waits in all_reduce #9 (...) since 1.0 s"), or is in none.
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
//   {"version": 1, "axis": "tp", "reporting_rank": 2, "diagnosis": "...", "trace": "...",
//    "ranks": [{"rank": 0, "global_rank": 2, "answered": true, "blocked_in": "...",
//    "records": [{"seq": 41, "op": "all_reduce", ...}], "axes": [{"axis": "tp", "group": "0x...",
//    "members": [2, 3], "entered": 41, "waiting": {...} or null}]}]}
std::string FlightRecordJson(std::string_view axis, int64_t reporting_rank,
                             std::string_view diagnosis, const std::vector<RankRecords>& ranks,
                             std::string_view trace = {});

}  // namespace nmesh::comm

#endif  // NMESH_COMM_WATCH_DIAGNOSIS_H_
