// Handles on asynchronous operations (Work) and batches of them (Batch), returned by the *Async
// operations of comm/communicator.h:
//
//   NMESH_ASSIGN_OR_RETURN(Batch batch, Batch::Begin());    // pipeline neighbours both send first
//   NMESH_ASSIGN_OR_RETURN(Work send, pp.SendAsync(act, n, DataType::kBFloat16, next));
//   NMESH_ASSIGN_OR_RETURN(Work recv, pp.RecvAsync(grad, n, DataType::kBFloat16, next));
//   NMESH_ASSIGN_OR_RETURN(Work all, batch.End());
//   NMESH_RETURN_IF_ERROR(all.Wait(absl::Seconds(30)));    // or wait on send and recv
//   NMESH_ASSIGN_OR_RETURN(bool done, send.Test());         // never blocks
//
// The backends' side of a handle is comm/internal/work.h.
#ifndef NMESH_COMM_WORK_H_
#define NMESH_COMM_WORK_H_

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nmesh::comm {

// Options of an asynchronous operation.
struct AsyncOptions {
  // NCCL: the caller's cudaStream_t (as void*) on which the operation is enqueued, ordered after
  // the work already on that stream and with no host synchronisation (so the call can be captured
  // in a CUDA graph); nullptr: the communicator's own stream. Host backends ignore it.
  void* stream = nullptr;
};

// A handle on an operation issued asynchronously (Communicator::*Async).
// Move-only; destroying a handle does not cancel or wait for its operation (its buffers must stay
// valid until the operation completes). Not thread-safe: one thread at a time per handle.
//
//   NMESH_ASSIGN_OR_RETURN(Work work, tp.AllReduceAsync(grad, grad, n, DataType::kFloat32,
//                                                        ReduceOp::kSum));
//   // ... compute while it runs
//   NMESH_RETURN_IF_ERROR(work.Wait(absl::Seconds(30)));
class Work {
 public:
  class Impl;  // the backend's side (comm/internal/work.h)

  Work() = default;  // an empty handle: Wait and Test fail with FailedPrecondition
  explicit Work(std::shared_ptr<Impl> impl);
  ~Work();
  Work(Work&& other) noexcept;
  Work& operator=(Work&& other) noexcept;
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;

  // Waits until the operation completes, at most `timeout`, and returns its final status. When
  // the timeout passes first: DeadlineExceeded naming the operation and the communicator; the
  // operation stays pending (Wait or Test again). Once a Wait has returned the final status,
  // another Wait is FailedPrecondition ("already waited"); status() still gives the final status.
  // An operation whose communicator was destroyed (or aborted) before it completed ends with
  // FailedPrecondition saying so. Blocks without polling when `timeout` is infinite (MPI_Waitall,
  // cudaEventSynchronize).
  absl::Status Wait(absl::Duration timeout = absl::InfiniteDuration());
  // Whether the operation has completed (never blocks). FailedPrecondition on an empty handle.
  absl::StatusOr<bool> Test();
  // The final status once the operation has completed (Test() true or Wait returned);
  // FailedPrecondition while it is pending or on an empty handle.
  absl::Status status() const;
  // "all_reduce", "send", ...; "" on an empty handle.
  std::string_view op() const;
  bool valid() const { return impl_ != nullptr; }
  // The backend's side, for the backend headers (comm/nccl/native.h).
  Impl* impl() const { return impl_.get(); }
  const std::shared_ptr<Impl>& shared_impl() const { return impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

// A batch: operations issued together, so that exchanges whose parts would wait
// on each other when issued one by one complete (pipeline neighbours that both send first). Opened
// on the calling thread; every *Async operation this thread issues until End() joins it, whatever
// its communicator, as long as all use one backend (another backend is InvalidArgument). NCCL:
// ncclGroupStart ... ncclGroupEnd. MPI: the nonblocking requests start as they are issued and
// complete together. self: operations run as they are issued.
//
//   NMESH_ASSIGN_OR_RETURN(Batch batch, Batch::Begin());
//   NMESH_ASSIGN_OR_RETURN(Work send, pp.SendAsync(act, n, DataType::kBFloat16, next));
//   NMESH_ASSIGN_OR_RETURN(Work recv, pp.RecvAsync(grad, n, DataType::kBFloat16, next));
//   NMESH_ASSIGN_OR_RETURN(Work all, batch.End());
//   NMESH_RETURN_IF_ERROR(all.Wait());                 // or wait on send and recv
//
// While a batch is open on a thread, that thread's blocking operations are FailedPrecondition
// (they would wait for operations the batch has not issued yet), as are Wait and Test on the
// batch's handles, and Begin() again. A Batch destroyed while open is ended then (its handles stay
// usable). Move-only; the communicators must outlive End().
class Batch {
 public:
  class State;  // comm/internal/work.h

  // Opens a batch on the calling thread. FailedPrecondition when one is already open there.
  static absl::StatusOr<Batch> Begin();
  ~Batch();
  Batch(Batch&& other) noexcept;
  Batch& operator=(Batch&& other) noexcept;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Issues the batch and closes it. Returns a handle that completes when every operation of the
  // batch has (its status: the first failure, or OK). FailedPrecondition when already ended.
  absl::StatusOr<Work> End();

 private:
  Batch() = default;
  std::shared_ptr<State> state_;
};

}  // namespace nmesh::comm

#endif  // NMESH_COMM_WORK_H_
