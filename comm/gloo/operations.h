// The operations of the gloo backend on a gloo::Context, as gloo calls (internal to comm/gloo).
// Each runs one checked operation (comm/op.h; the shared checks have run, counts are non-zero)
// to completion and throws gloo's exceptions (gloo::IoException on a timeout or a lost
// connection); the communicator turns them into statuses.
//
// What gloo lacks is built from what it has:
//   reduce_scatter  all_reduce of a copy of the whole send buffer, then this rank's block copied
//                   out (gloo 0.5's reduce-scatter is an old-style template without custom ops).
//   all_to_all_v    point-to-point transfers on unbound buffers straight from the send extents
//                   to the receive extents (gloo's alltoallv packs blocks contiguously and has no
//                   displacements); the block to itself is a memcpy.
//   kAvg            the sum, then divided by size() on every rank that receives a result.
//   gather/scatter in place on the root, reduce off the root: a staging copy of one block (gloo
//                   would memcpy a block onto itself) or a scratch output (gloo's ring reduce
//                   writes an output on every rank).
#ifndef NMESH_COMM_GLOO_OPERATIONS_H_
#define NMESH_COMM_GLOO_OPERATIONS_H_

#include <chrono>
#include <cstdint>
#include <memory>

#include "gloo/context.h"
#include "nmesh/comm/op.h"

namespace nmesh::comm::gloo {

// The slot of point-to-point messages (send, recv, sendrecv), apart from every collective's, so
// that point-to-point operations may be in flight while a collective runs.
uint64_t PointToPointSlot();
// The slot of the address exchange of a split by member lists.
uint64_t SplitSlot();

// Runs `args` (a collective: not split, send, recv or sendrecv) on `context`, every wait bounded
// by `timeout`.
void RunCollective(const std::shared_ptr<::gloo::Context>& context, const OpArgs& args,
                   std::chrono::milliseconds timeout);

}  // namespace nmesh::comm::gloo

#endif  // NMESH_COMM_GLOO_OPERATIONS_H_
