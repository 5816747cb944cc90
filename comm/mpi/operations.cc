#include "nmesh/comm/mpi/operations.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/comm/internal/host_math.h"
#include "nmesh/comm/mpi/quarantine.h"
#include "nmesh/comm/mpi/reduce_ops.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi {
namespace {

bool Overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto x = reinterpret_cast<uintptr_t>(a);
  const auto y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

}  // namespace

// all_to_all_v's four count arrays as the ints MPI takes, in memory held by `scratch`.
const int* IntCountsOf(const MpiGroup& g, const OpArgs& a, Scratch& scratch);

// Returns `src`, or a staged copy of it when it overlaps the output (MPI forbids aliasing other
// than MPI_IN_PLACE).
const void* StageIfOverlapping(const void* src, size_t src_bytes, const void* dst, size_t dst_bytes,
                               Scratch& scratch) {
  if (!Overlaps(src, src_bytes, dst, dst_bytes)) return src;
  scratch = std::make_shared<std::vector<std::byte>>(src_bytes);
  std::memcpy(scratch->data(), src, src_bytes);
  return scratch->data();
}

// Whether `a` ends with kAvg's division on this rank (MPI has no average).
bool Averages(const MpiGroup& g, const OpArgs& a) {
  return Traits(a.op).reduces && a.reduce == ReduceOp::kAvg &&
         (a.op != OpKind::kReduce || g.rank == a.root);
}

// The blocking MPI call of `a`, on the caller's memory; sets *call to its name. Exact in-place
// layouts become MPI_IN_PLACE; other overlaps of input and output are staged.
int BlockingCall(const MpiGroup& g, const OpArgs& a, const char** call) {
  const MPI_Datatype dt = Traits(a.op).moves_data ? MpiDatatype(a.type) : MPI_BYTE;
  const MPI_Op mop = Traits(a.op).reduces ? MpiOp(a.type, a.reduce) : MPI_OP_NULL;
  const int n = static_cast<int>(a.count);
  const size_t bytes = Traits(a.op).moves_data ? a.count * DataTypeSize(a.type) : 0;
  const bool is_root = g.rank == a.root;
  Scratch scratch;
  switch (a.op) {
    case OpKind::kAllReduce: {
      *call = "MPI_Allreduce";
      const void* in = a.send == a.recv ? MPI_IN_PLACE
                                        : StageIfOverlapping(a.send, bytes, a.recv, bytes, scratch);
      return MPI_Allreduce(in, a.recv, n, dt, mop, g.comm);
    }
    case OpKind::kAllGather: {
      *call = "MPI_Allgather";
      const void* slot = static_cast<const std::byte*>(a.recv) + bytes * g.rank;
      const void* in = a.send == slot
                           ? MPI_IN_PLACE
                           : StageIfOverlapping(a.send, bytes, a.recv, bytes * g.size, scratch);
      return MPI_Allgather(in, n, dt, a.recv, n, dt, g.comm);
    }
    case OpKind::kReduceScatter: {
      // MPI's in-place reduce-scatter reads from and writes to the start of the receive
      // buffer, which is not nmesh's layout (recv == send + rank * count): stage any
      // overlapping input.
      *call = "MPI_Reduce_scatter_block";
      const void* in = StageIfOverlapping(a.send, bytes * g.size, a.recv, bytes, scratch);
      return MPI_Reduce_scatter_block(in, a.recv, n, dt, mop, g.comm);
    }
    case OpKind::kBroadcast:
      *call = "MPI_Bcast";
      return MPI_Bcast(a.recv, n, dt, a.root, g.comm);
    case OpKind::kAllToAll:
      *call = "MPI_Alltoall";
      return MPI_Alltoall(a.send, n, dt, a.recv, n, dt, g.comm);
    case OpKind::kSend:
      *call = "MPI_Send";
      return MPI_Send(a.send, n, dt, a.root, kTag, g.comm);
    case OpKind::kRecv:
      *call = "MPI_Recv";
      return MPI_Recv(a.recv, n, dt, a.root, kTag, g.comm, MPI_STATUS_IGNORE);
    case OpKind::kBarrier:
      *call = "MPI_Barrier";
      return MPI_Barrier(g.comm);
    case OpKind::kAllToAllV: {
      *call = "MPI_Alltoallv";
      const int* ints = IntCountsOf(g, a, scratch);
      const size_t un = static_cast<size_t>(g.size);
      return MPI_Alltoallv(a.send, ints, ints + un, dt, a.recv, ints + 2 * un, ints + 3 * un, dt,
                           g.comm);
    }
    case OpKind::kGather: {
      *call = "MPI_Gather";
      const bool in_place =
          is_root && a.send == static_cast<const std::byte*>(a.recv) + bytes * g.rank;
      return MPI_Gather(in_place ? MPI_IN_PLACE : a.send, n, dt, a.recv, n, dt, a.root, g.comm);
    }
    case OpKind::kScatter: {
      *call = "MPI_Scatter";
      const bool in_place =
          is_root && a.recv == static_cast<const std::byte*>(a.send) + bytes * g.rank;
      return MPI_Scatter(a.send, n, dt, in_place ? MPI_IN_PLACE : a.recv, n, dt, a.root, g.comm);
    }
    case OpKind::kReduce: {
      *call = "MPI_Reduce";
      const bool in_place = is_root && a.send == a.recv;
      return MPI_Reduce(in_place ? MPI_IN_PLACE : a.send, a.recv, n, dt, mop, a.root, g.comm);
    }
    case OpKind::kSendRecv:
      *call = "MPI_Sendrecv";
      return MPI_Sendrecv(a.send, n, dt, a.root, kTag, a.recv, static_cast<int>(a.recv_count), dt,
                          a.source, kTag, g.comm, MPI_STATUS_IGNORE);
    case OpKind::kSplit:
      break;
  }
  *call = "(no MPI call)";
  return MPI_ERR_OP;
}

