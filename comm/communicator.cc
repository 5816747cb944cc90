// The Communicator base class (comm/communicator.h). Its members are defined by concern:
//   communicator.cc                  construction, the guards, the blocking and asynchronous paths
//                                    (Run, RunAsync), argument messages, host buffers, NewSelf
//   communicator_operations.cc       each operation's public entry points and default hook
//   communicator_check_arguments.cc  the argument check across ranks (CheckAcrossRanks)
//   communicator_split.cc            Split and SplitAgreed
//   communicator_watch.cc            timeouts, the flight recorder, the watchdog's registration
//   communicator_abort.cc            revocation, abort families, AbortTogether and RevokeAll
#include "nmesh/comm/communicator.h"

#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/watch/flight_recorder.h"

namespace nmesh::comm {

// The public operations: the guards every backend shares, then the backend's hook.

namespace ci = internal;

Communicator::Communicator() : revocation_(std::make_shared<ci::Revocation>()) {}

absl::Status Communicator::CheckUsable(std::string_view) const { return absl::OkStatus(); }

bool Communicator::Release(std::string_view) { return false; }

absl::Status Communicator::Guard(const OpArgs& a, bool* empty) const {
  *empty = false;
  const std::string_view name = OpKindName(a.op);
  if (!IsOpKind(a.op) || a.op == OpKind::kSplit) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: Run and RunAsync take the collectives and point-to-point operations; split is "
        "Communicator::Split (rank %d of %d)",
        ci::OpContext(*this, name), rank(), size()));
  }
  if (absl::Status usable = CheckUsable(name); !usable.ok()) return Revoked(name, usable);
  const OpTraits& traits = Traits(a.op);
  if (!traits.moves_data) return absl::OkStatus();
  NMESH_RETURN_IF_ERROR(ci::CheckDataType(*this, name, a.type));
  if (traits.reduces) NMESH_RETURN_IF_ERROR(ci::CheckReduceOp(*this, name, a.reduce));
  switch (a.op) {
    case OpKind::kAllReduce:
      NMESH_RETURN_IF_ERROR(ci::CheckAllReduce(*this, a.send, a.recv, a.count));
      break;
    case OpKind::kAllGather:
      NMESH_RETURN_IF_ERROR(ci::CheckAllGather(*this, a.send, a.recv, a.count));
      break;
    case OpKind::kReduceScatter:
      NMESH_RETURN_IF_ERROR(ci::CheckReduceScatter(*this, a.send, a.recv, a.count));
      break;
    case OpKind::kBroadcast:
      NMESH_RETURN_IF_ERROR(ci::CheckBroadcast(*this, a.recv, a.count, a.root));
      break;
    case OpKind::kAllToAll:
      NMESH_RETURN_IF_ERROR(ci::CheckAllToAll(*this, a.send, a.recv, a.count, a.type));
      break;
    case OpKind::kSend:
      return ci::CheckPointToPoint(*this, name, a.send, a.count, a.root);
    case OpKind::kRecv:
      return ci::CheckPointToPoint(*this, name, a.recv, a.count, a.root);
    case OpKind::kAllToAllV: {
      // Other ranks may exchange with each other even when this one moves nothing: an
      // all_to_all_v always reaches the backend.
      size_t total_send = 0, total_recv = 0;
      return ci::CheckAllToAllV(*this, a.send, a.send_counts, a.send_displs, a.recv, a.recv_counts,
                                a.recv_displs, a.type, &total_send, &total_recv);
    }
    case OpKind::kGather:
      NMESH_RETURN_IF_ERROR(ci::CheckRooted(*this, a.op, a.send, a.recv, a.count, a.type, a.root));
      break;
    case OpKind::kScatter:
      NMESH_RETURN_IF_ERROR(ci::CheckRooted(*this, a.op, a.recv, a.send, a.count, a.type, a.root));
      break;
    case OpKind::kReduce:
      NMESH_RETURN_IF_ERROR(ci::CheckReduce(*this, a.send, a.recv, a.count, a.type, a.root));
      break;
    case OpKind::kSendRecv:
      return ci::CheckSendRecv(*this, a.send, a.count, a.root, a.recv, a.recv_count, a.source,
                               a.type);
    case OpKind::kSplit:
    case OpKind::kBarrier:
      break;
  }
  *empty = a.count == 0;  // the collectives: zero counts are no-ops
  return absl::OkStatus();
}

absl::Status Communicator::DoRun(const OpArgs& a) {
  switch (a.op) {
    case OpKind::kAllReduce:
      return DoAllReduce(a.send, a.recv, a.count, a.type, a.reduce);
    case OpKind::kAllGather:
      return DoAllGather(a.send, a.recv, a.count, a.type);
    case OpKind::kReduceScatter:
      return DoReduceScatter(a.send, a.recv, a.count, a.type, a.reduce);
    case OpKind::kBroadcast:
      return DoBroadcast(a.recv, a.count, a.type, a.root);
    case OpKind::kAllToAll:
      return DoAllToAll(a.send, a.recv, a.count, a.type);
    case OpKind::kSend:
      return DoSend(a.send, a.count, a.type, a.root);
    case OpKind::kRecv:
      return DoRecv(a.recv, a.count, a.type, a.root);
    case OpKind::kBarrier:
      return DoBarrier();
    case OpKind::kAllToAllV:
      return DoAllToAllV(a.send, a.send_counts, a.send_displs, a.recv, a.recv_counts, a.recv_displs,
                         a.type);
    case OpKind::kGather:
      return DoGather(a.send, a.recv, a.count, a.type, a.root);
    case OpKind::kScatter:
      return DoScatter(a.send, a.recv, a.count, a.type, a.root);
    case OpKind::kReduce:
      return DoReduce(a.send, a.recv, a.count, a.type, a.reduce, a.root);
    case OpKind::kSendRecv:
      return DoSendRecv(a.send, a.count, a.root, a.recv, a.recv_count, a.source, a.type);
    case OpKind::kSplit:
      break;
  }
  return absl::InternalError(
      absl::StrFormat("operation '%s' has no blocking hook", OpKindName(a.op)));
}

