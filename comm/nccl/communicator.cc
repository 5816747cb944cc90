#include "nmesh/comm/nccl/communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/nccl/bootstrap.h"
#include "nmesh/comm/nccl/config.h"
#include "nmesh/comm/nccl/device.h"
#include "nmesh/comm/nccl/library.h"
#include "nmesh/comm/nccl/native.h"
#include "nmesh/comm/nccl/recovery.h"
#include "nmesh/comm/nccl/runtime.h"
#include "nmesh/comm/nccl/status.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/store_exchange.h"
#include "nmesh/comm/topology.h"

namespace nmesh::comm::nccl {
namespace {

namespace ci = ::nmesh::comm::internal;

constexpr std::string_view kInit = "init";
constexpr std::string_view kShrink = "shrink";

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (possibly still initialising) and `stream`.
  NcclCommunicator(ncclComm_t comm, int device, cudaStream_t stream, int rank, int size,
                   CommOptions options)
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

  ~NcclCommunicator() override {
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

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view backend() const override { return "nccl"; }
  MemoryKind memory_kind() const override { return MemoryKind::kDevice; }
  const CommOptions& options() const override { return options_; }
  int device() const { return device_; }

  // Polls the communicator until NCCL has finished the calls issued so far (initialisation, a
  // split, an enqueue). Aborts it on an asynchronous error or when the deadline passes.
  absl::Status WaitReady(ci::OpName op, const ci::Deadline& deadline) {
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

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        CommOptions options) override {
    NMESH_RETURN_IF_ERROR(ci::CheckSplit(*this, color));
    ci::Deadline deadline(options_.timeout);
    ncclConfig_t config = NonblockingConfig();
    // The child's settings (the same on every rank of a mesh, so all fail alike).
    NMESH_RETURN_IF_ERROR(
        ApplyNcclSettings(options.nccl, LinkedNcclVersionCode(), options.name, config));
    ncclComm_t child = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (comm_ == nullptr) return Usable(OpKind::kSplit);
      NMESH_RETURN_IF_ERROR(SetDevice(OpKind::kSplit));
      NMESH_RETURN_IF_ERROR(Check(
          OpKind::kSplit,
          Lib().ncclCommSplit(comm_, color ? *color : NCCL_SPLIT_NOCOLOR, key, &child, &config),
          "ncclCommSplit"));
    }
    // The split runs as a job of the parent; the child's handle may appear only when it ends.
    if (absl::Status s = WaitReady(OpKind::kSplit, deadline); !s.ok()) {
      if (child != nullptr) Lib().ncclCommAbort(child);
      return s;
    }
    if (!color) return std::unique_ptr<Communicator>();
    if (child == nullptr) {
      return absl::InternalError(absl::StrFormat("%s: ncclCommSplit gave no communicator (rank %d)",
                                                 ci::OpContext(*this, OpKind::kSplit), rank_));
    }
    // Then the child finishes its own initialisation. A child that cannot means the split failed
    // on this communicator, which is aborted like any failed or timed-out operation.
    const ncclResult_t state = PollUntilReady(child, deadline);
    int child_rank = 0, child_size = 0;
    ncclResult_t query = state;
    if (query == ncclSuccess) query = Lib().ncclCommUserRank(child, &child_rank);
    if (query == ncclSuccess) query = Lib().ncclCommCount(child, &child_size);
    cudaStream_t stream = nullptr;
    cudaError_t stream_error = cudaSuccess;
    if (query == ncclSuccess) {
      stream_error = Lib().cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    }
    if (query != ncclSuccess || stream_error != cudaSuccess) {
      absl::Status error =
          query == ncclInProgress
              ? ci::TimeoutError(*this, OpKind::kSplit)
              : (query != ncclSuccess
                     ? NcclStatus(query, "ncclCommSplit", rank_, child)
                     : CudaStatus(stream_error, "cudaStreamCreateWithFlags", rank_));
      Lib().ncclCommAbort(child);
      if (query == ncclInProgress) {
        Retire(absl::StrFormat("an earlier split timed out after %s",
                               ci::FormatTimeout(options_.timeout.value_or(absl::ZeroDuration()))));
      }
      return error;
    }
    return std::unique_ptr<Communicator>(
        new NcclCommunicator(child, device_, stream, child_rank, child_size, std::move(options)));
  }

  absl::Status DoAllReduce(const void* send, void* recv, size_t count, DataType type,
                           ReduceOp op) override {
    return Run(OpKind::kAllReduce, "ncclAllReduce", [&](ncclComm_t c) {
      return Lib().ncclAllReduce(send, recv, count, NcclType(type), NcclOp(op), c, active_stream_);
    });
  }

  absl::Status DoAllGather(const void* send, void* recv, size_t send_count,
                           DataType type) override {
    return Run(OpKind::kAllGather, "ncclAllGather", [&](ncclComm_t c) {
      return Lib().ncclAllGather(send, recv, send_count, NcclType(type), c, active_stream_);
    });
  }

