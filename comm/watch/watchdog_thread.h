// The watchdog's registry and thread (comm/watch/watchdog.h describes the behaviour; the separate
// channel a backend gives it is comm/watch/side_channel.h). Not installed.
//
//   internal::Watchdog::Get().Add(this, recorder, side_channel);   // backend constructor
//   internal::Watchdog::Get().Remove(this);                        // backend destructor, first
#ifndef NMESH_COMM_WATCH_WATCHDOG_THREAD_H_
#define NMESH_COMM_WATCH_WATCHDOG_THREAD_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/watch/diagnosis.h"
#include "nmesh/comm/watch/side_channel.h"
#include "nmesh/comm/watch/watchdog.h"

namespace nmesh::comm::internal {

class Watchdog {
 public:
  static Watchdog& Get();

  // Registers `comm`; `side` may be null (no exchange: the report has this rank's records only,
  // and the job is not aborted). `poll_errors`: call comm->PollAsyncError() on every tick.
  // Starts the thread when `comm` has a timeout or `poll_errors`.
  void Add(Communicator* comm, std::shared_ptr<FlightRecorder> recorder, SideChannel* side,
           bool poll_errors = false);
  // Unregisters `comm`; waits while the watchdog thread is firing on it (aborting its family,
  // exchanging its records). Call before destroying the side channel. On the watchdog thread
  // itself (a family's abort destroying a communicator) it never waits.
  void Remove(const Communicator* comm);
  // Starts the thread (and its monitor) if it is not running (a timeout was set).
  void Start();
  // What runs, on expiry, instead of comm->Abort(): the family's abort (set by DeviceMesh).
  void SetFamily(const Communicator* comm, std::function<void()> abort_family);
  // The monitor's limit and action (comm/watch/watchdog.h, SetWatchdogStall).
  void SetStall(absl::Duration limit, WatchdogStallHandler handler);
  // For a backend that enforces its own deadlines and returns DeadlineExceeded (gloo): it registers
  // its communicators with Add (not Communicator::Watch, so that their records carry no deadline
  // and the watchdog never fires on them; the thread serves their side channels and reports where
  // they stand), and calls this on the thread whose operation `stuck` outlived `timeout`, before
  // it returns the error. Exchanges the records of `comm`'s ranks over its side channel (the
  // watchdog thread goes on answering the others meanwhile), names the culprit as a firing does
  // and hands the report to the process's TimeoutHandler; then, with a channel, waits as a firing
  // does before it ends the job (at least kAbortGrace, longer while the other ranks still ask,
  // never beyond AbortGraceLimit), so that the others, asking, find this rank still waiting in
  // the operation rather than past it. Aborts nothing and never ends the job. Returns the report
  // (this rank's records only when `comm` is not registered or has no channel).
  TimeoutReport ReportTimeout(Communicator& comm, const OpRecord& stuck, absl::Duration timeout);
  // Testing: the thread's next tick sleeps `pause` before doing anything, as a thread the system
  // does not schedule for that long (a loaded node) would (tests/comm/watchdog_abort.cc).
  void PauseForTesting(absl::Duration pause);

 private:
  struct Entry {
    Communicator* comm;
    std::shared_ptr<FlightRecorder> recorder;
    SideChannel* side;
    std::function<void()> abort_family;
    bool poll_errors = false;
    uint64_t group = 0;            // AxisProgress::group
    std::vector<int64_t> members;  // AxisProgress::members
  };
  // What one tick found: an operation past its deadline, or an asynchronous error. A copy of the
  // entry, so that the firing runs without the lock.
  struct Firing {
    Entry entry;
    std::optional<OpRecord> stuck;  // set: a timeout
    absl::Status error;             // not OK: an asynchronous error
  };
  Watchdog() = default;
  void Loop();
  // The monitor thread: ends the process through the stall handler when the watchdog thread's
  // heartbeat stops.
  void Monitor();
  // Records that the watchdog thread is alive and what it is doing.
  void Beat(std::string phase);
  // The first entry that must fire on this tick, if any.
  std::optional<Firing> FindFiringLocked();
  // Answer the other ranks' requests on every watched communicator; return how many.
  int ServeAllLocked();
  int ServeAll();
  // Where this process stands on every registered communicator.
  ProcessState StateLocked();
  // The records of every rank of the widest other watched communicator with a side channel (the
  // job's world), exchanged over it, for following the waits across the whole job; `ranks` (those
  // of the timed-out communicator) when there is none. Called without the lock.
  // `serve` runs between the exchange's polls.
  std::vector<RankRecords> WideRecords(const Entry& entry, const std::vector<RankRecords>& ranks,
                                       const std::function<void()>& serve);
  // The exchange of `entry`'s records (when it has a side channel) and the diagnosis of
  // `report` (its stuck operation and timeout set), `serve` running between the polls.
  void Diagnose(const Entry& entry, TimeoutReport& report, const std::function<void()>& serve);
  // Fires `f` (without the lock): aborts, reports and, with a side channel, ends the job.
  void FireTimeout(const Firing& f);
  void FireError(const Firing& f);
  // Aborts the family of `entry` (or its communicator); false when that destroyed it.
  bool Abort(const Entry& entry);
  // Keeps this rank's state for the other ranks to ask (the watchdog thread answers) after
  // `report`: kAbortGrace, extended by kAbortGrace after each answer and until the ranks that
  // answered waiting in a watched operation have had time to report, never beyond
  // AbortGraceLimit. `serve`: answer on this thread (the watchdog thread's firing); null: the
  // watchdog thread answers.
  void AnswerPeers(const TimeoutReport& report, const std::function<int()>& serve);
  // Hands `report` to the process's handler.
  static void Report(const TimeoutReport& report);

  std::mutex mu_;
  std::condition_variable idle_;  // notified when busy_ is cleared
  // Guarded by mu_. An entry whose comm is null was removed by the watchdog thread itself while
  // it held the lock, and is erased on the next tick.
  std::vector<Entry> entries_;
  // Guarded by mu_: the communicator the watchdog thread fires on, outside the lock (Remove
  // waits for it), and whether a family's abort removed it meanwhile.
  const Communicator* busy_ = nullptr;
  // Guarded by mu_: the wider communicator whose channel WideRecords uses (Remove waits for it).
  const Communicator* busy_wide_ = nullptr;
  bool busy_removed_ = false;
  // Only touched on the watchdog thread: it holds mu_ now.
  bool thread_holds_lock_ = false;
  std::atomic<std::thread::id> thread_id_{};  // the watchdog thread's, once started
  bool started_ = false;                      // guarded by mu_
  // Guarded by mu_: a report was made for a communicator with a side channel, and the job is
  // ending; nothing more is reported. (A communicator without one, e.g. NCCL's, is aborted and
  // reported, and the watchdog goes on watching the others: a server may rebuild its meshes.)
  bool fired_ = false;
  std::atomic<int64_t> pause_ns_{0};  // PauseForTesting
  std::atomic<int64_t> answers_{0};   // the requests ServeAllLocked has answered, ever

  // The heartbeat, read by the monitor. Never held across anything that may block.
  std::mutex beat_mu_;
  absl::Time beat_ = absl::Now();                     // guarded by beat_mu_
  std::string phase_ = "starting";                    // guarded by beat_mu_
  absl::Duration stall_limit_ = kWatchdogStallLimit;  // guarded by beat_mu_
  WatchdogStallHandler stall_handler_;                // guarded by beat_mu_
};

}  // namespace nmesh::comm::internal

#endif  // NMESH_COMM_WATCH_WATCHDOG_THREAD_H_
