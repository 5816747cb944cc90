// The one place where NCCL and CUDA return codes become absl::Status. Internal to comm/nccl (it
// includes nccl.h and the CUDA runtime header, so it is not installed).
//
//   NMESH_RETURN_IF_ERROR(NcclStatus(ncclCommCount(comm, &n), "ncclCommCount", rank, comm));
//   NMESH_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice", rank));
#ifndef NMESH_COMM_NCCL_STATUS_H_
#define NMESH_COMM_NCCL_STATUS_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string_view>

#include "absl/status/status.h"

namespace nmesh::comm::nccl {

// OK for ncclSuccess and ncclInProgress (a nonblocking call that was accepted; the caller polls).
// Otherwise "<call> failed on rank <rank>: <ncclGetErrorString> (<result name>)", plus
// "; last NCCL error: <ncclGetLastError(comm)>" when NCCL has one. Codes: ncclInvalidArgument ->
// InvalidArgument, ncclInvalidUsage -> FailedPrecondition, ncclRemoteError and ncclSystemError ->
// Unavailable, the rest -> Internal. `comm` may be null. Thread-safe.
absl::Status NcclStatus(ncclResult_t result, std::string_view call, int rank,
                        ncclComm_t comm = nullptr);

// OK for cudaSuccess. Otherwise "<call> failed on rank <rank>: <cudaGetErrorString>
// (<cudaGetErrorName>)". Codes: no device or driver -> FailedPrecondition, invalid values and
// devices -> InvalidArgument, out of memory -> ResourceExhausted, the rest -> Internal.
// Thread-safe.
absl::Status CudaStatus(cudaError_t error, std::string_view call, int rank);

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_STATUS_H_
