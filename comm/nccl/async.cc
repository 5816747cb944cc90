// Asynchronous operations of NcclCommunicator (nccl_communicator.h): enqueued on the caller's
// stream or the communicator's, inside a batch's NCCL group or alone, each backed by a CUDA event
// recorded after it (NcclWork, device.h); the event of a handle and a stream waiting on it
// (native.h).
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/nccl/device.h"
#include "nmesh/comm/nccl/library.h"
#include "nmesh/comm/nccl/native.h"
#include "nmesh/comm/nccl/nccl_communicator.h"
#include "nmesh/comm/nccl/status.h"

namespace nmesh::comm::nccl {
namespace {

namespace ci = ::nmesh::comm::internal;

}  // namespace

absl::StatusOr<Work> NcclCommunicator::DoAsync(const OpArgs& a, const AsyncOptions& async) {
  cudaStream_t stream = async.stream != nullptr ? static_cast<cudaStream_t>(async.stream) : stream_;
  NMESH_RETURN_IF_ERROR(SetDevice(a.op));
  if (async.stream != nullptr) {
    int stream_device = -1;
    NMESH_RETURN_IF_ERROR(
        ci::WithContext(*this, a.op,
                        CudaStatus(Lib().cudaStreamGetDevice(stream, &stream_device),
                                   "cudaStreamGetDevice", rank_)));
    if (stream_device != device_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the stream belongs to CUDA device %d but this communicator uses device %d (rank "
          "%d of %d)",
          ci::OpContext(*this, a.op), stream_device, device_, rank_, size_));
    }
  }
  cudaEvent_t event = nullptr;
  NMESH_RETURN_IF_ERROR(
      ci::WithContext(*this, a.op,
                      CudaStatus(Lib().cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
                                 "cudaEventCreate", rank_)));
  // In a batch: the first NCCL operation opens the group, Batch::End closes it; the event can
  // only be recorded once the group has been issued.
  Batch::State* batch = ci::CurrentBatch();
  if (batch != nullptr && !batch->end_group) {
    if (absl::Status s = NcclStatus(Lib().ncclGroupStart(), "ncclGroupStart", rank_); !s.ok()) {
      Lib().cudaEventDestroy(event);
      return ci::WithContext(*this, a.op, s);
    }
    batch->end_group = [rank = rank_] {
      return NcclStatus(Lib().ncclGroupEnd(), "ncclGroupEnd", rank);
    };
  }
  active_stream_ = stream;
  enqueue_only_ = batch == nullptr;
  in_group_ = batch != nullptr;
  absl::Status issued = DoRun(a);
  active_stream_ = stream_;
  enqueue_only_ = false;
  in_group_ = false;
  if (batch != nullptr) {
    if (!issued.ok()) {
      Lib().cudaEventDestroy(event);
      return issued;
    }
    const std::string op(OpKindName(a.op));
    batch->after_end.push_back([this, event, stream, op] {
      NMESH_RETURN_IF_ERROR(WaitReady(op, ci::Deadline(options_.timeout)));
      NMESH_RETURN_IF_ERROR(SetDevice(op));
      return ci::WithContext(
          *this, op, CudaStatus(Lib().cudaEventRecord(event, stream), "cudaEventRecord", rank_));
    });
  } else if (issued.ok()) {
    issued = ci::WithContext(
        *this, a.op, CudaStatus(Lib().cudaEventRecord(event, stream), "cudaEventRecord", rank_));
  }
  if (!issued.ok()) {
    Lib().cudaEventDestroy(event);
    return issued;
  }
  return Work(
      works_.Add(std::make_shared<NcclWork>(*this, a.op, device_, rank_, event, abort_state_)));
}

absl::StatusOr<cudaEvent_t> EventOf(const Work& work) {
  const auto* nccl_work = dynamic_cast<const NcclWork*>(work.impl());
  if (nccl_work == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::EventOf needs a handle of an NCCL operation; got %s",
        work.valid() ? absl::StrFormat("a handle of '%s' from another backend", work.op())
                     : std::string("an empty handle")));
  }
  return nccl_work->event();
}

absl::Status StreamWaitWork(const Work& work, cudaStream_t stream) {
  NMESH_ASSIGN_OR_RETURN(cudaEvent_t event, EventOf(work));
  return CudaStatus(Lib().cudaStreamWaitEvent(stream, event, 0), "cudaStreamWaitEvent", -1);
}

}  // namespace nmesh::comm::nccl
