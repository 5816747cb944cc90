// Collectives on host memory over any communicator: when the communicator's buffers live
// elsewhere (device memory on NCCL), the data is staged through Communicator::AllocateBuffer and
// CopyFromHost/CopyToHost; on host-memory backends the call goes straight through. For small
// control messages (agreement checks, verification), not for bulk data.
//
//   std::vector<uint64_t> value = {fingerprint, ~fingerprint};
//   NMESH_RETURN_IF_ERROR(HostAllReduce<uint64_t>(world, value, absl::MakeSpan(value),
//                                                 ReduceOp::kMin));
//
// Each function is collective exactly like the Communicator method it wraps, and fails like it
// (plus the staging's allocation and copy errors). Thread safety: as the communicator.
#ifndef NMESH_COMM_HOST_COLLECTIVES_H_
#define NMESH_COMM_HOST_COLLECTIVES_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm {

// AllReduce of `count` elements from host `send` into host `recv` (which may be equal).
absl::Status HostAllReduce(Communicator& comm, const void* send, void* recv, size_t count,
                           DataType type, ReduceOp op);
// AllGather of `send_count` elements per rank from host `send` into host `recv`
// (size() * send_count elements). `send` must not overlap `recv`.
absl::Status HostAllGather(Communicator& comm, const void* send, void* recv, size_t send_count,
                           DataType type);

// Gather of a different number of bytes from every rank to `root`: returns, on `root`, every
// rank's `send` in rank order (its own included); on the other ranks an empty vector. Collective
// over `comm`: every rank calls it with the same `root`. The sizes travel first (a Gather of one
// uint64 per rank), then each non-empty message (Send to `root`, received there in rank order).
// InvalidArgument (on every rank) for a root outside [0, size()); otherwise fails like Gather,
// Send and Recv.
absl::StatusOr<std::vector<std::string>> HostGatherV(Communicator& comm, std::string_view send,
                                                     int root);

// Collective: every rank learns whether any rank's `local` status failed, so that all fail
// together instead of some waiting in a collective the others never reach. Returns `local` when it
// failed; otherwise the first failure of another rank (lowest rank first), with its code and
// message (cut to 250 bytes) and " [reported by rank r of n]"; otherwise OK. Fails like an
// AllGather of 256 bytes per rank.
absl::Status AgreeOnStatus(Communicator& comm, const absl::Status& local);

template <typename T>
absl::Status HostAllReduce(Communicator& comm, absl::Span<const T> send, absl::Span<T> recv,
                           ReduceOp op) {
  if (send.size() != recv.size()) {
    return absl::InvalidArgumentError("HostAllReduce: send and receive spans differ in size");
  }
  return HostAllReduce(comm, send.data(), recv.data(), send.size(), DataTypeOf<T>::value, op);
}

template <typename T>
absl::Status HostAllGather(Communicator& comm, absl::Span<const T> send, absl::Span<T> recv) {
  if (send.size() * static_cast<size_t>(comm.size()) != recv.size()) {
    return absl::InvalidArgumentError(
        "HostAllGather: the receive span must hold size() times the send span");
  }
  return HostAllGather(comm, send.data(), recv.data(), send.size(), DataTypeOf<T>::value);
}

}  // namespace nmesh::comm

#endif  // NMESH_COMM_HOST_COLLECTIVES_H_