  absl::Status DoReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                               ReduceOp op) override {
    return Run(OpKind::kReduceScatter, "ncclReduceScatter", [&](ncclComm_t c) {
      return Lib().ncclReduceScatter(send, recv, recv_count, NcclType(type), NcclOp(op), c,
                                     active_stream_);
    });
  }

  absl::Status DoBroadcast(void* buffer, size_t count, DataType type, int root) override {
    return Run(OpKind::kBroadcast, "ncclBroadcast", [&](ncclComm_t c) {
      return Lib().ncclBroadcast(buffer, buffer, count, NcclType(type), root, c, active_stream_);
    });
  }

  absl::Status DoAllToAll(const void* send, void* recv, size_t count, DataType type) override {
    const size_t block = count * DataTypeSize(type);
    return Run(OpKind::kAllToAll, "ncclGroupEnd", [&](ncclComm_t c) {
      ncclResult_t first_error = Lib().ncclGroupStart();
      for (int peer = 0; peer < size_ && first_error == ncclSuccess; ++peer) {
        const size_t offset = block * static_cast<size_t>(peer);
        ncclResult_t rc = Lib().ncclSend(static_cast<const std::byte*>(send) + offset, count,
                                         NcclType(type), peer, c, active_stream_);
        if (rc == ncclSuccess) {
          rc = Lib().ncclRecv(static_cast<std::byte*>(recv) + offset, count, NcclType(type), peer,
                              c, active_stream_);
        }
        first_error = rc;
      }
      const ncclResult_t end = Lib().ncclGroupEnd();
      return first_error != ncclSuccess ? first_error : end;
    });
  }

  absl::Status DoSend(const void* buffer, size_t count, DataType type, int peer) override {
    return Run(OpKind::kSend, "ncclSend", [&](ncclComm_t c) {
      return Lib().ncclSend(buffer, count, NcclType(type), peer, c, active_stream_);
    });
  }

  absl::Status DoRecv(void* buffer, size_t count, DataType type, int peer) override {
    return Run(OpKind::kRecv, "ncclRecv", [&](ncclComm_t c) {
      return Lib().ncclRecv(buffer, count, NcclType(type), peer, c, active_stream_);
    });
  }

  // all_to_all_v, gather and scatter are groups of ncclSend/ncclRecv (a rank's block for itself
  // included, as in all_to_all), issued by `issue(comm)` between ncclGroupStart and ncclGroupEnd.
  template <typename Body>
  absl::Status RunGroup(ci::OpName op, Body body) {
    return Run(op, "ncclGroupEnd", [&](ncclComm_t c) {
      ncclResult_t first_error = Lib().ncclGroupStart();
      if (first_error == ncclSuccess) first_error = body(c);
      const ncclResult_t end = Lib().ncclGroupEnd();
      return first_error != ncclSuccess ? first_error : end;
    });
  }

  absl::Status DoAllToAllV(const void* send, absl::Span<const size_t> send_counts,
                           absl::Span<const size_t> send_displs, void* recv,
                           absl::Span<const size_t> recv_counts,
                           absl::Span<const size_t> recv_displs, DataType type) override {
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

  absl::Status DoGather(const void* send, void* recv, size_t send_count, DataType type,
                        int root) override {
    const size_t block = send_count * DataTypeSize(type);
    return RunGroup(OpKind::kGather, [&](ncclComm_t c) {
      if (rank_ == root) {
        for (int peer = 0; peer < size_; ++peer) {
          std::byte* slot = static_cast<std::byte*>(recv) + block * static_cast<size_t>(peer);
          if (peer == rank_ && slot == send) continue;  // in place
          ncclResult_t rc =
              Lib().ncclRecv(slot, send_count, NcclType(type), peer, c, active_stream_);
          if (rc != ncclSuccess) return rc;
        }
        if (static_cast<std::byte*>(recv) + block * static_cast<size_t>(rank_) == send) {
          return ncclSuccess;
        }
      }
      return Lib().ncclSend(send, send_count, NcclType(type), root, c, active_stream_);
    });
  }

  absl::Status DoScatter(const void* send, void* recv, size_t recv_count, DataType type,
                         int root) override {
    const size_t block = recv_count * DataTypeSize(type);
    return RunGroup(OpKind::kScatter, [&](ncclComm_t c) {
      if (rank_ == root) {
        for (int peer = 0; peer < size_; ++peer) {
          const std::byte* slot =
              static_cast<const std::byte*>(send) + block * static_cast<size_t>(peer);
          if (peer == rank_ && slot == recv) continue;  // in place
          ncclResult_t rc =
              Lib().ncclSend(slot, recv_count, NcclType(type), peer, c, active_stream_);
          if (rc != ncclSuccess) return rc;
        }
        if (static_cast<const std::byte*>(send) + block * static_cast<size_t>(rank_) == recv) {
          return ncclSuccess;
        }
      }
      return Lib().ncclRecv(recv, recv_count, NcclType(type), root, c, active_stream_);
    });
  }

  absl::Status DoReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                        int root) override {
    return Run(OpKind::kReduce, "ncclReduce", [&](ncclComm_t c) {
      return Lib().ncclReduce(send, recv, count, NcclType(type), NcclOp(op), root, c,
                              active_stream_);
    });
  }

