// The MPI handles behind nmesh's MPI communicators, and MPI communicators an engine already has
// wrapped as nmesh Communicators. Public (installed); the only public header of comm/mpi that
// includes mpi.h, so a consumer that does not include it needs no MPI headers.
//
//   NMESH_ASSIGN_OR_RETURN(MPI_Comm raw, mpi::NativeComm(*tp));   // still owned by *tp
//   MPI_Allreduce(MPI_IN_PLACE, buffer, n, MPI_FLOAT, MPI_SUM, raw);
//
//   // An engine's own communicator, used through nmesh (and still the engine's to free):
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> dp,
//                          mpi::AdoptComm(engine_dp, mpi::Ownership::kBorrowed, {.name = "dp"}));
#ifndef NMESH_COMM_MPI_NATIVE_H_
#define NMESH_COMM_MPI_NATIVE_H_

#include <mpi.h>

#include <memory>

#include "absl/status/statusor.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm::mpi {

// The MPI_Comm that `comm` runs its operations on (still owned by `comm`: do not free it). For a
// one-rank self communicator on host memory (a size-1 axis of an MPI mesh) it is MPI_COMM_SELF
// (FailedPrecondition when MPI is not running). Fails with InvalidArgument when `comm` comes from
// another backend (NCCL, or a self communicator on device memory). Not collective; thread-safe.
absl::StatusOr<MPI_Comm> NativeComm(const Communicator& comm);

enum class Ownership {
  // The Communicator frees the MPI_Comm (MPI_Comm_free) when destroyed.
  kOwned,
  // The caller keeps the MPI_Comm, which must outlive the Communicator; its error handler is set
  // to MPI_ERRORS_RETURN while the Communicator lives and restored afterwards.
  kBorrowed,
};

// Wraps an existing MPI communicator as an nmesh Communicator (backend "mpi", host memory, every
// behaviour of comm/mpi/communicator.h; Split gives ordinary owned communicators). Not collective.
// MPI_COMM_NULL is InvalidArgument; MPI not initialised (or finalised) is FailedPrecondition. The
// Communicator's traffic shares the MPI_Comm with the engine's: the engine must not have MPI
// operations of its own pending on it, with nmesh's tag, while nmesh uses it.
absl::StatusOr<std::unique_ptr<Communicator>> AdoptComm(MPI_Comm comm, Ownership ownership,
                                                        CommOptions options);

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_NATIVE_H_
