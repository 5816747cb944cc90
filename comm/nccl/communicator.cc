// NcclCommunicator (nccl_communicator.h): its lifetime, polling NCCL until ready, the checks every
// call makes, the timeout, the watchdog's polls (outstanding handles, asynchronous NCCL errors),
// memory and copies; the queries NativeComm and DeviceOf, and the device self communicator.
#include "nmesh/comm/nccl/communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/nccl/device.h"
#include "nmesh/comm/nccl/library.h"
#include "nmesh/comm/nccl/native.h"
#include "nmesh/comm/nccl/nccl_communicator.h"
#include "nmesh/comm/nccl/status.h"
#include "nmesh/comm/self.h"

namespace nmesh::comm::nccl {
namespace {

namespace ci = ::nmesh::comm::internal;

}  // namespace

NcclCommunicator::NcclCommunicator(ncclComm_t comm, int device, cudaStream_t stream, int rank,
                                   int size, CommOptions options)
    : comm_(comm),
      device_(device),
      stream_(stream),
      active_stream_(stream),
      rank_(rank),
      size_(size),
      options_(std::move(options)) {
  // Asynchronous operations against their deadline, and NCCL's asynchronous errors, timeout or
  // not (comm/watch/watchdog.h).
  Watch(nullptr, WatchMode::kSelfPolling);
}

NcclCommunicator::~NcclCommunicator() {
  Unwatch();
  Lib().cudaSetDevice(device_);
  works_.OrphanAll();
  ncclComm_t comm = nullptr;
  ncclComm_t revoked = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    comm = comm_;
    revoked = revoked_;
  }
  // A revoked communicator (and the parent of a shrink with abort) is aborted, never finalised.
  if (revoked != nullptr && owned_) Lib().ncclCommAbort(revoked);
  if (comm != nullptr && owned_) {
    // Finalise (flushes outstanding work; nonblocking), wait up to the timeout, then destroy.
    // If finalisation fails or outlives the timeout, abort instead.
    ncclResult_t state = Lib().ncclCommFinalize(comm);
    if (state == ncclSuccess || state == ncclInProgress) {
      state = PollUntilReady(comm, ci::Deadline(options_.timeout));
    }
    if (state == ncclSuccess) {
      Lib().ncclCommDestroy(comm);
    } else {
      Lib().ncclCommAbort(comm);
    }
  }
  if (barrier_buffer_ != nullptr) Lib().cudaFree(barrier_buffer_);
  if (stream_ != nullptr) Lib().cudaStreamDestroy(stream_);
}

ncclComm_t NcclCommunicator::native() const {
  std::lock_guard<std::mutex> lock(mu_);
  return comm_;
}

absl::Status NcclCommunicator::WaitReady(ci::OpName op, const ci::Deadline& deadline) {
  ci::PollPacer pacer;
  while (true) {
    ncclResult_t state = ncclSuccess;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (comm_ == nullptr) return Usable(op);
      NMESH_RETURN_IF_ERROR(
          Check(op, Lib().ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError"));
    }
    if (state == ncclSuccess) return absl::OkStatus();
    if (state != ncclInProgress) return FailAsync(op, state);
    if (deadline.Expired()) return FailTimeout(op);
    pacer.Pause();
  }
}

absl::Status NcclCommunicator::DoSetTimeout(std::optional<absl::Duration> timeout) {
  options_.timeout = timeout;
  return absl::OkStatus();
}

void NcclCommunicator::PollOutstanding() { works_.TryPollAll(); }

absl::Status NcclCommunicator::PollAsyncError() {
  ncclResult_t state = ncclSuccess;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (comm_ == nullptr) return absl::OkStatus();  // aborted: nothing more to find
    if (Lib().ncclCommGetAsyncError(comm_, &state) != ncclSuccess) return absl::OkStatus();
    if (state == ncclSuccess || state == ncclInProgress) return absl::OkStatus();
    absl::Status error = NcclStatus(state, "ncclCommGetAsyncError", rank_, comm_);
    return absl::Status(error.code(),
                        absl::StrFormat("asynchronous NCCL error on axis '%s': %s (rank %d of %d)",
                                        options_.name, error.message(), rank_, size_));
  }
}

