// The one place where MPI return codes become absl::Status. Used by every file of comm/mpi; the
// header does not include mpi.h (codes are plain ints).
//
//   const int code = MPI_Comm_split(comm, color, key, &out);
//   NMESH_RETURN_IF_ERROR(MpiStatus(code, "MPI_Comm_split", rank));
//   // -> Internal "MPI_Comm_split failed on rank 3: MPI_ERR_COMM: invalid communicator"
#ifndef NMESH_COMM_MPI_STATUS_H_
#define NMESH_COMM_MPI_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace nmesh::comm::mpi {

// OK for MPI_SUCCESS. Otherwise a Status whose message is
//   "<call> failed on rank <rank>: <error class name>: <MPI_Error_string(code)>"
// and whose code follows the MPI error class: argument errors (MPI_ERR_ARG, _BUFFER, _COUNT,
// _TYPE, _OP, _ROOT, _RANK, _TAG, _TRUNCATE, _COMM, _GROUP) are InvalidArgument; MPI_ERR_PENDING
// and MPI_ERR_IN_STATUS are Unavailable; everything else is Internal. `rank` is the caller's rank
// in the communicator the call used (-1 when there is none). Thread-safe; needs MPI initialised
// for the error string (before that the string is "MPI not initialised").
absl::Status MpiStatus(int code, std::string_view call, int rank);

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_STATUS_H_
