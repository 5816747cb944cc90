// The flight recorder of a communicator: its last N operations, kept in a fixed ring.
//
// Every Communicator records each operation it issues (blocking or asynchronous, Split included;
// zero-count collectives, which communicate nothing, are not recorded): a sequence number
// (1, 2, ... per communicator), the operation, its count, DataType and root or peer, when it was
// issued, when it ended and how (OpState). The ring holds CommOptions::flight_recorder_entries
// records (default kDefaultFlightRecorderEntries); the oldest is overwritten, and recording never
// allocates. Reading it (Communicator::flight_recorder()->Snapshot()) copies the records out:
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp,
//                          world->Split(world->rank() / 2, world->rank(),
//                                       {.name = "tp", .timeout = absl::Seconds(30)}));
//   for (const OpRecord& record : tp->flight_recorder()->Snapshot()) {
//     std::cout << DescribeRecord(record) << " " << OpStateName(record.state) << "\n";
//   }
//
// When an operation outlives its timeout, the watchdog (comm/watch/watchdog.h) gathers the records
// of every rank of the communicator and comm/watch/diagnosis.h names the culprit.
//
// Thread safety: a FlightRecorder may be written by the communicator's thread while another thread
// (the watchdog) reads it; the formatting functions are pure.
#ifndef NMESH_COMM_WATCH_FLIGHT_RECORDER_H_
#define NMESH_COMM_WATCH_FLIGHT_RECORDER_H_

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

}  // namespace nmesh::comm

#endif  // NMESH_COMM_WATCH_FLIGHT_RECORDER_H_