absl::StatusOr<Work> Communicator::DoAsync(const OpArgs& args, const AsyncOptions&) {
  return ci::CompletedWork(*this, OpKindName(args.op), DoRun(args));
}

absl::StatusOr<Work> Communicator::RunAsync(const OpArgs& args, AsyncOptions async) {
  bool empty = false;
  NMESH_RETURN_IF_ERROR(Guard(args, &empty));
  Batch::State* batch = ci::CurrentBatch();
  if (batch == nullptr) NMESH_RETURN_IF_ERROR(CheckAcrossRanks(args));
  if (empty) return ci::CompletedWork(*this, OpKindName(args.op), absl::OkStatus());
  if (batch != nullptr) {
    if (batch->backend.empty()) batch->backend = std::string(backend());
    if (batch->backend != backend()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the open batch holds %s operations; a batch takes one backend, this is %s (rank "
          "%d of %d)",
          ci::OpContext(*this, OpKindName(args.op)), batch->backend, backend(), rank(), size()));
    }
  }
  const uint64_t seq = BeginRecord(args, /*async=*/true);
  absl::StatusOr<Work> issued = DoAsync(args, async);
  if (!issued.ok()) return EndRecord(seq, Revoked(OpKindName(args.op), issued.status()));
  Work work = *std::move(issued);
  if (work.impl() != nullptr) work.impl()->SetRecord(recorder_, seq);
  if (batch != nullptr && work.impl() != nullptr) {
    // Shared with the handle (which has a pointer to it) and the batch's list.
    std::shared_ptr<Work::Impl> impl = work.shared_impl();
    impl->SetBatch(batch->open);
    batch->works.push_back(std::move(impl));
  }
  return work;
}

absl::Status Communicator::Run(const OpArgs& args) {
  const std::string_view name = OpKindName(args.op);
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, name));
  bool empty = false;
  NMESH_RETURN_IF_ERROR(Guard(args, &empty));
  NMESH_RETURN_IF_ERROR(CheckAcrossRanks(args));
  if (empty) return absl::OkStatus();
  const uint64_t seq = BeginRecord(args);
  absl::Status status = DoRun(args);
  if (!status.ok()) status = Revoked(name, std::move(status));
  return EndRecord(seq, std::move(status));
}

absl::Status Communicator::CheckExtents(OpKind op, std::string_view which, size_t elements,
                                        absl::Span<const size_t> counts,
                                        absl::Span<const size_t> displs) const {
  const size_t n = static_cast<size_t>(size());
  if (counts.size() != n || displs.size() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s on axis '%s': %s counts and displacements have %d and %d entries, expected %d",
        OpKindName(op), options().name, which, counts.size(), displs.size(), n));
  }
  for (size_t j = 0; j < n; ++j) {
    if (counts[j] != 0 && (displs[j] > elements || counts[j] > elements - displs[j])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s on axis '%s': %s block %d (displacement %d, count %d) ends past the %d elements of "
          "the %s buffer",
          OpKindName(op), options().name, which, j, displs[j], counts[j], elements, which));
    }
  }
  return absl::OkStatus();
}

absl::Status Communicator::SizeMismatch(OpKind op, std::string_view which, size_t expected,
                                        size_t got) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s on axis '%s': %s buffer holds %d elements, expected %d", OpKindName(op),
                      options().name, which, got, expected));
}

absl::Status Communicator::NotMultipleOfSize(OpKind op, size_t got) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s on axis '%s': buffer holds %d elements, not a multiple of the %d ranks",
                      OpKindName(op), options().name, got, size()));
}

absl::StatusOr<Buffer> Communicator::AllocateBuffer(size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kAllocate));
  if (bytes == 0) return Buffer();
  void* data = ::operator new(bytes, std::nothrow);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: cannot allocate %d bytes", internal::OpContext(*this, "allocate"), bytes));
  }
  return Buffer(data, bytes, [](void* p) { ::operator delete(p); });
}

absl::Status Communicator::CopyToHost(void* host, const void* buffer, size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kCopyToHost));
  NMESH_RETURN_IF_ERROR(internal::CheckCopy(*this, internal::kCopyToHost, host, buffer, bytes));
  if (bytes != 0 && host != buffer) std::memmove(host, buffer, bytes);
  return absl::OkStatus();
}

absl::Status Communicator::CopyFromHost(void* buffer, const void* host, size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kCopyFromHost));
  NMESH_RETURN_IF_ERROR(internal::CheckCopy(*this, internal::kCopyFromHost, buffer, host, bytes));
  if (bytes != 0 && host != buffer) std::memmove(buffer, host, bytes);
  return absl::OkStatus();
}

std::unique_ptr<Communicator> Communicator::NewSelf(CommOptions options) const {
  NMESH_CHECK(memory_kind() == MemoryKind::kHost)
      << "the " << backend() << " backend must override Communicator::NewSelf";
  return NewSelfCommunicator(std::move(options));
}

}  // namespace nmesh::comm
