#include "nmesh/comm/nccl/runtime.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "absl/strings/str_format.h"

namespace nmesh::comm::nccl {

std::string LinkedNcclVersion() {
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) return "unknown";
  // Since NCCL 2.9 the code is MAJOR*10000 + MINOR*100 + PATCH.
  return absl::StrFormat("%d.%d.%d", version / 10000, (version / 100) % 100, version % 100);
}

int LinkedNcclVersionCode() {
  int version = 0;
  return ncclGetVersion(&version) == ncclSuccess ? version : 0;
}

absl::StatusOr<int> VisibleCudaDevices() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    return absl::FailedPreconditionError(
        absl::StrFormat("no CUDA device visible: cudaGetDeviceCount failed: %s (%s)",
                        cudaGetErrorString(err), cudaGetErrorName(err)));
  }
  if (count == 0) {
    return absl::FailedPreconditionError("no CUDA device visible: cudaGetDeviceCount returned 0");
  }
  return count;
}

}  // namespace nmesh::comm::nccl
