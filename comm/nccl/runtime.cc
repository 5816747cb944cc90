#include "nmesh/comm/nccl/runtime.h"

#include "absl/strings/str_format.h"
#include "nmesh/comm/nccl/library.h"

namespace nmesh::comm::nccl {

absl::Status LoadRuntime() { return OpenLibrary().status(); }

std::string LinkedNcclVersion() {
  const int version = LinkedNcclVersionCode();
  if (version == 0) return "unknown";
  // Since NCCL 2.9 the code is MAJOR*10000 + MINOR*100 + PATCH.
  return absl::StrFormat("%d.%d.%d", version / 10000, (version / 100) % 100, version % 100);
}

int LinkedNcclVersionCode() {
  const absl::StatusOr<const Library*> lib = OpenLibrary();
  int version = 0;
  return lib.ok() && (*lib)->ncclGetVersion(&version) == ncclSuccess ? version : 0;
}

absl::StatusOr<int> VisibleCudaDevices() {
  const absl::StatusOr<const Library*> lib = OpenLibrary();
  if (!lib.ok()) return lib.status();
  int count = 0;
  cudaError_t err = (*lib)->cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    return absl::FailedPreconditionError(
        absl::StrFormat("no CUDA device visible: cudaGetDeviceCount failed: %s (%s)",
                        (*lib)->cudaGetErrorString(err), (*lib)->cudaGetErrorName(err)));
  }
  if (count == 0) {
    return absl::FailedPreconditionError("no CUDA device visible: cudaGetDeviceCount returned 0");
  }
  return count;
}

}  // namespace nmesh::comm::nccl
