// The backend side of a Work handle (comm/communicator.h): the state machine every backend shares
// (pending -> complete -> waited), the completed handle, and the registry through which a
// communicator tells the handles still pending that it is being destroyed. Not installed.
//
//   class MyWork : public Work::Impl {
//     bool Poll(absl::Status* status) override { ... }   // never blocks
//   };
//   return Work(registry_.Add(std::make_shared<MyWork>(*this, op, ...)));
#ifndef NMESH_COMM_INTERNAL_WORK_H_
#define NMESH_COMM_INTERNAL_WORK_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/watch/flight_recorder.h"

namespace nmesh::comm {

class Work::Impl {
 public:
  // `comm` and `op` only name the operation in messages; the handle keeps no reference to `comm`.
  Impl(const Communicator& comm, internal::OpName op);
  virtual ~Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::string_view op() const { return op_; }
  // "<op> on axis '<name>'".
  const std::string& context() const { return context_; }

  // The Work methods (see comm/communicator.h). Thread-safe against Orphan().
  absl::Status Wait(absl::Duration timeout);
  absl::StatusOr<bool> Test();
  absl::Status status() const;

  // Blocks until completion without marking the handle waited (for the batch's own handle).
  absl::Status Join();
  // The handle belongs to a batch that is still open while *batch_open is true.
  void SetBatch(std::shared_ptr<const bool> batch_open) { batch_open_ = std::move(batch_open); }

  // Called by the communicator's destructor (through WorkRegistry): a handle still pending ends
  // with FailedPrecondition after Abandon(); a complete one keeps its status.
  void Orphan();

  // The operation's flight record (sequence number `seq` of `recorder`): its end is recorded
  // when the handle first observes completion.
  void SetRecord(std::shared_ptr<FlightRecorder> recorder, uint64_t seq);
  // Polls once if no other thread holds the handle (never blocks; for the watchdog thread).
  void TryPoll();

 protected:
  // Whether the operation has completed; if so, *status is its result. Never blocks. Called with
  // the handle's lock held, at most until it returns true.
  virtual bool Poll(absl::Status* status) = 0;
  // Blocks until completion and returns the result. Default: Poll with a growing pause.
  virtual absl::Status Block();
  // Gives up on the pending operation when its communicator goes away (free what can be freed,
  // keep what the backend may still use). Default: nothing.
  virtual void Abandon() {}

 private:
  // Requires mu_: records completion once.
  bool PollLocked();
  // Requires mu_: the operation ended with `status`.
  void MarkDone(absl::Status status);
  // FailedPrecondition while the handle's batch is open.
  absl::Status CheckBatch(std::string_view what) const;

  const std::string op_;
  const std::string context_;
  const std::string rank_suffix_;
  mutable std::mutex mu_;
  bool done_ = false;
  bool waited_ = false;
  absl::Status status_;
  std::shared_ptr<const bool> batch_open_;
  std::shared_ptr<FlightRecorder> recorder_;  // guarded by mu_
  // The communicator's revocation (Communicator::Revoke): a failure after it names the cause.
  const std::shared_ptr<const internal::Revocation> revocation_;
  uint64_t seq_ = 0;
};

class Batch::State {
 public:
  std::shared_ptr<bool> open = std::make_shared<bool>(true);
  std::string backend;  // of the first operation; "" until then
  std::vector<std::shared_ptr<Work::Impl>> works;
  // NCCL: ends the group (set by the first operation that starts one).
  std::function<absl::Status()> end_group;
  // Run after end_group, in order (NCCL: wait for the enqueue, record each event).
  std::vector<std::function<absl::Status()>> after_end;
};

namespace internal {

// The batch open on the calling thread, or nullptr.
Batch::State* CurrentBatch();
// FailedPrecondition "<op> on axis '<name>': a batch is open on this thread ..." for blocking
// operations while a batch is open; OK otherwise.
absl::Status CheckNoBatch(const Communicator& comm, OpName op);

// A handle on an operation that has already finished with `status`.
Work CompletedWork(const Communicator& comm, OpName op, absl::Status status);

// The pending handles of one communicator. Add() registers a handle; Orphan() (from the
// communicator's destructor) orphans every handle still alive; TryPollAll() (from the watchdog
// thread) polls those no other thread holds. Thread-safe.
class WorkRegistry {
 public:
  std::shared_ptr<Work::Impl> Add(std::shared_ptr<Work::Impl> work);
  void OrphanAll();
  void TryPollAll();

 private:
  std::mutex mu_;
  std::vector<std::weak_ptr<Work::Impl>> works_;  // guarded by mu_
};

}  // namespace internal
}  // namespace nmesh::comm

#endif  // NMESH_COMM_INTERNAL_WORK_H_
