// How nmesh's DataType and ReduceOp map onto MPI, including the user-defined datatypes and
// reduction operators for float16 and bfloat16 (MPI has neither). Internal to comm/mpi: includes
// mpi.h and is not installed.
//
//   MPI_Datatype type = MpiDatatype(DataType::kBFloat16);        // nmesh's 2-byte type
//   MPI_Op op = MpiOp(DataType::kBFloat16, ReduceOp::kAvg);        // the bfloat16 sum
//   MPI_Allreduce(send, recv, n, type, op, comm);
//   internal::DivideElements(recv, n, DataType::kBFloat16, comm_size);  // the average
//   (host_math.h)
#ifndef NMESH_COMM_MPI_REDUCE_OPS_H_
#define NMESH_COMM_MPI_REDUCE_OPS_H_

#include <mpi.h>

#include <cstddef>

#include "nmesh/comm/communicator.h"

namespace nmesh::comm::mpi {

// The MPI datatype of `type`. The float16 and bfloat16 types are created and committed on first
// use (MPI must be initialised) and live until MPI_Finalize. Thread-safe.
MPI_Datatype MpiDatatype(DataType type);

// The MPI operator computing `op` over `type`. kAvg gives the sum: the caller divides afterwards
// (comm/internal/host_math.h). float16 and bfloat16 use user-defined, commutative operators that
// convert each pair of values to float, combine them and round back to nearest even; they are
// created on first use, like the datatypes. Thread-safe.
MPI_Op MpiOp(DataType type, ReduceOp op);

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_REDUCE_OPS_H_
