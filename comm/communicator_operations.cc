// Communicator: each operation's public entry points (blocking and asynchronous) and the default
// of its backend hook.
#include "absl/strings/str_format.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/checks.h"

namespace nmesh::comm {

namespace ci = internal;

// The entry points: each builds its operation's record once (OpArgs), then the blocking (Run)
// or the asynchronous path (RunAsync) takes it.

absl::Status Communicator::AllReduce(const void* send, void* recv, size_t count, DataType type,
                                     ReduceOp op) {
  return Run(OpArgs::AllReduce(send, recv, count, type, op));
}
absl::Status Communicator::AllGather(const void* send, void* recv, size_t send_count,
                                     DataType type) {
  return Run(OpArgs::AllGather(send, recv, send_count, type));
}
absl::Status Communicator::ReduceScatter(const void* send, void* recv, size_t recv_count,
                                         DataType type, ReduceOp op) {
  return Run(OpArgs::ReduceScatter(send, recv, recv_count, type, op));
}
absl::Status Communicator::Broadcast(void* buffer, size_t count, DataType type, int root) {
  return Run(OpArgs::Broadcast(buffer, count, type, root));
}
absl::Status Communicator::AllToAll(const void* send, void* recv, size_t count, DataType type) {
  return Run(OpArgs::AllToAll(send, recv, count, type));
}
absl::Status Communicator::Send(const void* buffer, size_t count, DataType type, int peer) {
  return Run(OpArgs::Send(buffer, count, type, peer));
}
absl::Status Communicator::Recv(void* buffer, size_t count, DataType type, int peer) {
  return Run(OpArgs::Recv(buffer, count, type, peer));
}
absl::Status Communicator::Barrier() { return Run(OpArgs::Barrier()); }
absl::Status Communicator::AllToAllV(const void* send, absl::Span<const size_t> send_counts,
                                     absl::Span<const size_t> send_displs, void* recv,
                                     absl::Span<const size_t> recv_counts,
                                     absl::Span<const size_t> recv_displs, DataType type) {
  return Run(
      OpArgs::AllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, type));
}
absl::Status Communicator::Gather(const void* send, void* recv, size_t send_count, DataType type,
                                  int root) {
  return Run(OpArgs::Gather(send, recv, send_count, type, root));
}
absl::Status Communicator::Scatter(const void* send, void* recv, size_t recv_count, DataType type,
                                   int root) {
  return Run(OpArgs::Scatter(send, recv, recv_count, type, root));
}
absl::Status Communicator::Reduce(const void* send, void* recv, size_t count, DataType type,
                                  ReduceOp op, int root) {
  return Run(OpArgs::Reduce(send, recv, count, type, op, root));
}
absl::Status Communicator::SendRecv(const void* send, size_t send_count, int dest, void* recv,
                                    size_t recv_count, int source, DataType type) {
  return Run(OpArgs::SendRecv(send, send_count, dest, recv, recv_count, source, type));
}

