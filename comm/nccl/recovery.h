// What a job that lost a rank needs of its NCCL communicators: stop every communicator of one mesh
// together, and make smaller communicators without the lost ranks, with no new bootstrap.
//
//   // A rank announced a failure (job/recovery.h): stop this rank's communicators of the mesh.
//   NMESH_RETURN_IF_ERROR(nccl::RevokeTogether(mesh_comms, "rank 5 died"));
//   // The survivors, together (the excluded ranks do not call):
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> dp,
//                          nccl::ShrinkComm(*old_dp, /*exclude=*/{5}, {.name = "dp"}));
//
// Revoking. With NCCL 2.28 or later (ncclCommRevoke), a revoked communicator stops its in-flight
// operations and keeps its NCCL communicator, so that ShrinkComm can still make a smaller one from
// it; it is aborted (ncclCommAbort, never finalised) when the nmesh Communicator is destroyed.
// A timeout or an asynchronous error found by an operation, or by the watchdog, revokes the same
// way (and the mesh's other communicators with it, AbortGroup). With an older NCCL, revoking is
// the grouped ncclCommAbort of AbortGroup, and ShrinkComm then fails: the communicator is gone.
// Either way every later operation of a revoked communicator fails with FailedPrecondition naming
// the reason. Abort() still aborts (ncclCommAbort).
//
// Shrinking (NCCL 2.27 or later, ncclCommShrink). Every rank of the communicator that is not
// excluded calls ShrinkComm with the same list; the new communicator holds those ranks in their
// old order, renumbered from 0. A healthy communicator is shrunk with NCCL_SHRINK_DEFAULT and stays
// usable; a revoked or failed one with NCCL_SHRINK_ABORT (NCCL ends its operations first), and is
// then only ever aborted, never finalised or destroyed (destroying a parent after a shrink with
// abort hangs the survivors: PyTorch #194775).
#ifndef NMESH_COMM_NCCL_RECOVERY_H_
#define NMESH_COMM_NCCL_RECOVERY_H_

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm::nccl {

// Whether the loaded NCCL has ncclCommRevoke (2.28) and ncclCommShrink (2.27). False when NCCL
// cannot be loaded.
bool HasCommRevoke();
bool HasCommShrink();

// Revokes this rank's communicators of one mesh (`family`) together: one ncclGroupStart,
// ncclCommRevoke on each NCCL communicator, one ncclGroupEnd (without ncclCommRevoke: the same
// group of ncclCommAbort calls). Members of another backend, and device self communicators, are
// aborted (Abort()). Every later operation of each fails with FailedPrecondition naming `reason`.
// Not collective; idempotent (a communicator revoked or aborted already is left as it is); may be
// called from any thread. Returns the first NCCL error of the group (the communicators are revoked
// all the same).
absl::Status RevokeTogether(absl::Span<Communicator* const> family, std::string_view reason);

// Collective over the ranks of `comm` that are not in `exclude` (ranks of `comm`): a communicator
// of those ranks (ncclCommShrink with NCCL_SHRINK_ABORT when `comm` was revoked or failed,
// NCCL_SHRINK_DEFAULT otherwise), named and configured by `options` (its nccl settings go into the
// new ncclConfig_t, as for Split). Initialisation is polled up to options.timeout, else
// comm.options().timeout. Errors: InvalidArgument for another backend, an excluded rank outside
// [0, size), listed twice, or this rank itself, or every rank excluded; FailedPrecondition "...
// needs ncclCommShrink (NCCL 2.27 or later); the loaded NCCL is 2.26.5" and for a communicator
// aborted (Abort(), or revoked without ncclCommRevoke); the NCCL error of ncclCommShrink or of the
// new communicator's initialisation otherwise (comm/nccl/status.h); DeadlineExceeded when that
// outlives the timeout.
absl::StatusOr<std::unique_ptr<Communicator>> ShrinkComm(Communicator& comm,
                                                         absl::Span<const int> exclude,
                                                         CommOptions options);

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_RECOVERY_H_
