#include "nmesh/comm/nccl/status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nmesh/comm/nccl/library.h"

namespace nmesh::comm::nccl {
namespace {

const char* ResultName(ncclResult_t result) {
  switch (result) {
    case ncclSuccess:
      return "ncclSuccess";
    case ncclUnhandledCudaError:
      return "ncclUnhandledCudaError";
    case ncclSystemError:
      return "ncclSystemError";
    case ncclInternalError:
      return "ncclInternalError";
    case ncclInvalidArgument:
      return "ncclInvalidArgument";
    case ncclInvalidUsage:
      return "ncclInvalidUsage";
    case ncclRemoteError:
      return "ncclRemoteError";
    case ncclInProgress:
      return "ncclInProgress";
    default:
      return "unknown ncclResult_t";
  }
}

absl::StatusCode NcclCode(ncclResult_t result) {
  switch (result) {
    case ncclInvalidArgument:
      return absl::StatusCode::kInvalidArgument;
    case ncclInvalidUsage:
      return absl::StatusCode::kFailedPrecondition;
    case ncclRemoteError:
    case ncclSystemError:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::StatusCode CudaCode(cudaError_t error) {
  switch (error) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorDevicesUnavailable:
      return absl::StatusCode::kFailedPrecondition;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevice:
    case cudaErrorInvalidDevicePointer:
      return absl::StatusCode::kInvalidArgument;
    case cudaErrorMemoryAllocation:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

absl::Status NcclStatus(ncclResult_t result, std::string_view call, int rank, ncclComm_t comm) {
  if (result == ncclSuccess || result == ncclInProgress) return absl::OkStatus();
  // A result comes from a loaded NCCL, except in tests of this function.
  const absl::StatusOr<const Library*> lib = OpenLibrary();
  std::string message = absl::StrFormat(
      "%s failed on rank %d: %s (%s)", call, rank,
      lib.ok() ? (*lib)->ncclGetErrorString(result) : "NCCL not loaded", ResultName(result));
  const char* last = lib.ok() ? (*lib)->ncclGetLastError(comm) : nullptr;
  if (last != nullptr && last[0] != '\0') absl::StrAppend(&message, "; last NCCL error: ", last);
  return absl::Status(NcclCode(result), message);
}

absl::Status CudaStatus(cudaError_t error, std::string_view call, int rank) {
  if (error == cudaSuccess) return absl::OkStatus();
  const absl::StatusOr<const Library*> lib = OpenLibrary();
  if (!lib.ok()) {
    return absl::Status(CudaCode(error), absl::StrFormat("%s failed on rank %d: CUDA error %d",
                                                         call, rank, static_cast<int>(error)));
  }
  return absl::Status(CudaCode(error), absl::StrFormat("%s failed on rank %d: %s (%s)", call, rank,
                                                       (*lib)->cudaGetErrorString(error),
                                                       (*lib)->cudaGetErrorName(error)));
}

}  // namespace nmesh::comm::nccl