  absl::Status DoSendRecv(const void* send, size_t send_count, int dest, void* recv,
                          size_t recv_count, int source, DataType type) override {
    return RunGroup(OpKind::kSendRecv, [&](ncclComm_t c) {
      ncclResult_t rc = Lib().ncclSend(send, send_count, NcclType(type), dest, c, active_stream_);
      if (rc != ncclSuccess) return rc;
      return Lib().ncclRecv(recv, recv_count, NcclType(type), source, c, active_stream_);
    });
  }

  // Enqueues on the caller's stream (or the communicator's), without waiting for the stream: the
  // blocking hooks run with enqueue_only_ set, then an event is recorded after the operation.
  absl::StatusOr<Work> DoAsync(const OpArgs& a, const AsyncOptions& async) override {
    cudaStream_t stream =
        async.stream != nullptr ? static_cast<cudaStream_t>(async.stream) : stream_;
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

  absl::Status DoBarrier() override {
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

  absl::Status DoSetTimeout(std::optional<absl::Duration> timeout) override {
    options_.timeout = timeout;
    return absl::OkStatus();
  }

  absl::Status Abort() override {
    works_.TryPollAll();  // operations already complete keep their success
    Retire("Abort() was called");
    return absl::OkStatus();
  }

  // The mesh's communicators are stopped together (StopTogether): revoked where NCCL has
  // ncclCommRevoke, aborted otherwise.
  absl::Status AbortGroup(absl::Span<Communicator* const> family) override {
    return StopTogether(family, "aborted together with the other communicators of its mesh");
  }

  // Stops `family` together. With ncclCommRevoke: one group of ncclCommRevoke calls, each NCCL
  // communicator kept (revoked_) for ShrinkComm. Without: NCCL >= 2.22 aborts communicators in a
  // group: each ncclCommAbort alone may synchronise the device, which a kernel of another hung
  // communicator of the family blocks (NVIDIA/nccl#1013); grouped, they are aborted together.
  // Older NCCL: one after another. Members of other kinds are aborted (Abort()).
  static absl::Status StopTogether(absl::Span<Communicator* const> family,
                                   const std::string& reason) {
    struct Taken {
      NcclCommunicator* owner;
      ncclComm_t comm;
    };
    std::vector<Taken> taken;
    absl::Status first;
    const bool revoke = Lib().ncclCommRevoke != nullptr;
    for (Communicator* member : family) {
      auto* nccl = dynamic_cast<NcclCommunicator*>(member);
      if (nccl == nullptr) {  // e.g. a device self communicator
        first.Update(member->Abort());
        continue;
      }
      nccl->works_.TryPollAll();
      if (std::optional<ncclComm_t> comm = nccl->Take(reason)) {
        taken.push_back({nccl, *comm});
        if (revoke) nccl->KeepRevoked(*comm);
      }
    }
    if (taken.empty()) return first;
    const int rank = taken.front().owner->rank_;
    bool grouped = revoke;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 22, 0)
    grouped = true;
#endif
    std::vector<Taken> refused;  // revokes NCCL refused: aborted after the group
    if (grouped) first.Update(NcclStatus(Lib().ncclGroupStart(), "ncclGroupStart", rank));
    for (const Taken& t : taken) {
      Lib().cudaSetDevice(t.owner->device_);
      if (revoke) {
        absl::Status s = NcclStatus(Lib().ncclCommRevoke(t.comm, kNcclRevokeDefault),
                                    "ncclCommRevoke", t.owner->rank_);
        if (!s.ok()) refused.push_back(t);
        first.Update(std::move(s));
      } else {
        Lib().ncclCommAbort(t.comm);
      }
    }
    if (grouped) first.Update(NcclStatus(Lib().ncclGroupEnd(), "ncclGroupEnd", rank));
    for (const Taken& t : refused) t.owner->AbortRevoked(t.comm);
    return first;
  }

  // ncclCommShrink of this communicator without `exclude` (checked by the caller).
  absl::StatusOr<std::unique_ptr<Communicator>> Shrink(std::vector<int> exclude,
                                                       CommOptions options) {
    ci::Deadline deadline(options.timeout ? options.timeout : options_.timeout);
    ncclConfig_t config = NonblockingConfig();
    NMESH_RETURN_IF_ERROR(
        ApplyNcclSettings(options.nccl, LinkedNcclVersionCode(), options.name, config));
    // A healthy communicator stays usable; a revoked one is shrunk with abort, once NCCL has
    // finished revoking it. revoked_ is never taken by another thread (Abort() takes comm_ only).
    bool revoked = false;
    ncclComm_t parent = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      revoked = comm_ == nullptr;
      parent = revoked ? revoked_ : comm_;
    }
    if (parent == nullptr) {  // aborted (Abort(), or a failure without ncclCommRevoke)
      absl::Status aborted = Usable(kShrink);
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s; its NCCL communicator is gone: nothing to shrink",
          aborted.ok() ? ci::OpContext(*this, kShrink) : std::string(aborted.message())));
    }
    // Polls `comm` while NCCL reports ncclInProgress; the last state, or ncclInProgress when the
    // deadline passed first.
    auto settle = [&](ncclComm_t c) {
      ci::PollPacer pacer;
      ncclResult_t state = ncclInProgress;
      while (Lib().ncclCommGetAsyncError(c, &state) == ncclSuccess && state == ncclInProgress &&
             !deadline.Expired()) {
        pacer.Pause();
      }
      return state;
    };
    if (revoked && settle(parent) == ncclInProgress) return ci::TimeoutError(*this, kShrink);
    ncclComm_t child = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!revoked && comm_ == nullptr) return Usable(kShrink);  // aborted meanwhile
      NMESH_RETURN_IF_ERROR(SetDevice(kShrink));
      int none = 0;  // a list NCCL may read even when it excludes no rank
      const ncclResult_t result = Lib().ncclCommShrink(
          parent, exclude.empty() ? &none : exclude.data(), static_cast<int>(exclude.size()),
          &child, &config, revoked ? kNcclShrinkAbort : kNcclShrinkDefault);
      NMESH_RETURN_IF_ERROR(
          ci::WithContext(*this, kShrink, NcclStatus(result, "ncclCommShrink", rank_, parent)));
    }
    // The shrink runs as a job of the parent (nonblocking); the child may appear only when it ends.
    const ncclResult_t parent_state = settle(parent);
    if (parent_state == ncclInProgress || (!revoked && parent_state != ncclSuccess)) {
      if (child != nullptr) Lib().ncclCommAbort(child);
      if (!revoked) {  // the parent's job is stuck or failed: the parent goes the way of a failure
        Retire(parent_state == ncclInProgress
                   ? absl::StrFormat(
                         "an earlier shrink timed out after %s",
                         ci::FormatTimeout(options_.timeout.value_or(absl::ZeroDuration())))
                   : std::string("an earlier shrink failed"));
      }
      return parent_state == ncclInProgress
                 ? ci::TimeoutError(*this, kShrink)
                 : ci::WithContext(*this, kShrink,
                                   NcclStatus(parent_state, "ncclCommShrink", rank_, parent));
    }
    if (child == nullptr) {
      return absl::InternalError(
          absl::StrFormat("%s: ncclCommShrink gave no communicator (rank %d)",
                          ci::OpContext(*this, kShrink), rank_));
    }
    const ncclResult_t state = PollUntilReady(child, deadline);
    int child_rank = 0, child_size = 0;
    ncclResult_t query = state;
    if (query == ncclSuccess) query = Lib().ncclCommUserRank(child, &child_rank);
    if (query == ncclSuccess) query = Lib().ncclCommCount(child, &child_size);
    cudaStream_t stream = nullptr;
    cudaError_t stream_error = cudaSuccess;
    if (query == ncclSuccess) {
      stream_error = Lib().cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    }
    if (query != ncclSuccess || stream_error != cudaSuccess) {
      absl::Status error =
          query == ncclInProgress
              ? ci::TimeoutError(*this, kShrink)
              : (query != ncclSuccess
                     ? NcclStatus(query, "ncclCommShrink", rank_, child)
                     : CudaStatus(stream_error, "cudaStreamCreateWithFlags", rank_));
      Lib().ncclCommAbort(child);
      return query == ncclInProgress ? error : ci::WithContext(*this, kShrink, error);
    }
    return std::unique_ptr<Communicator>(
        new NcclCommunicator(child, device_, stream, child_rank, child_size, std::move(options)));
  }

  void PollOutstanding() override { works_.TryPollAll(); }

  absl::Status PollAsyncError() override {
    ncclResult_t state = ncclSuccess;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (comm_ == nullptr) return absl::OkStatus();  // aborted: nothing more to find
      if (Lib().ncclCommGetAsyncError(comm_, &state) != ncclSuccess) return absl::OkStatus();
      if (state == ncclSuccess || state == ncclInProgress) return absl::OkStatus();
      absl::Status error = NcclStatus(state, "ncclCommGetAsyncError", rank_, comm_);
      return absl::Status(
          error.code(), absl::StrFormat("asynchronous NCCL error on axis '%s': %s (rank %d of %d)",
                                        options_.name, error.message(), rank_, size_));
    }
  }

  absl::StatusOr<Buffer> AllocateBuffer(size_t bytes) override {
    absl::StatusOr<Buffer> buffer = AllocateDeviceBuffer(device_, bytes, rank_);
    if (!buffer.ok()) return ci::WithContext(*this, ci::kAllocate, buffer.status());
    return buffer;
  }

  absl::Status CopyToHost(void* host, const void* buffer, size_t bytes) override {
    NMESH_RETURN_IF_ERROR(ci::CheckCopy(*this, ci::kCopyToHost, host, buffer, bytes));
    return ci::WithContext(
        *this, ci::kCopyToHost,
        CopyOnDevice(device_, host, buffer, bytes, cudaMemcpyDeviceToHost, rank_));
  }

  absl::Status CopyFromHost(void* buffer, const void* host, size_t bytes) override {
    NMESH_RETURN_IF_ERROR(ci::CheckCopy(*this, ci::kCopyFromHost, buffer, host, bytes));
    return ci::WithContext(
        *this, ci::kCopyFromHost,
        CopyOnDevice(device_, buffer, host, bytes, cudaMemcpyHostToDevice, rank_));
  }

  std::unique_ptr<Communicator> NewSelf(CommOptions options) const override {
    return NewDeviceSelfCommunicator(std::move(options), device_);
  }

 private:
  absl::Status Usable(ci::OpName op) const { return abort_state_->Check(*this, op); }
  absl::Status CheckUsable(std::string_view op) const override { return Usable(op); }

  // Calls ncclCommAbort once and remembers why. Safe from any thread.
  void AbortComm(std::string reason) {
    if (std::optional<ncclComm_t> comm = Take(std::move(reason))) {
      Lib().cudaSetDevice(device_);
      Lib().ncclCommAbort(*comm);
    }
  }

  // After a failure: revokes the NCCL communicator where NCCL has ncclCommRevoke (it is kept for
  // ShrinkComm, and aborted when this Communicator is destroyed), aborts it otherwise. Safe from
  // any thread.
  void Retire(std::string reason) {
    if (Lib().ncclCommRevoke == nullptr) return AbortComm(std::move(reason));
    if (std::optional<ncclComm_t> comm = Take(std::move(reason))) {
      KeepRevoked(*comm);
      Lib().cudaSetDevice(device_);
      const ncclResult_t result = Lib().ncclCommRevoke(*comm, kNcclRevokeDefault);
      if (result != ncclSuccess && result != ncclInProgress) AbortRevoked(*comm);
    }
  }

  void KeepRevoked(ncclComm_t comm) {
    std::lock_guard<std::mutex> lock(mu_);
    revoked_ = comm;
  }

  // A revoke that NCCL refused: the communicator is aborted instead (and cannot be shrunk).
  void AbortRevoked(ncclComm_t comm) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      revoked_ = nullptr;
    }
    Lib().cudaSetDevice(device_);
    Lib().ncclCommAbort(comm);
  }

  // Marks this communicator aborted (first reason wins) and hands over the NCCL communicator to
  // abort, unless it was aborted already or is borrowed (the caller's to abort). Safe from any
  // thread.
  std::optional<ncclComm_t> Take(std::string reason) {
    std::lock_guard<std::mutex> lock(mu_);
    abort_state_->Mark(std::move(reason));
    ncclComm_t comm = std::exchange(comm_, nullptr);
    if (comm == nullptr || !owned_) return std::nullopt;
    return comm;
  }

  // After a timeout or an asynchronous error found by an operation: this communicator is aborted
  // already (with the reason); its mesh's other communicators follow, together.
  void AbortFamilyAfter() { AbortFamilyOrSelf(); }

  absl::Status FailTimeout(ci::OpName op) {
    absl::Status timeout = ci::TimeoutError(*this, op);
    Retire(absl::StrFormat("an earlier %s timed out after %s", op,
                           ci::FormatTimeout(options_.timeout.value_or(absl::ZeroDuration()))));
    AbortFamilyAfter();
    return timeout;
  }

  absl::Status FailAsync(ci::OpName op, ncclResult_t state) {
    absl::Status error;
    {
      std::lock_guard<std::mutex> lock(mu_);
      error = Check(op, state, "asynchronous NCCL operation");
    }
    Retire(absl::StrFormat("an earlier %s failed: %s", op, error.message()));
    AbortFamilyAfter();
    return error;
  }

  // Requires mu_ (ncclGetLastError reads the communicator).
  absl::Status Check(ci::OpName op, ncclResult_t result, const char* call) const {
    return ci::WithContext(*this, op, NcclStatus(result, call, rank_, comm_));
  }

  absl::Status SetDevice(ci::OpName op) const {
    return ci::WithContext(*this, op,
                           CudaStatus(Lib().cudaSetDevice(device_), "cudaSetDevice", rank_));
  }

  // Issues one operation (`issue` gets the live communicator), waits until NCCL has enqueued it,
  // then until the stream has run it, polling against the deadline throughout.
  template <typename Issue>
  absl::Status Run(ci::OpName op, const char* call, Issue issue) {
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

  mutable std::mutex mu_;  // guards comm_ against Abort() from another thread
  ncclComm_t comm_;        // null once aborted or revoked
  // The NCCL communicator once revoked (Retire, StopTogether), kept for Shrink; aborted by the
  // destructor.
  ncclComm_t revoked_ = nullptr;
  const int device_;
  cudaStream_t stream_;
  // Where the Do* hooks enqueue (stream_, or the caller's stream during DoAsync), and whether Run
  // returns once NCCL has enqueued the operation instead of once the stream has run it.
  cudaStream_t active_stream_ = stream_;
  bool enqueue_only_ = false;
  bool in_group_ = false;

 public:
  bool owned_ = true;  // false: adopted with Ownership::kBorrowed (never finalised or aborted here)
  ncclComm_t native() const {
    std::lock_guard<std::mutex> lock(mu_);
    return comm_;
  }
  static absl::StatusOr<cudaEvent_t> EventOf(const Work& work) {
    const auto* nccl_work = dynamic_cast<const NcclWork*>(work.impl());
    if (nccl_work == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "nccl::EventOf needs a handle of an NCCL operation; got %s",
          work.valid() ? absl::StrFormat("a handle of '%s' from another backend", work.op())
                       : std::string("an empty handle")));
    }
    return nccl_work->event();
  }  // DoAsync inside a batch: Run only adds the operation to the group
  ci::WorkRegistry works_;
  int rank_;
  int size_;
  CommOptions options_;
  void* barrier_buffer_ = nullptr;
  // Shared with the handles of asynchronous operations (NcclWork).
  std::shared_ptr<ci::AbortState> abort_state_ = std::make_shared<ci::AbortState>();
};

