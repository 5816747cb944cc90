// The Communicator of comm/nccl: one NCCL communicator, the CUDA device it runs on and a stream of
// its own (the semantics: comm/nccl/communicator.h). Not installed. Its members are defined by
// concern:
//   communicator.cc  lifetime (finalise or abort, then free), polling NCCL until ready, the checks
//                    every call makes, the timeout, the watchdog's polls, memory and copies;
//                    NativeComm, DeviceOf, NewDeviceSelfCommunicator
//   operations.cc    issuing one operation and polling it to completion (Run), each operation
//   async.cc         asynchronous operations: the caller's stream, batches, the event of a handle
//                    (EventOf, StreamWaitWork)
//   create.cc        CreateWorld, Split and AdoptComm: how an NCCL communicator comes to be
//   recovery.cc      failures and aborts (retire, revoke, the family stopped together), shrinking
//
//   auto world = std::make_unique<NcclCommunicator>(comm, device, stream, rank, size, options);
//   NMESH_RETURN_IF_ERROR(world->WaitReady("init", internal::Deadline(options.timeout)));
#ifndef NMESH_COMM_NCCL_NCCL_COMMUNICATOR_H_
#define NMESH_COMM_NCCL_NCCL_COMMUNICATOR_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"

namespace nmesh::comm::nccl {

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (possibly still initialising) and `stream`.
  NcclCommunicator(ncclComm_t comm, int device, cudaStream_t stream, int rank, int size,
                   CommOptions options);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view backend() const override { return "nccl"; }
  MemoryKind memory_kind() const override { return MemoryKind::kDevice; }
  const CommOptions& options() const override { return options_; }
  int device() const { return device_; }
  // The live NCCL communicator; null once aborted or revoked.
  ncclComm_t native() const;

