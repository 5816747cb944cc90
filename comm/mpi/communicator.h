// MPI communicators on host memory: the world communicator, and through Split every
// sub-communicator of it.
//
//   using Session = mpi::Session;
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Init(&argc, &argv));
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> world, WorldCommunicator(*session));
//   NMESH_ASSIGN_OR_RETURN(Topology topo, GetTopology(*world));   // local rank, host names
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp,
//                          world->Split(world->rank() / 2, world->rank(),
//                                       {.name = "tp", .timeout = absl::Seconds(30)}));
//   std::vector<BFloat16> grad(1024);
//   NMESH_RETURN_IF_ERROR(tp->AllReduce<BFloat16>(grad, absl::MakeSpan(grad), ReduceOp::kAvg));
//
// Every DataType and ReduceOp works on every collective that reduces. float16 and bfloat16 reduce
// through float, one pair of values at a time, rounding to nearest even after each step; kAvg is
// the sum (in the element type: integers wrap as MPI's sum does) divided by size(), integers
// truncating toward zero. MPI counts are ints: a count above 2^31-1 elements is InvalidArgument
// (split the buffer); for AllGather and AllToAll the limit applies to the per-rank count.
//
// all_to_all_v, gather, scatter, reduce and sendrecv map to MPI_Alltoallv, MPI_Gather,
// MPI_Scatter, MPI_Reduce (kAvg divides on the root) and MPI_Sendrecv (with a timeout:
// MPI_Ialltoallv, ..., and an MPI_Irecv + MPI_Isend pair for sendrecv); all_to_all_v counts and
// displacements are ints too.
//
// Split first allgathers every rank's color (honouring the timeout), so a negative color fails on
// every rank with InvalidArgument naming the rank that passed it; then MPI_Comm_split (blocking,
// but every rank has already arrived) with MPI_UNDEFINED for ranks without a color. SplitAgreed
// skips the exchange when the communicator has no timeout (the caller vouches for the colors).
//
// Errors. MPI errors come back as Status (MPI_ERRORS_RETURN is set on every communicator; see
// comm/mpi/status.h for the codes), prefixed with the operation and the axis.
//
// Timeouts. Without CommOptions::timeout every operation is the blocking MPI call. With one, it is
// still the blocking call, and the process's watchdog (comm/watch/watchdog.h) watches it: on expiry
// the ranks of the communicator exchange their flight records over a duplicate of it made at
// creation (so a communicator created with a timeout by Split or WorldCommunicator costs one
// MPI_Comm_dup more), every rank of it reports the culprit, and the job ends (MPI_Abort). This
// needs the "multiple" thread level (Session::Init requests it).
//
// With CommOptions::interruptible (and where MPI grants less than "multiple", for a communicator
// adopted with AdoptComm, or for one created without a timeout and given one later by
// SetTimeout: none of these has the duplicate), a communicator with a timeout runs each operation
// as the nonblocking call (MPI_Iallreduce, MPI_Irecv, ...) on a staging copy of the caller's
// buffers, polled with MPI_Test until it completes or the deadline passes; between polls the thread
// yields, then sleeps up to 1 ms, so oversubscribed ranks still progress. On completion the output
// is copied back (two memcpy per call). On expiry the operation returns DeadlineExceeded
// ("all_reduce on axis 'tp' timed out after 2 s (rank 3 of 8)") and the communicator is revoked
// together with its family (its DeviceMesh): every later operation fails naming the cause
// (FailedPrecondition on this communicator, Aborted on the rest of the family). A communicator with
// a side channel (created with a timeout) also tells its peers: a revocation notice (the cause, cut
// to 1 KiB) goes to every other rank over the side channel, where the watchdog thread (every tick)
// or the next interruptible operation takes it and revokes that rank's communicator and family with
// the same cause, whose communicators tell their own peers in turn; so every member of the mesh
// learns it, and a late rank's operation fails at once (Aborted "all_reduce on axis 'tp': rank 0:
// all_reduce on axis 'tp' timed out after 2 s (rank 0 of 8)") instead of completing the collective
// the others abandoned. An interruptible operation that completes checks for a notice before it
// returns OK. Without a side channel (SetTimeout, AdoptComm) the revocation stays local.
//
// What happens to the request: a Send or Recv is cancelled (MPI_Cancel); a collective cannot be
// cancelled in MPI, so its request is abandoned together with its staging copy. Abandoned
// requests, and the communicators (and side channels) of revoked communicators, are quarantined
// for the life of the process when the communicator is destroyed (comm/mpi/quarantine.h): never
// freed under MPI, so neither a late peer's arrival nor MPI_Finalize runs a collective on freed
// memory. Either way MPI never touches the caller's buffers after the call returns: they may be
// reused or freed at once. An asynchronous handle that gives up on a pending request (dropped,
// or orphaned by the communicator's destruction) quarantines it the same way.
//
// Abort() only marks the communicator (no MPI call, so any thread may call it whatever thread
// level MPI granted; it tells no peer: Revoke(cause) does). It ends a timed operation that is being
// polled at its next poll (FailedPrecondition) but cannot interrupt a blocking MPI call: give the
// communicator a timeout (the watchdog then ends the job) or an interruptible timeout to make it
// abortable.
//
// Threads. One thread at a time per communicator. Using different communicators from different
// threads needs the "multiple" thread level (Session::thread_level()).
#ifndef NMESH_COMM_MPI_COMMUNICATOR_H_
#define NMESH_COMM_MPI_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/topology.h"

namespace nmesh::comm::mpi {

// A communicator over every process of the job: a duplicate of MPI_COMM_WORLD, so its traffic and
// error handler are its own. Collective over MPI_COMM_WORLD. Fails (FailedPrecondition) if MPI has
// been finalised, or with the MPI error of MPI_Comm_dup. The session must outlive it. Thread-safe
// in the sense of MPI_Comm_dup (needs the "multiple" level to race with other MPI calls).
absl::StatusOr<std::unique_ptr<Communicator>> WorldCommunicator(Session& session,
                                                                CommOptions options = {
                                                                    .name = "world"});

// Collective over `comm`, which must come from this backend (InvalidArgument otherwise): the host
// name of every rank (MPI_Get_processor_name, allgathered) and this rank's local rank and local
// size from MPI's shared-memory split (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED), ordered by
// rank. num_hosts counts distinct host names. Fails like the collectives it runs.
absl::StatusOr<Topology> GetTopology(Communicator& comm);

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_COMMUNICATOR_H_
