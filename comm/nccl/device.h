// What comm/nccl's communicators and their work handles share: NCCL's types for nmesh's DataType
// and ReduceOp, the nonblocking config, polling a communicator that is still initialising, device
// buffers and copies, and the handle of an operation enqueued on a stream. Not installed.
//
//   NMESH_ASSIGN_OR_RETURN(Buffer buffer, AllocateDeviceBuffer(device, bytes, rank));
#ifndef NMESH_COMM_NCCL_DEVICE_H_
#define NMESH_COMM_NCCL_DEVICE_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/nccl/library.h"
#include "nmesh/comm/nccl/status.h"

namespace nmesh::comm::nccl {

// nmesh's DataType and ReduceOp as NCCL's.
ncclDataType_t NcclType(DataType type);
ncclRedOp_t NcclOp(ReduceOp op);

// A nonblocking config: every call returns at once and is polled.
ncclConfig_t NonblockingConfig();

// Polls a communicator that nobody else can see yet (or any more) until NCCL has finished its
// pending calls. Returns the final state, or ncclInProgress when the deadline passed first.
ncclResult_t PollUntilReady(ncclComm_t comm, const internal::Deadline& deadline);

// Device memory on `device`, freed there. `rank` goes into error messages.
absl::StatusOr<Buffer> AllocateDeviceBuffer(int device, size_t bytes, int rank);

// A synchronous copy on `device` (cudaMemcpy waits for the copy to finish).
absl::Status CopyOnDevice(int device, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                          int rank);

// An operation enqueued on a stream: a CUDA event recorded after it, which the host can query or
// wait on and another stream can wait on (comm/nccl/native.h).
//
// An abort (Abort(), a timeout, the mesh's family abort) ends the kernels NCCL had enqueued, so the
// event then completes although the operation did not: a handle whose communicator was aborted
// before it was seen complete fails with the abort's reason instead of reporting success.
class NcclWork final : public Work::Impl {
 public:
  NcclWork(const Communicator& comm, internal::OpName op, int device, int rank, cudaEvent_t event,
           std::shared_ptr<const internal::AbortState> aborted)
      : Impl(comm, op),
        comm_(comm),
        device_(device),
        rank_(rank),
        event_(event),
        aborted_(std::move(aborted)) {}
  ~NcclWork() override {
    Lib().cudaSetDevice(device_);
    Lib().cudaEventDestroy(event_);
  }
  cudaEvent_t event() const { return event_; }

 protected:
  bool Poll(absl::Status* status) override {
    const cudaError_t query = Lib().cudaEventQuery(event_);
    if (query == cudaErrorNotReady) return false;
    *status = Result(query, "cudaEventQuery");
    return true;
  }
  absl::Status Block() override {
    Lib().cudaSetDevice(device_);
    return Result(Lib().cudaEventSynchronize(event_), "cudaEventSynchronize");
  }
  // The communicator is being destroyed: the abort state must no longer name it.
  void Abandon() override { orphaned_.store(true, std::memory_order_release); }

 private:
  absl::Status Result(cudaError_t error, const char* call) const {
    if (error == cudaSuccess && aborted_->aborted() && !orphaned_.load(std::memory_order_acquire)) {
      return aborted_->Check(comm_, op());
    }
    if (error == cudaSuccess) return absl::OkStatus();
    absl::Status s = CudaStatus(error, call, rank_);
    return absl::Status(s.code(), absl::StrFormat("%s: %s", context(), s.message()));
  }

  const Communicator& comm_;  // for messages only, while not orphaned_
  int device_;
  int rank_;
  cudaEvent_t event_;
  std::shared_ptr<const internal::AbortState> aborted_;
  std::atomic<bool> orphaned_{false};
};

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_DEVICE_H_
