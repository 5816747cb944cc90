// NCCL and the CUDA runtime as this process finds them, usable on machines without a GPU or
// without either library. The backend loads both at run time (dlopen of libcudart.so.<major> and
// libnccl.so.<major>, once per process, the first time one of these functions or the backend is
// used), so a program linking nmesh starts without them.
//
//   if (absl::Status s = nmesh::comm::nccl::LoadRuntime(); !s.ok()) std::cerr << s << "\n";
//   std::cout << nmesh::comm::nccl::LinkedNcclVersion();   // "2.28.3"
#ifndef NMESH_COMM_NCCL_RUNTIME_H_
#define NMESH_COMM_NCCL_RUNTIME_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nmesh::comm::nccl {

// Loads the CUDA runtime and NCCL if this process has not yet. OK when both load with every
// function the backend calls; FailedPrecondition "cannot load the CUDA runtime: <the loader's
// message>" (e.g. "libcudart.so.13: cannot open shared object file: No such file or directory"),
// "cannot load NCCL: ..." otherwise. The first result stands for the process. Thread-safe; needs
// no GPU.
absl::Status LoadRuntime();

// The version of the NCCL library loaded at run time (ncclGetVersion), e.g. "2.28.3"; "unknown"
// when NCCL cannot be loaded. Thread-safe; needs no GPU.
std::string LinkedNcclVersion();
// The same as NCCL_VERSION_CODE counts it, e.g. 22809 for 2.28.9 (0 when NCCL cannot be loaded or
// ncclGetVersion fails).
int LinkedNcclVersionCode();

// The number of CUDA devices visible to this process. Fails with FailedPrecondition: LoadRuntime's
// error when the libraries cannot be loaded, "no CUDA device visible: <reason>" when there is no
// device or the driver is missing. Thread-safe.
absl::StatusOr<int> VisibleCudaDevices();

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_RUNTIME_H_
