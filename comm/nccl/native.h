// The NCCL and CUDA handles behind nmesh's NCCL communicators and their asynchronous operations,
// and NCCL communicators an engine already has wrapped as nmesh Communicators. Public (installed);
// the only public header of comm/nccl that includes nccl.h and cuda_runtime_api.h, so a consumer
// that does not include it needs no CUDA or NCCL headers.
//
//   NMESH_ASSIGN_OR_RETURN(Work work, dp.AllReduceAsync(grad, grad, n, DataType::kBFloat16,
//                                                        ReduceOp::kSum, {.stream = compute}));
//   NMESH_RETURN_IF_ERROR(nccl::StreamWaitWork(work, optimizer_stream));  // no host wait
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp,
//                          nccl::AdoptComm(engine_tp, device, nccl::Ownership::kBorrowed,
//                                          {.name = "tp"}));
#ifndef NMESH_COMM_NCCL_NATIVE_H_
#define NMESH_COMM_NCCL_NATIVE_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm::nccl {

// The ncclComm_t that `comm` runs its operations on (still owned by `comm`). InvalidArgument for
// another backend, FailedPrecondition once `comm` has been aborted. The device: DeviceOf
// (comm/nccl/communicator.h).
absl::StatusOr<ncclComm_t> NativeComm(const Communicator& comm);

// The CUDA event recorded after an asynchronous NCCL operation (owned by the handle: valid while
// `work` lives). InvalidArgument for an empty handle or one of another backend.
absl::StatusOr<cudaEvent_t> EventOf(const Work& work);
// Makes `stream` wait for the operation (cudaStreamWaitEvent): work queued on `stream` afterwards
// runs after it, with no host synchronisation. Fails like EventOf, or with the CUDA error.
absl::Status StreamWaitWork(const Work& work, cudaStream_t stream);

enum class Ownership {
  // The Communicator finalises and destroys the ncclComm_t (or aborts it) when destroyed or
  // aborted.
  kOwned,
  // The caller keeps the ncclComm_t, which must outlive the Communicator; nmesh never finalises,
  // destroys or aborts it (Abort() only stops the Communicator).
  kBorrowed,
};

// Wraps an existing NCCL communicator on CUDA `device` as an nmesh Communicator (backend "nccl",
// the behaviour of comm/nccl/communicator.h; it gets a stream of its own). Not collective. A null
// handle is InvalidArgument, and so is a communicator of another device; NCCL errors from the
// queries (ncclCommUserRank, ncclCommCount, ncclCommCuDevice) come back as Status.
absl::StatusOr<std::unique_ptr<Communicator>> AdoptComm(ncclComm_t comm, int device,
                                                        Ownership ownership, CommOptions options);

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_NATIVE_H_
