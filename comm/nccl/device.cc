#include "nmesh/comm/nccl/device.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "nmesh/base/status_macros.h"
#include "nmesh/comm/nccl/library.h"

namespace nmesh::comm::nccl {

namespace ci = ::nmesh::comm::internal;

ncclDataType_t NcclType(DataType type) {
  switch (type) {
    case DataType::kInt8:
      return ncclInt8;
    case DataType::kUint8:
      return ncclUint8;
    case DataType::kInt32:
      return ncclInt32;
    case DataType::kUint32:
      return ncclUint32;
    case DataType::kInt64:
      return ncclInt64;
    case DataType::kUint64:
      return ncclUint64;
    case DataType::kFloat16:
      return ncclFloat16;
    case DataType::kBFloat16:
      return ncclBfloat16;
    case DataType::kFloat32:
      return ncclFloat32;
    case DataType::kFloat64:
      return ncclFloat64;
  }
  NMESH_CHECK(false) << "unknown DataType " << static_cast<int>(type);
  return ncclFloat32;
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kProd:
      return ncclProd;
    case ReduceOp::kMin:
      return ncclMin;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kAvg:
      return ncclAvg;
  }
  NMESH_CHECK(false) << "unknown ReduceOp " << static_cast<int>(op);
  return ncclSum;
}

// A nonblocking config: every call returns at once and is polled. commName stays unset: NCCL's
// handling of that pointer's lifetime is not documented, and nmesh's messages carry the name.
ncclConfig_t NonblockingConfig() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  config.splitShare = 1;
  return config;
}

// Polls a communicator that nobody else can see yet (or any more) until NCCL has finished its
// pending calls. Returns the final state, or ncclInProgress when the deadline passed first.
ncclResult_t PollUntilReady(ncclComm_t comm, const ci::Deadline& deadline) {
  ci::PollPacer pacer;
  while (true) {
    ncclResult_t state = ncclSuccess;
    if (ncclResult_t rc = Lib().ncclCommGetAsyncError(comm, &state); rc != ncclSuccess) return rc;
    if (state != ncclInProgress || deadline.Expired()) return state;
    pacer.Pause();
  }
}

// Device memory on `device`, freed there. `rank` goes into error messages.
absl::StatusOr<Buffer> AllocateDeviceBuffer(int device, size_t bytes, int rank) {
  if (bytes == 0) return Buffer();
  NMESH_ASSIGN_OR_RETURN(const Library* lib, OpenLibrary());
  NMESH_RETURN_IF_ERROR(CudaStatus(lib->cudaSetDevice(device), "cudaSetDevice", rank));
  void* data = nullptr;
  NMESH_RETURN_IF_ERROR(CudaStatus(lib->cudaMalloc(&data, bytes), "cudaMalloc", rank));
  return Buffer(data, bytes, [lib, device](void* p) {
    lib->cudaSetDevice(device);
    lib->cudaFree(p);
  });
}

// A synchronous copy on `device` (cudaMemcpy waits for the copy to finish).
absl::Status CopyOnDevice(int device, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                          int rank) {
  if (bytes == 0) return absl::OkStatus();
  NMESH_ASSIGN_OR_RETURN(const Library* lib, OpenLibrary());
  NMESH_RETURN_IF_ERROR(CudaStatus(lib->cudaSetDevice(device), "cudaSetDevice", rank));
  return CudaStatus(lib->cudaMemcpy(dst, src, bytes, kind), "cudaMemcpy", rank);
}

}  // namespace nmesh::comm::nccl
