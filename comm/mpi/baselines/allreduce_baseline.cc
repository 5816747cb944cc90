#include "nmesh/comm/mpi/baselines/allreduce_baseline.h"

#include <mpi.h>

#include <climits>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/mpi/native.h"
#include "nmesh/comm/mpi/reduce_ops.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi::baselines {

absl::Status RawAllReduce(Communicator& comm, const void* send, void* recv, size_t count,
                          DataType type, ReduceOp op, int iterations) {
  NMESH_ASSIGN_OR_RETURN(MPI_Comm raw, NativeComm(comm));
  if (op == ReduceOp::kAvg) {
    return absl::InvalidArgumentError("RawAllReduce: MPI has no average operator; use kSum");
  }
  if (count > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("RawAllReduce: count %d exceeds MPI's int range", count));
  }
  if (count > 0 && (send == nullptr || recv == nullptr)) {
    return absl::InvalidArgumentError("RawAllReduce: null buffer with a non-zero count");
  }
  // Resolved once, outside the loop, as a raw-MPI user would hold them.
  const MPI_Datatype dt = MpiDatatype(type);
  const MPI_Op mop = MpiOp(type, op);
  const int n = static_cast<int>(count);
  for (int i = 0; i < iterations; ++i) {
    NMESH_RETURN_IF_ERROR(
        MpiStatus(MPI_Allreduce(send, recv, n, dt, mop, raw), "MPI_Allreduce", comm.rank()));
  }
  return absl::OkStatus();
}

}  // namespace nmesh::comm::mpi::baselines
