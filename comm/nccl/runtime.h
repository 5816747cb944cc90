// Facts about the NCCL and CUDA runtime this build links, usable on machines without a GPU.
//
//   std::cout << nmesh::comm::nccl::LinkedNcclVersion();   // "2.28.3"
#ifndef NMESH_COMM_NCCL_RUNTIME_H_
#define NMESH_COMM_NCCL_RUNTIME_H_

#include <string>

#include "absl/status/statusor.h"

namespace nmesh::comm::nccl {

// The version of the NCCL library loaded at run time (ncclGetVersion), e.g. "2.28.3".
// Thread-safe; needs no GPU.
std::string LinkedNcclVersion();
// The same as NCCL_VERSION_CODE counts it, e.g. 22809 for 2.28.9 (0 when ncclGetVersion fails).
int LinkedNcclVersionCode();

// The number of CUDA devices visible to this process. Fails with FailedPrecondition
// "no CUDA device visible: <reason>" when there is none or the driver is missing. Thread-safe.
absl::StatusOr<int> VisibleCudaDevices();

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_RUNTIME_H_