// Step 1 of CreateWorld on this rank: which device to use, or why none can be used.
absl::StatusOr<int> ChooseDevice(const NcclWorldOptions& options, const Topology& topo,
                                 const absl::StatusOr<int>& devices) {
  if (!devices.ok()) {
    return absl::Status(
        devices.status().code(),
        absl::StrFormat("%s (rank %d of %d)", devices.status().message(), topo.rank, topo.size));
  }
  if (!options.device && topo.local_size > *devices) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "host '%s' runs %d ranks but only %d CUDA devices are visible; run at most %d ranks per "
        "host or set CUDA_VISIBLE_DEVICES per rank (rank %d of %d)",
        topo.host_names[static_cast<size_t>(topo.rank)], topo.local_size, *devices, *devices,
        topo.rank, topo.size));
  }
  const int device = options.device.value_or(topo.local_rank);
  if (device < 0 || device >= *devices) {
    return absl::FailedPreconditionError(
        absl::StrFormat("CUDA device %d does not exist: %d are visible (rank %d of %d)", device,
                        *devices, topo.rank, topo.size));
  }
  return device;
}

}  // namespace

namespace {

// What CreateWorld needs from the ranks it meets: over a host communicator or over a store.
struct WorldMeeting {
  int rank = 0;
  int size = 1;
  // Every rank's host names and this rank's local rank and size.
  std::function<absl::StatusOr<Topology>()> topology;
  // Every rank's `local` status agreed (AgreeOnStatus); `step` names the meeting.
  std::function<absl::Status(const absl::Status& local, std::string_view step)> agree;
  // The roots' unique ids (`ids[i]` set on the i-th root), returned to every rank in root order.
  std::function<absl::Status(const BootstrapPlan& plan, std::vector<ncclUniqueId>& ids)> share;
};

absl::StatusOr<std::unique_ptr<Communicator>> CreateWorldWith(const WorldMeeting& meeting,
                                                              NcclWorldOptions options) {
  const int rank = meeting.rank;
  const int size = meeting.size;
  // First CUDA call of all, so that a machine without a GPU fails here and nowhere else.
  const absl::StatusOr<int> devices = VisibleCudaDevices();

  Topology topo;
  if (options.local_rank) {
    topo.rank = rank;
    topo.size = size;
    topo.local_rank = *options.local_rank;
    topo.local_size = 0;  // unknown: only the device index is checked
    topo.host_names.assign(static_cast<size_t>(size), "");
  } else {
    NMESH_ASSIGN_OR_RETURN(topo, meeting.topology());
  }
  const absl::StatusOr<int> device = ChooseDevice(options, topo, devices);
  NMESH_RETURN_IF_ERROR(meeting.agree(device.status(), "device"));

  absl::Status setup = CudaStatus(Lib().cudaSetDevice(*device), "cudaSetDevice", rank);
  // The roots create the unique ids; after every rank has agreed that setup worked, the ids are
  // shared with every rank, in root order.
  const BootstrapPlan boot = PlanBootstrap(size, options.bootstrap, LinkedNcclVersionCode());
  const auto root = std::find(boot.roots.begin(), boot.roots.end(), rank);
  std::vector<ncclUniqueId> ids(boot.roots.size());
  if (root != boot.roots.end() && setup.ok()) {
    setup = NcclStatus(Lib().ncclGetUniqueId(&ids[static_cast<size_t>(root - boot.roots.begin())]),
                       "ncclGetUniqueId", rank);
  }
  NMESH_RETURN_IF_ERROR(meeting.agree(setup, "setup"));
  NMESH_RETURN_IF_ERROR(meeting.share(boot, ids));

  cudaStream_t stream = nullptr;
  NMESH_RETURN_IF_ERROR(CudaStatus(Lib().cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                                   "cudaStreamCreateWithFlags", rank));
  ncclConfig_t config = NonblockingConfig();
  if (absl::Status s =
          ApplyNcclSettings(options.comm.nccl, LinkedNcclVersionCode(), options.comm.name, config);
      !s.ok()) {
    Lib().cudaStreamDestroy(stream);
    return s;
  }
  ncclComm_t comm = nullptr;
  absl::Status init;
#if NCCL_VERSION_CODE >= 22304
  if (boot.scalable) {
    init = NcclStatus(Lib().ncclCommInitRankScalable(
                          &comm, size, rank, static_cast<int>(ids.size()), ids.data(), &config),
                      "ncclCommInitRankScalable", rank, comm);
  } else {
    init = NcclStatus(Lib().ncclCommInitRankConfig(&comm, size, ids[0], rank, &config),
                      "ncclCommInitRankConfig", rank, comm);
  }
#else
  init = NcclStatus(Lib().ncclCommInitRankConfig(&comm, size, ids[0], rank, &config),
                    "ncclCommInitRankConfig", rank, comm);
#endif
  if (absl::Status s = init; !s.ok()) {
    if (comm != nullptr) Lib().ncclCommAbort(comm);
    Lib().cudaStreamDestroy(stream);
    return s;
  }
  ci::Deadline deadline(options.comm.timeout);
  auto world = std::make_unique<NcclCommunicator>(comm, *device, stream, rank, size,
                                                  std::move(options.comm));
  NMESH_RETURN_IF_ERROR(world->WaitReady(kInit, deadline));
  return std::unique_ptr<Communicator>(std::move(world));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(Communicator& bootstrap,
                                                          NcclWorldOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.comm.timeout, "CommOptions.timeout"));
  if (bootstrap.memory_kind() != MemoryKind::kHost) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::CreateWorld needs a host-memory bootstrap communicator; axis '%s' uses the %s "
        "backend",
        bootstrap.options().name, bootstrap.backend()));
  }
  const int rank = bootstrap.rank();
  WorldMeeting meeting{
      .rank = rank,
      .size = bootstrap.size(),
      .topology = [&]() -> absl::StatusOr<Topology> {
        NMESH_ASSIGN_OR_RETURN(std::string host, LocalHostName());
        return ExchangeHostNames(bootstrap, host);
      },
      .agree = [&](const absl::Status& local,
                   std::string_view) { return AgreeOnStatus(bootstrap, local); },
      .share = [&](const BootstrapPlan& boot, std::vector<ncclUniqueId>& ids) -> absl::Status {
        // Gathered to rank 0 in root order, then broadcast.
        for (size_t r = 1; r < boot.roots.size(); ++r) {
          if (rank == boot.roots[r]) {
            NMESH_RETURN_IF_ERROR(
                bootstrap.Send(&ids[r], sizeof(ncclUniqueId), DataType::kUint8, 0));
          } else if (rank == 0) {
            NMESH_RETURN_IF_ERROR(
                bootstrap.Recv(&ids[r], sizeof(ncclUniqueId), DataType::kUint8, boot.roots[r]));
          }
        }
        return bootstrap.Broadcast(ids.data(), ids.size() * sizeof(ncclUniqueId), DataType::kUint8,
                                   0);
      }};
  return CreateWorldWith(meeting, std::move(options));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(Store& store, int rank, int size,
                                                          NcclWorldOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.comm.timeout, "CommOptions.timeout"));
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("nccl::CreateWorld: rank %d of %d is not a rank of the world", rank, size));
  }
  const absl::Time deadline = absl::Now() + options.comm.timeout.value_or(kStoreBootstrapTimeout);
  const std::string name = absl::StrCat("nccl/", options.comm.name);
  WorldMeeting meeting{
      .rank = rank,
      .size = size,
      .topology = [&]() -> absl::StatusOr<Topology> {
        NMESH_ASSIGN_OR_RETURN(std::string host, LocalHostName());
        if (host.size() > kMaxHostNameBytes) host.resize(kMaxHostNameBytes);
        NMESH_ASSIGN_OR_RETURN(
            std::vector<std::string> hosts,
            StoreAllGather(store, absl::StrCat(name, "/hosts"), rank, size, host, deadline));
        return TopologyFromHostNames(std::move(hosts), rank);
      },
      .agree =
          [&](const absl::Status& local, std::string_view step) {
            return StoreAgreeOnStatus(store, absl::StrCat(name, "/", std::string(step)), rank, size,
                                      local, deadline);
          },
      .share = [&](const BootstrapPlan& boot, std::vector<ncclUniqueId>& ids) -> absl::Status {
        const auto root = std::find(boot.roots.begin(), boot.roots.end(), rank);
        std::string_view mine;
        if (root != boot.roots.end()) {
          mine = std::string_view(
              reinterpret_cast<const char*>(&ids[static_cast<size_t>(root - boot.roots.begin())]),
              sizeof(ncclUniqueId));
        }
        NMESH_ASSIGN_OR_RETURN(
            std::vector<std::string> shared,
            ShareUniqueIds(store, name, boot, rank, mine, sizeof(ncclUniqueId), deadline));
        for (size_t i = 0; i < shared.size(); ++i) {
          std::memcpy(&ids[i], shared[i].data(), sizeof(ncclUniqueId));
        }
        return absl::OkStatus();
      }};
  return CreateWorldWith(meeting, std::move(options));
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