  // Polls the communicator until NCCL has finished the calls issued so far (initialisation, a
  // split, an enqueue). Aborts it on an asynchronous error or when the deadline passes.
  absl::Status WaitReady(internal::OpName op, const internal::Deadline& deadline);

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        CommOptions options) override;

  absl::Status DoAllReduce(const void* send, void* recv, size_t count, DataType type,
                           ReduceOp op) override;
  absl::Status DoAllGather(const void* send, void* recv, size_t send_count, DataType type) override;
  absl::Status DoReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                               ReduceOp op) override;
  absl::Status DoBroadcast(void* buffer, size_t count, DataType type, int root) override;
  absl::Status DoAllToAll(const void* send, void* recv, size_t count, DataType type) override;
  absl::Status DoSend(const void* buffer, size_t count, DataType type, int peer) override;
  absl::Status DoRecv(void* buffer, size_t count, DataType type, int peer) override;
  absl::Status DoAllToAllV(const void* send, absl::Span<const size_t> send_counts,
                           absl::Span<const size_t> send_displs, void* recv,
                           absl::Span<const size_t> recv_counts,
                           absl::Span<const size_t> recv_displs, DataType type) override;
  absl::Status DoGather(const void* send, void* recv, size_t send_count, DataType type,
                        int root) override;
  absl::Status DoScatter(const void* send, void* recv, size_t recv_count, DataType type,
                         int root) override;
  absl::Status DoReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                        int root) override;
  absl::Status DoSendRecv(const void* send, size_t send_count, int dest, void* recv,
                          size_t recv_count, int source, DataType type) override;
  absl::Status DoBarrier() override;

  // Enqueues on the caller's stream (or the communicator's), without waiting for the stream: the
  // blocking hooks run with enqueue_only_ set, then an event is recorded after the operation.
  absl::StatusOr<Work> DoAsync(const OpArgs& a, const AsyncOptions& async) override;

  absl::Status DoSetTimeout(std::optional<absl::Duration> timeout) override;

  absl::Status Abort() override;
  // The mesh's communicators are stopped together (StopTogether): revoked where NCCL has
  // ncclCommRevoke, aborted otherwise.
  absl::Status AbortGroup(absl::Span<Communicator* const> family) override;

  // Stops `family` together. With ncclCommRevoke: one group of ncclCommRevoke calls, each NCCL
  // communicator kept (revoked_) for ShrinkComm. Without: NCCL >= 2.22 aborts communicators in a
  // group: each ncclCommAbort alone may synchronise the device, which a kernel of another hung
  // communicator of the family blocks (NVIDIA/nccl#1013); grouped, they are aborted together.
  // Older NCCL: one after another. Members of other kinds are aborted (Abort()).
  static absl::Status StopTogether(absl::Span<Communicator* const> family,
                                   const std::string& reason);

  // ncclCommShrink of this communicator without `exclude` (checked by the caller).
  absl::StatusOr<std::unique_ptr<Communicator>> Shrink(std::vector<int> exclude,
                                                       CommOptions options);

  void PollOutstanding() override;
  absl::Status PollAsyncError() override;

  absl::StatusOr<Buffer> AllocateBuffer(size_t bytes) override;
  absl::Status CopyToHost(void* host, const void* buffer, size_t bytes) override;
  absl::Status CopyFromHost(void* buffer, const void* host, size_t bytes) override;
  std::unique_ptr<Communicator> NewSelf(CommOptions options) const override;

  bool owned_ = true;  // false: adopted with Ownership::kBorrowed (never finalised or aborted here)

 private:
  absl::Status Usable(internal::OpName op) const;
  absl::Status CheckUsable(std::string_view op) const override;

  // The last step of Split and Shrink (`op`, NCCL's `call`): polls `child` until it has finished
  // its initialisation, then gives it a stream of its own. On failure `child` is aborted and the
  // error returned: DeadlineExceeded with this communicator's context when the deadline passed
  // (*timed_out set), else the NCCL or CUDA error without it.
  absl::StatusOr<std::unique_ptr<Communicator>> FinishChild(ncclComm_t child, internal::OpName op,
                                                            const char* call,
                                                            const internal::Deadline& deadline,
                                                            CommOptions options, bool* timed_out);

  // Calls ncclCommAbort once and remembers why. Safe from any thread.
  void AbortComm(std::string reason);
  // After a failure: revokes the NCCL communicator where NCCL has ncclCommRevoke (it is kept for
  // ShrinkComm, and aborted when this Communicator is destroyed), aborts it otherwise. Safe from
  // any thread.
  void Retire(std::string reason);
  void KeepRevoked(ncclComm_t comm);
  // A revoke that NCCL refused: the communicator is aborted instead (and cannot be shrunk).
  void AbortRevoked(ncclComm_t comm);
  // Marks this communicator aborted (first reason wins) and hands over the NCCL communicator to
  // abort, unless it was aborted already or is borrowed (the caller's to abort). Safe from any
  // thread.
  std::optional<ncclComm_t> Take(std::string reason);
  // After a timeout or an asynchronous error found by an operation: this communicator is aborted
  // already (with the reason); its mesh's other communicators follow, together.
  void AbortFamilyAfter();
  absl::Status FailTimeout(internal::OpName op);
  absl::Status FailAsync(internal::OpName op, ncclResult_t state);

  // Requires mu_ (ncclGetLastError reads the communicator).
  absl::Status Check(internal::OpName op, ncclResult_t result, const char* call) const;
  absl::Status SetDevice(internal::OpName op) const;

  // Issues one operation (`issue` gets the live communicator), waits until NCCL has enqueued it,
  // then until the stream has run it, polling against the deadline throughout (operations.cc).
  template <typename Issue>
  absl::Status Run(internal::OpName op, const char* call, Issue issue);
  // all_to_all_v, gather and scatter are groups of ncclSend/ncclRecv (a rank's block for itself
  // included, as in all_to_all), issued by `body(comm)` between ncclGroupStart and ncclGroupEnd
  // (operations.cc).
  template <typename Body>
  absl::Status RunGroup(internal::OpName op, Body body);

  mutable std::mutex mu_;  // guards comm_ against Abort() from another thread
  ncclComm_t comm_;        // null once aborted or revoked
  // The NCCL communicator once revoked (Retire, StopTogether), kept for Shrink; aborted by the
  // destructor.
  ncclComm_t revoked_ = nullptr;
  const int device_;
  cudaStream_t stream_;
  // Where the Do* hooks enqueue (stream_, or the caller's stream during DoAsync), and whether Run
  // returns once NCCL has enqueued the operation instead of once the stream has run it.
  cudaStream_t active_stream_ = stream_;
  bool enqueue_only_ = false;
  bool in_group_ = false;  // DoAsync inside a batch: Run only adds the operation to the group
  internal::WorkRegistry works_;
  int rank_;
  int size_;
  CommOptions options_;
  void* barrier_buffer_ = nullptr;
  // Shared with the handles of asynchronous operations (NcclWork).
  std::shared_ptr<internal::AbortState> abort_state_ = std::make_shared<internal::AbortState>();
};

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_NCCL_COMMUNICATOR_H_
