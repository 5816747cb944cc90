// The operations of NcclCommunicator (nccl_communicator.h): each one issued on the live NCCL
// communicator and polled to completion (Run), all_to_all and the grouped operations as groups of
// ncclSend/ncclRecv, the barrier as an all-reduce of one float.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <mutex>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/nccl/device.h"
#include "nmesh/comm/nccl/library.h"
#include "nmesh/comm/nccl/nccl_communicator.h"
#include "nmesh/comm/nccl/status.h"

namespace nmesh::comm::nccl {
namespace {

namespace ci = ::nmesh::comm::internal;

}  // namespace

template <typename Issue>
absl::Status NcclCommunicator::Run(ci::OpName op, const char* call, Issue issue) {
  ci::Deadline deadline(options_.timeout);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (comm_ == nullptr) return Usable(op);
    NMESH_RETURN_IF_ERROR(SetDevice(op));
    NMESH_RETURN_IF_ERROR(Check(op, issue(comm_), call));
  }
  if (in_group_) return absl::OkStatus();  // issued by Batch::End's ncclGroupEnd
  NMESH_RETURN_IF_ERROR(WaitReady(op, deadline));
  if (enqueue_only_) return absl::OkStatus();  // DoAsync: enqueued is enough
  ci::PollPacer pacer;
  while (true) {
    const cudaError_t query = Lib().cudaStreamQuery(active_stream_);
    if (query == cudaSuccess) return absl::OkStatus();
    if (query != cudaErrorNotReady) {
      absl::Status error = CudaStatus(query, "cudaStreamQuery", rank_);
      Retire(absl::StrFormat("an earlier %s failed: %s", op, error.message()));
      return ci::WithContext(*this, op, error);
    }
    // A peer's failure shows up as an asynchronous error while the kernel waits.
    ncclResult_t state = ncclSuccess;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (comm_ == nullptr) return Usable(op);
      Lib().ncclCommGetAsyncError(comm_, &state);
    }
    if (state != ncclSuccess && state != ncclInProgress) return FailAsync(op, state);
    if (deadline.Expired()) return FailTimeout(op);
    pacer.Pause();
  }
}

template <typename Body>
absl::Status NcclCommunicator::RunGroup(ci::OpName op, Body body) {
  return Run(op, "ncclGroupEnd", [&](ncclComm_t c) {
    ncclResult_t first_error = Lib().ncclGroupStart();
    if (first_error == ncclSuccess) first_error = body(c);
    const ncclResult_t end = Lib().ncclGroupEnd();
    return first_error != ncclSuccess ? first_error : end;
  });
}

