// The trivial communicator of one rank, used for groups of size 1 (a mesh axis of size 1, or any
// group with a single member). Every collective is a local copy; nothing is communicated.
//
//   std::unique_ptr<Communicator> tp = comm::NewSelfCommunicator({.name = "tp"});
//   std::vector<float> grad(1024, 1.0f);
//   NMESH_RETURN_IF_ERROR(tp->AllReduce<float>(grad, absl::MakeSpan(grad), ReduceOp::kSum));
//
// Memory. By default buffers are host memory and copies use std::memmove. A backend whose buffers
// live elsewhere (device memory) passes its own MemoryKind and copy function, and, for
// AllocateBuffer/CopyToHost/CopyFromHost, its allocation and host-copy functions (SelfMemory);
// without them those three are Unimplemented on non-host memory. NewSelf gives a self
// communicator with the same memory.
//
// Semantics, with rank() == 0 and size() == 1: AllReduce, AllGather, ReduceScatter and AllToAll
// copy send to recv (every reduction of one value is that value, avg included); Broadcast needs
// root 0 and changes nothing; Barrier returns at once. Gather, Scatter and Reduce (root 0) copy
// send to recv; AllToAllV and SendRecv copy the one block, and a block whose send and receive
// counts differ is InvalidArgument. Send to peer 0 stores a copy of the message
// and Recv from peer 0 takes the oldest stored one, so a rank can message itself in either order
// that ends with the Recv; a Recv with no stored message is FailedPrecondition (nothing could
// ever send one), a Recv whose count or type differs from the stored message is InvalidArgument
// and drops that message; on a memory kind other than host, Send is Unimplemented (the message
// queue lives on the host). Split with a color gives a new self communicator with the new options,
// without a color gives nullptr. Argument checks and the aborted state behave as in every backend
// (comm/communicator.h). The timeout in CommOptions is kept but never reached: nothing waits.
//
// Thread safety: as Communicator (one thread at a time; Abort from any thread).
#ifndef NMESH_COMM_SELF_H_
#define NMESH_COMM_SELF_H_

#include <cstddef>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm {

// Copies `bytes` bytes from src to dst in the communicator's memory kind. dst and src never
// overlap partially (they are equal or disjoint), and equal pointers are never passed.
using SelfCopyFn = std::function<absl::Status(void* dst, const void* src, size_t bytes)>;

// The memory a self communicator works in. `copy` is required; the others are optional and serve
// Communicator::AllocateBuffer, CopyToHost and CopyFromHost (which are Unimplemented without them
// on non-host memory).
struct SelfMemory {
  MemoryKind kind = MemoryKind::kHost;
  SelfCopyFn copy;
  std::function<absl::StatusOr<Buffer>(size_t bytes)> allocate = nullptr;
  SelfCopyFn copy_to_host = nullptr;    // dst is host memory
  SelfCopyFn copy_from_host = nullptr;  // src is host memory
};

// A host-memory self communicator (backend() == "self"). Never fails.
std::unique_ptr<Communicator> NewSelfCommunicator(CommOptions options);

// A self communicator over `kind` memory that copies with `copy` (which must not be empty).
std::unique_ptr<Communicator> NewSelfCommunicator(CommOptions options, MemoryKind kind,
                                                  SelfCopyFn copy);

// A self communicator over `memory` (memory.copy must not be empty).
std::unique_ptr<Communicator> NewSelfCommunicator(CommOptions options, SelfMemory memory);

}  // namespace nmesh::comm

#endif  // NMESH_COMM_SELF_H_