absl::StatusOr<cudaEvent_t> EventOf(const Work& work) { return NcclCommunicator::EventOf(work); }

absl::Status StreamWaitWork(const Work& work, cudaStream_t stream) {
  NMESH_ASSIGN_OR_RETURN(cudaEvent_t event, EventOf(work));
  return CudaStatus(Lib().cudaStreamWaitEvent(stream, event, 0), "cudaStreamWaitEvent", -1);
}

absl::StatusOr<std::unique_ptr<Communicator>> AdoptComm(ncclComm_t comm, int device,
                                                        Ownership ownership, CommOptions options) {
  if (comm == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::AdoptComm: the NCCL communicator for axis '%s' is null", options.name));
  }
  NMESH_RETURN_IF_ERROR(LoadRuntime());
  int rank = 0, size = 0, comm_device = -1;
  NMESH_RETURN_IF_ERROR(
      NcclStatus(Lib().ncclCommUserRank(comm, &rank), "ncclCommUserRank", -1, comm));
  NMESH_RETURN_IF_ERROR(NcclStatus(Lib().ncclCommCount(comm, &size), "ncclCommCount", rank, comm));
  NMESH_RETURN_IF_ERROR(
      NcclStatus(Lib().ncclCommCuDevice(comm, &comm_device), "ncclCommCuDevice", rank, comm));
  if (comm_device != device) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::AdoptComm: the NCCL communicator for axis '%s' uses CUDA device %d, not %d",
        options.name, comm_device, device));
  }
  NMESH_RETURN_IF_ERROR(CudaStatus(Lib().cudaSetDevice(device), "cudaSetDevice", rank));
  cudaStream_t stream = nullptr;
  NMESH_RETURN_IF_ERROR(CudaStatus(Lib().cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                                   "cudaStreamCreateWithFlags", rank));
  auto adopted =
      std::make_unique<NcclCommunicator>(comm, device, stream, rank, size, std::move(options));
  adopted->owned_ = ownership == Ownership::kOwned;
  return std::unique_ptr<Communicator>(std::move(adopted));
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