absl::Status NcclCommunicator::DoAllReduce(const void* send, void* recv, size_t count,
                                           DataType type, ReduceOp op) {
  return Run(OpKind::kAllReduce, "ncclAllReduce", [&](ncclComm_t c) {
    return Lib().ncclAllReduce(send, recv, count, NcclType(type), NcclOp(op), c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoAllGather(const void* send, void* recv, size_t send_count,
                                           DataType type) {
  return Run(OpKind::kAllGather, "ncclAllGather", [&](ncclComm_t c) {
    return Lib().ncclAllGather(send, recv, send_count, NcclType(type), c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoReduceScatter(const void* send, void* recv, size_t recv_count,
                                               DataType type, ReduceOp op) {
  return Run(OpKind::kReduceScatter, "ncclReduceScatter", [&](ncclComm_t c) {
    return Lib().ncclReduceScatter(send, recv, recv_count, NcclType(type), NcclOp(op), c,
                                   active_stream_);
  });
}

absl::Status NcclCommunicator::DoBroadcast(void* buffer, size_t count, DataType type, int root) {
  return Run(OpKind::kBroadcast, "ncclBroadcast", [&](ncclComm_t c) {
    return Lib().ncclBroadcast(buffer, buffer, count, NcclType(type), root, c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoAllToAll(const void* send, void* recv, size_t count,
                                          DataType type) {
  const size_t block = count * DataTypeSize(type);
  return Run(OpKind::kAllToAll, "ncclGroupEnd", [&](ncclComm_t c) {
    ncclResult_t first_error = Lib().ncclGroupStart();
    for (int peer = 0; peer < size_ && first_error == ncclSuccess; ++peer) {
      const size_t offset = block * static_cast<size_t>(peer);
      ncclResult_t rc = Lib().ncclSend(static_cast<const std::byte*>(send) + offset, count,
                                       NcclType(type), peer, c, active_stream_);
      if (rc == ncclSuccess) {
        rc = Lib().ncclRecv(static_cast<std::byte*>(recv) + offset, count, NcclType(type), peer, c,
                            active_stream_);
      }
      first_error = rc;
    }
    const ncclResult_t end = Lib().ncclGroupEnd();
    return first_error != ncclSuccess ? first_error : end;
  });
}

absl::Status NcclCommunicator::DoSend(const void* buffer, size_t count, DataType type, int peer) {
  return Run(OpKind::kSend, "ncclSend", [&](ncclComm_t c) {
    return Lib().ncclSend(buffer, count, NcclType(type), peer, c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoRecv(void* buffer, size_t count, DataType type, int peer) {
  return Run(OpKind::kRecv, "ncclRecv", [&](ncclComm_t c) {
    return Lib().ncclRecv(buffer, count, NcclType(type), peer, c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoAllToAllV(const void* send, absl::Span<const size_t> send_counts,
                                           absl::Span<const size_t> send_displs, void* recv,
                                           absl::Span<const size_t> recv_counts,
                                           absl::Span<const size_t> recv_displs, DataType type) {
  const size_t e = DataTypeSize(type);
  return RunGroup(OpKind::kAllToAllV, [&](ncclComm_t c) {
    for (int peer = 0; peer < size_; ++peer) {
      const size_t j = static_cast<size_t>(peer);
      if (send_counts[j] > 0) {
        ncclResult_t rc = Lib().ncclSend(static_cast<const std::byte*>(send) + send_displs[j] * e,
                                         send_counts[j], NcclType(type), peer, c, active_stream_);
        if (rc != ncclSuccess) return rc;
      }
      if (recv_counts[j] > 0) {
        ncclResult_t rc = Lib().ncclRecv(static_cast<std::byte*>(recv) + recv_displs[j] * e,
                                         recv_counts[j], NcclType(type), peer, c, active_stream_);
        if (rc != ncclSuccess) return rc;
      }
    }
    return ncclSuccess;
  });
}

absl::Status NcclCommunicator::DoGather(const void* send, void* recv, size_t send_count,
                                        DataType type, int root) {
  const size_t block = send_count * DataTypeSize(type);
  return RunGroup(OpKind::kGather, [&](ncclComm_t c) {
    if (rank_ == root) {
      for (int peer = 0; peer < size_; ++peer) {
        std::byte* slot = static_cast<std::byte*>(recv) + block * static_cast<size_t>(peer);
        if (peer == rank_ && slot == send) continue;  // in place
        ncclResult_t rc = Lib().ncclRecv(slot, send_count, NcclType(type), peer, c, active_stream_);
        if (rc != ncclSuccess) return rc;
      }
      if (static_cast<std::byte*>(recv) + block * static_cast<size_t>(rank_) == send) {
        return ncclSuccess;
      }
    }
    return Lib().ncclSend(send, send_count, NcclType(type), root, c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoScatter(const void* send, void* recv, size_t recv_count,
                                         DataType type, int root) {
  const size_t block = recv_count * DataTypeSize(type);
  return RunGroup(OpKind::kScatter, [&](ncclComm_t c) {
    if (rank_ == root) {
      for (int peer = 0; peer < size_; ++peer) {
        const std::byte* slot =
            static_cast<const std::byte*>(send) + block * static_cast<size_t>(peer);
        if (peer == rank_ && slot == recv) continue;  // in place
        ncclResult_t rc = Lib().ncclSend(slot, recv_count, NcclType(type), peer, c, active_stream_);
        if (rc != ncclSuccess) return rc;
      }
      if (static_cast<const std::byte*>(send) + block * static_cast<size_t>(rank_) == recv) {
        return ncclSuccess;
      }
    }
    return Lib().ncclRecv(recv, recv_count, NcclType(type), root, c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoReduce(const void* send, void* recv, size_t count, DataType type,
                                        ReduceOp op, int root) {
  return Run(OpKind::kReduce, "ncclReduce", [&](ncclComm_t c) {
    return Lib().ncclReduce(send, recv, count, NcclType(type), NcclOp(op), root, c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoSendRecv(const void* send, size_t send_count, int dest, void* recv,
                                          size_t recv_count, int source, DataType type) {
  return RunGroup(OpKind::kSendRecv, [&](ncclComm_t c) {
    ncclResult_t rc = Lib().ncclSend(send, send_count, NcclType(type), dest, c, active_stream_);
    if (rc != ncclSuccess) return rc;
    return Lib().ncclRecv(recv, recv_count, NcclType(type), source, c, active_stream_);
  });
}

absl::Status NcclCommunicator::DoBarrier() {
  if (barrier_buffer_ == nullptr) {
    NMESH_RETURN_IF_ERROR(SetDevice(OpKind::kBarrier));
    NMESH_RETURN_IF_ERROR(
        CudaStatus(Lib().cudaMalloc(&barrier_buffer_, sizeof(float)), "cudaMalloc", rank_));
  }
  return Run(OpKind::kBarrier, "ncclAllReduce", [&](ncclComm_t c) {
    return Lib().ncclAllReduce(barrier_buffer_, barrier_buffer_, 1, ncclFloat32, ncclSum, c,
                               active_stream_);
  });
}

}  // namespace nmesh::comm::nccl