absl::StatusOr<Buffer> NcclCommunicator::AllocateBuffer(size_t bytes) {
  absl::StatusOr<Buffer> buffer = AllocateDeviceBuffer(device_, bytes, rank_);
  if (!buffer.ok()) return ci::WithContext(*this, ci::kAllocate, buffer.status());
  return buffer;
}

absl::Status NcclCommunicator::CopyToHost(void* host, const void* buffer, size_t bytes) {
  NMESH_RETURN_IF_ERROR(ci::CheckCopy(*this, ci::kCopyToHost, host, buffer, bytes));
  return ci::WithContext(*this, ci::kCopyToHost,
                         CopyOnDevice(device_, host, buffer, bytes, cudaMemcpyDeviceToHost, rank_));
}

absl::Status NcclCommunicator::CopyFromHost(void* buffer, const void* host, size_t bytes) {
  NMESH_RETURN_IF_ERROR(ci::CheckCopy(*this, ci::kCopyFromHost, buffer, host, bytes));
  return ci::WithContext(*this, ci::kCopyFromHost,
                         CopyOnDevice(device_, buffer, host, bytes, cudaMemcpyHostToDevice, rank_));
}

std::unique_ptr<Communicator> NcclCommunicator::NewSelf(CommOptions options) const {
  return NewDeviceSelfCommunicator(std::move(options), device_);
}

absl::Status NcclCommunicator::Usable(ci::OpName op) const {
  return abort_state_->Check(*this, op);
}

absl::Status NcclCommunicator::CheckUsable(std::string_view op) const { return Usable(op); }

absl::Status NcclCommunicator::Check(ci::OpName op, ncclResult_t result, const char* call) const {
  return ci::WithContext(*this, op, NcclStatus(result, call, rank_, comm_));
}

absl::Status NcclCommunicator::SetDevice(ci::OpName op) const {
  return ci::WithContext(*this, op,
                         CudaStatus(Lib().cudaSetDevice(device_), "cudaSetDevice", rank_));
}

absl::StatusOr<ncclComm_t> NativeComm(const Communicator& comm) {
  const auto* nccl_comm = dynamic_cast<const NcclCommunicator*>(&comm);
  if (nccl_comm == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::NativeComm needs an NCCL communicator; axis '%s' uses the %s backend",
        comm.options().name, comm.backend()));
  }
  ncclComm_t native = nccl_comm->native();
  if (native == nullptr) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "nccl::NativeComm: the communicator of axis '%s' was aborted", comm.options().name));
  }
  return native;
}

absl::StatusOr<int> DeviceOf(const Communicator& comm) {
  const auto* nccl_comm = dynamic_cast<const NcclCommunicator*>(&comm);
  if (nccl_comm == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("nccl::DeviceOf needs an NCCL communicator; axis '%s' uses the %s backend",
                        comm.options().name, comm.backend()));
  }
  return nccl_comm->device();
}

std::unique_ptr<Communicator> NewDeviceSelfCommunicator(CommOptions options, int device) {
  auto copier = [device](cudaMemcpyKind kind) {
    return [device, kind](void* dst, const void* src, size_t bytes) {
      return CopyOnDevice(device, dst, src, bytes, kind, 0);
    };
  };
  return NewSelfCommunicator(
      std::move(options),
      SelfMemory{
          .kind = MemoryKind::kDevice,
          .copy = copier(cudaMemcpyDeviceToDevice),
          .allocate = [device](size_t bytes) { return AllocateDeviceBuffer(device, bytes, 0); },
          .copy_to_host = copier(cudaMemcpyDeviceToHost),
          .copy_from_host = copier(cudaMemcpyHostToDevice)});
}

}  // namespace nmesh::comm::nccl