absl::StatusOr<Work> Communicator::AllReduceAsync(const void* send, void* recv, size_t count,
                                                  DataType type, ReduceOp op, AsyncOptions async) {
  return RunAsync(OpArgs::AllReduce(send, recv, count, type, op), async);
}
absl::StatusOr<Work> Communicator::AllGatherAsync(const void* send, void* recv, size_t send_count,
                                                  DataType type, AsyncOptions async) {
  return RunAsync(OpArgs::AllGather(send, recv, send_count, type), async);
}
absl::StatusOr<Work> Communicator::ReduceScatterAsync(const void* send, void* recv,
                                                      size_t recv_count, DataType type, ReduceOp op,
                                                      AsyncOptions async) {
  return RunAsync(OpArgs::ReduceScatter(send, recv, recv_count, type, op), async);
}
absl::StatusOr<Work> Communicator::BroadcastAsync(void* buffer, size_t count, DataType type,
                                                  int root, AsyncOptions async) {
  return RunAsync(OpArgs::Broadcast(buffer, count, type, root), async);
}
absl::StatusOr<Work> Communicator::AllToAllAsync(const void* send, void* recv, size_t count,
                                                 DataType type, AsyncOptions async) {
  return RunAsync(OpArgs::AllToAll(send, recv, count, type), async);
}
absl::StatusOr<Work> Communicator::SendAsync(const void* buffer, size_t count, DataType type,
                                             int peer, AsyncOptions async) {
  return RunAsync(OpArgs::Send(buffer, count, type, peer), async);
}
absl::StatusOr<Work> Communicator::RecvAsync(void* buffer, size_t count, DataType type, int peer,
                                             AsyncOptions async) {
  return RunAsync(OpArgs::Recv(buffer, count, type, peer), async);
}
absl::StatusOr<Work> Communicator::BarrierAsync(AsyncOptions async) {
  return RunAsync(OpArgs::Barrier(), async);
}
absl::StatusOr<Work> Communicator::AllToAllVAsync(const void* send,
                                                  absl::Span<const size_t> send_counts,
                                                  absl::Span<const size_t> send_displs, void* recv,
                                                  absl::Span<const size_t> recv_counts,
                                                  absl::Span<const size_t> recv_displs,
                                                  DataType type, AsyncOptions async) {
  return RunAsync(
      OpArgs::AllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, type),
      async);
}
absl::StatusOr<Work> Communicator::GatherAsync(const void* send, void* recv, size_t send_count,
                                               DataType type, int root, AsyncOptions async) {
  return RunAsync(OpArgs::Gather(send, recv, send_count, type, root), async);
}
absl::StatusOr<Work> Communicator::ScatterAsync(const void* send, void* recv, size_t recv_count,
                                                DataType type, int root, AsyncOptions async) {
  return RunAsync(OpArgs::Scatter(send, recv, recv_count, type, root), async);
}
absl::StatusOr<Work> Communicator::ReduceAsync(const void* send, void* recv, size_t count,
                                               DataType type, ReduceOp op, int root,
                                               AsyncOptions async) {
  return RunAsync(OpArgs::Reduce(send, recv, count, type, op, root), async);
}
absl::StatusOr<Work> Communicator::SendRecvAsync(const void* send, size_t send_count, int dest,
                                                 void* recv, size_t recv_count, int source,
                                                 DataType type, AsyncOptions async) {
  return RunAsync(OpArgs::SendRecv(send, send_count, dest, recv, recv_count, source, type), async);
}

namespace {
absl::Status NotProvided(const Communicator& comm, OpKind op) {
  return absl::UnimplementedError(absl::StrFormat("%s: the %s backend does not provide it",
                                                  ci::OpContext(comm, OpKindName(op)),
                                                  comm.backend()));
}
}  // namespace

absl::Status Communicator::DoAllReduce(const void*, void*, size_t, DataType, ReduceOp) {
  return NotProvided(*this, OpKind::kAllReduce);
}
absl::Status Communicator::DoAllGather(const void*, void*, size_t, DataType) {
  return NotProvided(*this, OpKind::kAllGather);
}
absl::Status Communicator::DoReduceScatter(const void*, void*, size_t, DataType, ReduceOp) {
  return NotProvided(*this, OpKind::kReduceScatter);
}
absl::Status Communicator::DoBroadcast(void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kBroadcast);
}
absl::Status Communicator::DoAllToAll(const void*, void*, size_t, DataType) {
  return NotProvided(*this, OpKind::kAllToAll);
}
absl::Status Communicator::DoSend(const void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kSend);
}
absl::Status Communicator::DoRecv(void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kRecv);
}
absl::Status Communicator::DoBarrier() { return NotProvided(*this, OpKind::kBarrier); }
absl::Status Communicator::DoAllToAllV(const void*, absl::Span<const size_t>,
                                       absl::Span<const size_t>, void*, absl::Span<const size_t>,
                                       absl::Span<const size_t>, DataType) {
  return NotProvided(*this, OpKind::kAllToAllV);
}
absl::Status Communicator::DoGather(const void*, void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kGather);
}
absl::Status Communicator::DoScatter(const void*, void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kScatter);
}
absl::Status Communicator::DoReduce(const void*, void*, size_t, DataType, ReduceOp, int) {
  return NotProvided(*this, OpKind::kReduce);
}
absl::Status Communicator::DoSendRecv(const void*, size_t, int, void*, size_t, int, DataType) {
  return NotProvided(*this, OpKind::kSendRecv);
}

}  // namespace nmesh::comm
