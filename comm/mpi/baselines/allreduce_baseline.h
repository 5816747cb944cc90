// The raw-MPI baseline of nmesh's AllReduce: MPI_Allreduce called directly on the MPI
// communicator behind an nmesh MPI Communicator, with none of nmesh's argument checks, staging or
// timeout handling. bench/p5_allreduce_overhead times the two on the same communicator to measure
// what nmesh adds (docs/PERFORMANCE.md, P5).
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> world, WorldCommunicator(*session));
//   std::vector<float> send(n, 1.0f), recv(n);
//   NMESH_RETURN_IF_ERROR(RawAllReduce(*world, send.data(), recv.data(), n, DataType::kFloat32,
//                                      ReduceOp::kSum, /*iterations=*/100));
#ifndef NMESH_COMM_MPI_BASELINES_ALLREDUCE_BASELINE_H_
#define NMESH_COMM_MPI_BASELINES_ALLREDUCE_BASELINE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm::mpi::baselines {

// Collective over `comm` (every rank calls it with the same count, type, op and iterations):
// calls MPI_Allreduce(send, recv, count, type, op) `iterations` times in a row on `comm`'s
// MPI communicator, blocking, as a user of raw MPI would. kAvg is not supported (MPI has no
// average; nmesh divides after a sum): InvalidArgument. Fails with InvalidArgument when `comm` is
// not an MPI communicator, the count exceeds MPI's int range or a buffer is null with a non-zero
// count; with the MPI error (comm/mpi/status.h) of a failing call. send and recv must not overlap.
// Thread safety: as the communicator (one thread at a time).
absl::Status RawAllReduce(Communicator& comm, const void* send, void* recv, size_t count,
                          DataType type, ReduceOp op, int iterations);

}  // namespace nmesh::comm::mpi::baselines

#endif  // NMESH_COMM_MPI_BASELINES_ALLREDUCE_BASELINE_H_