// all_to_all_v's four count arrays as the ints MPI takes (send counts, send displacements,
// receive counts, receive displacements), in memory held by `scratch`.
const int* IntCountsOf(const MpiGroup& g, const OpArgs& a, Scratch& scratch) {
  const size_t un = static_cast<size_t>(g.size);
  scratch = std::make_shared<std::vector<std::byte>>(4 * un * sizeof(int));
  int* ints = reinterpret_cast<int*>(scratch->data());
  for (size_t j = 0; j < un; ++j) {
    ints[j] = static_cast<int>(a.send_counts[j]);
    ints[un + j] = static_cast<int>(a.send_displs[j]);
    ints[2 * un + j] = static_cast<int>(a.recv_counts[j]);
    ints[3 * un + j] = static_cast<int>(a.recv_displs[j]);
  }
  return ints;
}

// The nonblocking MPI call of `a`, started into `started` (sets *call to its name): every
// nonblocking call of this backend is written here, once. The asynchronous path runs it on the
// caller's buffers, RunInterruptible on a staging copy. Exact in-place layouts become
// MPI_IN_PLACE; any other overlap of input and output is staged, and the staging copy is kept
// in `started` until completion.
int StartCall(const MpiGroup& g, const OpArgs& a, Started& started, const char** call) {
  const MPI_Datatype dt = Traits(a.op).moves_data ? MpiDatatype(a.type) : MPI_BYTE;
  const MPI_Op mop = Traits(a.op).reduces ? MpiOp(a.type, a.reduce) : MPI_OP_NULL;
  const int n = static_cast<int>(a.count);
  const size_t bytes = Traits(a.op).moves_data ? a.count * DataTypeSize(a.type) : 0;
  const bool is_root = g.rank == a.root;
  MPI_Request* r = started.requests.data();
  started.cancellable = IsPointToPoint(a.op);
  auto stage = [&](const void* src, size_t src_bytes, const void* dst, size_t dst_bytes) {
    Scratch scratch;
    const void* in = StageIfOverlapping(src, src_bytes, dst, dst_bytes, scratch);
    if (scratch) started.keep.push_back(std::move(scratch));
    return in;
  };
  if (Averages(g, a)) {
    void* out = a.recv;
    const size_t count = a.count;
    const DataType type = a.type;
    const int size = g.size;
    started.on_complete = [out, count, type, size] {
      internal::DivideElements(out, count, type, size);
    };
  }
  switch (a.op) {
    case OpKind::kAllReduce: {
      *call = "MPI_Iallreduce";
      const void* in = a.send == a.recv ? MPI_IN_PLACE : stage(a.send, bytes, a.recv, bytes);
      return MPI_Iallreduce(in, a.recv, n, dt, mop, g.comm, r);
    }
    case OpKind::kAllGather: {
      *call = "MPI_Iallgather";
      const void* slot = static_cast<const std::byte*>(a.recv) + bytes * g.rank;
      const void* in = a.send == slot ? MPI_IN_PLACE : stage(a.send, bytes, a.recv, bytes * g.size);
      return MPI_Iallgather(in, n, dt, a.recv, n, dt, g.comm, r);
    }
    case OpKind::kReduceScatter: {
      *call = "MPI_Ireduce_scatter_block";
      const void* in = stage(a.send, bytes * g.size, a.recv, bytes);
      return MPI_Ireduce_scatter_block(in, a.recv, n, dt, mop, g.comm, r);
    }
    case OpKind::kBroadcast:
      *call = "MPI_Ibcast";
      return MPI_Ibcast(a.recv, n, dt, a.root, g.comm, r);
    case OpKind::kAllToAll:
      *call = "MPI_Ialltoall";
      return MPI_Ialltoall(a.send, n, dt, a.recv, n, dt, g.comm, r);
    case OpKind::kSend:
      *call = "MPI_Isend";
      return MPI_Isend(a.send, n, dt, a.root, kTag, g.comm, r);
    case OpKind::kRecv:
      *call = "MPI_Irecv";
      return MPI_Irecv(a.recv, n, dt, a.root, kTag, g.comm, r);
    case OpKind::kBarrier:
      *call = "MPI_Ibarrier";
      return MPI_Ibarrier(g.comm, r);
    case OpKind::kAllToAllV: {
      *call = "MPI_Ialltoallv";
      Scratch counts;
      const int* ints = IntCountsOf(g, a, counts);
      started.keep.push_back(std::move(counts));  // MPI reads the counts until completion
      const size_t un = static_cast<size_t>(g.size);
      return MPI_Ialltoallv(a.send, ints, ints + un, dt, a.recv, ints + 2 * un, ints + 3 * un, dt,
                            g.comm, r);
    }
    case OpKind::kGather: {
      *call = "MPI_Igather";
      const bool in_place =
          is_root && a.send == static_cast<const std::byte*>(a.recv) + bytes * g.rank;
      return MPI_Igather(in_place ? MPI_IN_PLACE : a.send, n, dt, a.recv, n, dt, a.root, g.comm, r);
    }
    case OpKind::kScatter: {
      *call = "MPI_Iscatter";
      const bool in_place =
          is_root && a.recv == static_cast<const std::byte*>(a.send) + bytes * g.rank;
      return MPI_Iscatter(a.send, n, dt, in_place ? MPI_IN_PLACE : a.recv, n, dt, a.root, g.comm,
                          r);
    }
    case OpKind::kReduce: {
      *call = "MPI_Ireduce";
      const bool in_place = is_root && a.send == a.recv;
      return MPI_Ireduce(in_place ? MPI_IN_PLACE : a.send, a.recv, n, dt, mop, a.root, g.comm, r);
    }
    case OpKind::kSendRecv: {
      *call = "MPI_Irecv";
      int rc = MPI_Irecv(a.recv, static_cast<int>(a.recv_count), dt, a.source, kTag, g.comm, &r[0]);
      if (rc != MPI_SUCCESS) return rc;
      *call = "MPI_Isend";
      rc = MPI_Isend(a.send, n, dt, a.root, kTag, g.comm, &r[1]);
      if (rc != MPI_SUCCESS) {
        MPI_Cancel(&r[0]);
        MPI_Wait(&r[0], MPI_STATUS_IGNORE);
      }
      return rc;
    }
    case OpKind::kSplit:
      break;
  }
  *call = "(no MPI call)";
  return MPI_ERR_OP;
}

