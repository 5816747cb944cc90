// The MPI communicator behind an nmesh MPI Communicator, for code inside comm/mpi that must call
// MPI directly on the same communicator (the raw-MPI baselines of the benchmarks). Internal to
// comm/mpi: includes mpi.h and is not installed.
//
//   NMESH_ASSIGN_OR_RETURN(MPI_Comm raw, NativeComm(*world));
//   MPI_Allreduce(MPI_IN_PLACE, buffer, n, MPI_FLOAT, MPI_SUM, raw);
#ifndef NMESH_COMM_MPI_NATIVE_H_
#define NMESH_COMM_MPI_NATIVE_H_

#include <mpi.h>

#include "absl/status/statusor.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm::mpi {

// The MPI_Comm that `comm` runs its operations on (still owned by `comm`: do not free it). Fails
// with InvalidArgument when `comm` comes from another backend. Not collective; thread-safe.
absl::StatusOr<MPI_Comm> NativeComm(const Communicator& comm);

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_NATIVE_H_
