// NCCL and the CUDA runtime, opened at run time (dlopen) rather than linked, so that a program
// linking nmesh needs neither to start: only a job that asks for the NCCL backend loads them.
// Internal to comm/nccl (not installed): every NCCL and CUDA runtime call of the backend goes
// through the table below.
//
//   NMESH_ASSIGN_OR_RETURN(const Library* lib, OpenLibrary());
//   NMESH_RETURN_IF_ERROR(CudaStatus(lib->cudaSetDevice(device), "cudaSetDevice", rank));
//
// The libraries are found by their sonames (libcudart.so.<CUDA major>, libnccl.so.<NCCL major>,
// the majors of the headers this build compiled against) the way the dynamic loader finds any
// library: LD_LIBRARY_PATH, the program's run path, ld.so.cache, the system directories. A
// process that already holds them (an engine linking NCCL itself) shares its copies.
#ifndef NMESH_COMM_NCCL_LIBRARY_H_
#define NMESH_COMM_NCCL_LIBRARY_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string>

#include "absl/status/statusor.h"

namespace nmesh::comm::nccl {

// The CUDA runtime functions the backend calls (and cudaMalloc, in Library).
#define NMESH_CUDART_FUNCTIONS(X) \
  X(cudaGetDeviceCount)           \
  X(cudaSetDevice)                \
  X(cudaGetErrorString)           \
  X(cudaGetErrorName)             \
  X(cudaFree)                     \
  X(cudaMemcpy)                   \
  X(cudaStreamCreateWithFlags)    \
  X(cudaStreamDestroy)            \
  X(cudaStreamQuery)              \
  X(cudaStreamGetDevice)          \
  X(cudaStreamWaitEvent)          \
  X(cudaEventCreateWithFlags)     \
  X(cudaEventDestroy)             \
  X(cudaEventRecord)              \
  X(cudaEventQuery)               \
  X(cudaEventSynchronize)

// The NCCL functions the backend calls, all present since NCCL 2.18 (ncclCommSplit).
#define NMESH_NCCL_FUNCTIONS(X) \
  X(ncclGetVersion)             \
  X(ncclGetErrorString)         \
  X(ncclGetLastError)           \
  X(ncclGetUniqueId)            \
  X(ncclCommInitRankConfig)     \
  X(ncclCommSplit)              \
  X(ncclCommFinalize)           \
  X(ncclCommDestroy)            \
  X(ncclCommAbort)              \
  X(ncclCommGetAsyncError)      \
  X(ncclCommCount)              \
  X(ncclCommUserRank)           \
  X(ncclCommCuDevice)           \
  X(ncclGroupStart)             \
  X(ncclGroupEnd)               \
  X(ncclAllReduce)              \
  X(ncclAllGather)              \
  X(ncclReduceScatter)          \
  X(ncclBroadcast)              \
  X(ncclReduce)                 \
  X(ncclSend)                   \
  X(ncclRecv)

// The functions of newer NCCL versions, null when the loaded NCCL predates them (callers check the
// version first: PlanBootstrap).
#define NMESH_NCCL_OPTIONAL_FUNCTIONS(X) X(ncclCommInitRankScalable)

// The fault-tolerance functions of NCCL 2.27 (ncclCommShrink) and 2.28 (ncclCommRevoke), typed
// here rather than by the header's declarations, so that the table builds against older headers
// too; null when the loaded NCCL predates them (comm/nccl/recovery.h says so, naming the version).
using NcclCommRevokeFunction = ncclResult_t (*)(ncclComm_t comm, int revoke_flags);
using NcclCommShrinkFunction = ncclResult_t (*)(ncclComm_t comm, int* exclude_ranks,
                                                int exclude_count, ncclComm_t* newcomm,
                                                ncclConfig_t* config, int shrink_flags);
// NCCL_SHRINK_DEFAULT, NCCL_SHRINK_ABORT and NCCL_REVOKE_DEFAULT of nccl.h 2.28.
inline constexpr int kNcclShrinkDefault = 0x00;
inline constexpr int kNcclShrinkAbort = 0x01;
inline constexpr int kNcclRevokeDefault = 0x00;

// One pointer per function, named and typed as the function it points to.
struct Library {
#define NMESH_NCCL_LIBRARY_MEMBER(name) decltype(&::name) name = nullptr;
  NMESH_CUDART_FUNCTIONS(NMESH_NCCL_LIBRARY_MEMBER)
  NMESH_NCCL_FUNCTIONS(NMESH_NCCL_LIBRARY_MEMBER)
  NMESH_NCCL_OPTIONAL_FUNCTIONS(NMESH_NCCL_LIBRARY_MEMBER)
#undef NMESH_NCCL_LIBRARY_MEMBER
  NcclCommRevokeFunction ncclCommRevoke = nullptr;
  NcclCommShrinkFunction ncclCommShrink = nullptr;
  // cuda_runtime.h (which nccl.h includes) adds template overloads of cudaMalloc: the C one.
  cudaError_t (*cudaMalloc)(void** pointer, size_t bytes) = nullptr;
};

// The sonames opened, e.g. "libcudart.so.13" and "libnccl.so.2".
std::string CudaRuntimeSoname();
std::string NcclSoname();

// Opens the CUDA runtime, then NCCL, and resolves every function above, once per process (later
// calls return the first result). FailedPrecondition "cannot load the CUDA runtime: <the
// loader's message>", "cannot load NCCL: ..." or "<soname> has no function <name>". Thread-safe;
// needs no GPU.
absl::StatusOr<const Library*> OpenLibrary();

// The table, for code that runs only once OpenLibrary has succeeded (on a communicator, a work
// handle): a failed or missing open there is a broken invariant and crashes (NMESH_CHECK).
const Library& Lib();

// Makes OpenLibrary and Lib return `library` instead of the loaded table (null: the loaded one
// again), for tests that script NCCL and CUDA without a GPU. Call it while no communicator of this
// backend exists; `library` must outlive them all.
void SetLibraryForTesting(const Library* library);

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_LIBRARY_H_