// The caller's memory `a` reads and writes, for staging.
Io IoOf(const MpiGroup& g, const OpArgs& a) {
  const size_t e = Traits(a.op).moves_data ? DataTypeSize(a.type) : 0;
  const size_t bytes = a.count * e;
  const size_t all = bytes * static_cast<size_t>(g.size);
  const bool is_root = g.rank == a.root;
  switch (a.op) {
    case OpKind::kAllReduce:
      return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = bytes};
    case OpKind::kAllGather:
      return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = all};
    case OpKind::kReduceScatter:
      return {.in = a.send, .in_bytes = all, .out = a.recv, .out_bytes = bytes};
    case OpKind::kBroadcast:
      return {
          .in = a.recv, .in_bytes = bytes, .out = a.recv, .out_bytes = bytes, .one_buffer = true};
    case OpKind::kAllToAll:
      return {.in = a.send, .in_bytes = all, .out = a.recv, .out_bytes = all};
    case OpKind::kSend:
      return {.in = a.send, .in_bytes = bytes};
    case OpKind::kRecv:
      return {.out = a.recv, .out_bytes = bytes};
    case OpKind::kAllToAllV: {
      size_t send_end = 0, recv_end = 0;
      for (size_t j = 0; j < static_cast<size_t>(g.size); ++j) {
        if (a.send_counts[j] > 0) {
          send_end = std::max(send_end, a.send_displs[j] + a.send_counts[j]);
        }
        if (a.recv_counts[j] > 0) {
          recv_end = std::max(recv_end, a.recv_displs[j] + a.recv_counts[j]);
        }
      }
      return {.in = a.send,
              .in_bytes = send_end * e,
              .out = a.recv,
              .out_bytes = recv_end * e,
              .preserve_out = true};
    }
    case OpKind::kGather:
      return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = is_root ? all : 0};
    case OpKind::kScatter:
      return {.in = a.send, .in_bytes = is_root ? all : 0, .out = a.recv, .out_bytes = bytes};
    case OpKind::kReduce:
      return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = is_root ? bytes : 0};
    case OpKind::kSendRecv:
      return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = a.recv_count * e};
    case OpKind::kBarrier:
    case OpKind::kSplit:
      break;
  }
  return {};
}

void MpiWork::Abandon() {
  std::vector<Abandoned> pending;
  for (MPI_Request& request : started_.requests) {
    if (request == MPI_REQUEST_NULL) continue;
    int done = 0;
    if (started_.cancellable) MPI_Cancel(&request);
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (!done) pending.push_back({request, started_.keep});
  }
  if (!pending.empty()) {
    Quarantine(MPI_COMM_NULL, MPI_COMM_NULL, std::move(pending));
    if (abandoned_ != nullptr) abandoned_->store(true, std::memory_order_release);
  }
  started_.keep.clear();
  pending_ = false;
}

}  // namespace nmesh::comm::mpi
