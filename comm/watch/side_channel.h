// The interface a backend implements for the separate channel over which the ranks of a hung
// communicator exchange their flight records (comm/watch/watchdog.h), and what each answer carries.
// Not installed. A backend makes one per communicator with a timeout and registers it with the
// communicator (Communicator::Watch), e.g. comm/mpi's, over a duplicate of the MPI communicator:
//
//   side_ = MakeSideChannel(comm_);          // every rank of the communicator, together
//   Watch(side_.get());                       // at the end of the constructor
#ifndef NMESH_COMM_WATCH_SIDE_CHANNEL_H_
#define NMESH_COMM_WATCH_SIDE_CHANNEL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nmesh/comm/watch/diagnosis.h"
#include "nmesh/comm/watch/flight_recorder.h"

namespace nmesh::comm::internal {

// Where this process stands on every watched communicator, sent with its records.
struct ProcessState {
  std::string blocked_in;          // RankRecords::blocked_in
  std::vector<AxisProgress> axes;  // RankRecords::axes
};

// How long an exchange waits for each rank's answer (comm/watch/watchdog.h, "The exchange's
// deadlines").
struct ExchangeDeadlines {
  // A rank that has neither answered nor shown that its process is alive by then is given up on
  // (reported as stopped or dead).
  absl::Time silent;
  // A rank whose process has shown that it is alive (it took this rank's request off the channel)
  // is waited for until then.
  absl::Time alive;
};

// A backend's separate channel for one communicator. Called on the watchdog thread only (and
// destroyed after Watchdog::Remove).
class SideChannel {
 public:
  virtual ~SideChannel() = default;
  // Answers the requests for this rank's records that have arrived, with `state()` (where the
  // process stands on all its communicators: RankRecords::blocked_in and axes), and returns how
  // many it answered. Never blocks.
  virtual int Serve(const FlightRecorder& recorder, const std::function<ProcessState()>& state) = 0;
  // Asks every other rank for its records and collects the answers within `deadlines` (a rank
  // shows that it is alive when its process takes the request, even before its watchdog answers),
  // calling `serve` between polls (so that this rank keeps answering others). One entry per rank,
  // in rank order; this rank's own from `recorder`.
  virtual std::vector<RankRecords> Exchange(const FlightRecorder& recorder,
                                            const ExchangeDeadlines& deadlines,
                                            const std::function<void()>& serve) = 0;
  // The rank of the communicator's rank `rank` in the job's world (-1: unknown).
  virtual int64_t GlobalRank(int rank) const = 0;
  // Ends the whole job with exit code `code`; does not return.
  [[noreturn]] virtual void AbortJob(int code) = 0;
};

}  // namespace nmesh::comm::internal

#endif  // NMESH_COMM_WATCH_SIDE_CHANNEL_H_