bool HasCommRevoke() {
  const absl::StatusOr<const Library*> lib = OpenLibrary();
  return lib.ok() && (*lib)->ncclCommRevoke != nullptr;
}

bool HasCommShrink() {
  const absl::StatusOr<const Library*> lib = OpenLibrary();
  return lib.ok() && (*lib)->ncclCommShrink != nullptr;
}

absl::Status RevokeTogether(absl::Span<Communicator* const> family, std::string_view reason) {
  return NcclCommunicator::StopTogether(family, std::string(reason));
}

absl::StatusOr<std::unique_ptr<Communicator>> ShrinkComm(Communicator& comm,
                                                         absl::Span<const int> exclude,
                                                         CommOptions options) {
  auto* nccl_comm = dynamic_cast<NcclCommunicator*>(&comm);
  if (nccl_comm == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::ShrinkComm needs an NCCL communicator; axis '%s' uses the %s backend",
        comm.options().name, comm.backend()));
  }
  const std::string context = ci::OpContext(comm, kShrink);
  std::vector<int> sorted(exclude.begin(), exclude.end());
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    const int r = sorted[i];
    if (r < 0 || r >= comm.size()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: excluded rank %d is outside the communicator's %d ranks", context, r, comm.size()));
    }
    if (i > 0 && sorted[i - 1] == r) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: excluded rank %d is listed twice", context, r));
    }
    if (r == comm.rank()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: rank %d is excluded, so it must not call ShrinkComm", context, r));
    }
  }
  NMESH_RETURN_IF_ERROR(LoadRuntime());
  if (!HasCommShrink()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s needs ncclCommShrink (NCCL 2.27 or later); the loaded NCCL is %s",
                        context, LinkedNcclVersion()));
  }
  return nccl_comm->Shrink(std::move(sorted), std::move(options));
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
