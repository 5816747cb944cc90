// gloo communicators on host memory: a world that meets through a store (comm/store.h: Redis, a
// shared directory), with no MPI, and through Split every sub-communicator of it.
//
//   // store: e.g. comm::store::OpenStore("redis://10.0.0.1:6379/job1") (comm/store/store.h)
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> world,
//                          gloo::WorldCommunicator(store, rank, world_size, {.name = "world"}));
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp,
//                          world->Split(rank / 2, rank, {.name = "tp"}));
//   NMESH_RETURN_IF_ERROR(tp->AllReduce<float>(grad, absl::MakeSpan(grad), ReduceOp::kSum));
//
// Transport: gloo's TCP transport, one device (listening address) per world, shared by its
// splits; every communicator is a full mesh of TCP connections between its ranks.
//
// Operations. Every operation of comm/communicator.h, every DataType and ReduceOp. all_reduce,
// all_gather, broadcast, all_to_all, barrier, gather, scatter and reduce are gloo's algorithms;
// reduce_scatter is gloo's all_reduce of a copy of the send buffer, of which each rank keeps its
// block; all_to_all_v moves each block straight between the callers' extents with gloo's
// point-to-point transfers; send, recv and sendrecv are those transfers on gloo's unbound buffers
// (one slot, so messages between two ranks match in the order they were issued). float16 and
// bfloat16 reduce through float, one pair of values at a time; kAvg is the sum divided by size()
// (integers truncate). A rank's send to itself is matched with its own receive in the process.
//
// Blocking and asynchronous operations. gloo's calls block. A blocking collective runs on the
// caller's thread (after the asynchronous collectives issued before it have run); asynchronous
// collectives run in issue order on a thread of the communicator, started on first use, and their
// handles complete from it. Point-to-point operations are posted at once on the caller's thread
// (so pipeline neighbours that both send first do not wait on each other, in a batch or not), and
// a second thread of the communicator waits for the asynchronous ones. A Batch needs nothing more:
// its operations are issued as they come.
//
// Split is collective over this communicator: the ranks allgather their colors and keys over it
// (a negative color fails on every rank, naming it), then each group creates its own gloo context
// on the world's device and the ranks exchange the group's addresses with one allgatherv over this
// communicator: the store is used for the world only. One gloo context per call; SplitAgreed is
// Split.
//
// Timeouts are gloo's own: every wait of an operation is bounded by CommOptions::timeout (without
// one, by 30 days). An operation that outlives it returns DeadlineExceeded ("all_reduce on axis
// 'tp' timed out after 2 s (rank 3 of 8)"), and the communicator is aborted: its connections are
// closed, so peers blocked with it fail at once instead of at their own timeout, and every later
// operation is FailedPrecondition. A lost connection (a peer that died) is Unavailable naming the
// operation, and aborts the communicator the same way. CommOptions::interruptible changes nothing
// (gloo's timeouts always return).
//
// The diagnosis. The communicators of a world met through a store (not an adopted context) are
// registered with the watchdog (comm/watch/watchdog.h) without being watched: its thread answers
// the other ranks' asks for their records over the store (comm/watch/store_side_channel.h). When an
// operation times out, before it returns, this rank exchanges records with the communicator's
// other ranks, names the culprit and hands the report to the process's TimeoutHandler (as a
// firing does under MPI), waits while the others may still ask, and then returns DeadlineExceeded
// marked as reported (comm::TimeoutReported). Nothing ends the job.
//
// Abort() may be called from any thread: it closes the connections, so an operation in progress
// on any thread returns FailedPrecondition (and the peers' fail as well).
//
// Threads. One thread at a time per communicator; different communicators may be used from
// different threads.
#ifndef NMESH_COMM_GLOO_COMMUNICATOR_H_
#define NMESH_COMM_GLOO_COMMUNICATOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/store.h"

namespace nmesh::comm::gloo {

// How a gloo world connects.
struct GlooOptions {
  // The address this process listens on: a host name or IP address. Empty: `interface` if set,
  // else the environment's GLOO_SOCKET_IFNAME (as PyTorch reads it), else this host's name.
  std::string hostname = {};
  // A network interface (e.g. "eth0") whose address to listen on.
  std::string interface = {};
  // How long the world's rendezvous through the store may take (connecting included).
  absl::Duration rendezvous_timeout = absl::Minutes(5);
  // The prefix of the world's keys in the store: several worlds may share one store under
  // different prefixes.
  std::string prefix = "gloo";
};

// The world of `size` processes, this one being `rank`: each process publishes its addresses
// in `store` and connects to every other (gloo's connectFullMesh). Collective over the `size`
// processes. InvalidArgument for a null store, size < 1, a rank outside [0, size) or a bad
// timeout; Unavailable when the listening address cannot be found or a connection fails;
// DeadlineExceeded naming the store and the keys of the ranks that never arrived when the
// rendezvous outlives gloo.rendezvous_timeout.
absl::StatusOr<std::unique_ptr<Communicator>> WorldCommunicator(std::shared_ptr<Store> store,
                                                                int rank, int size,
                                                                CommOptions options,
                                                                GlooOptions gloo = {});

}  // namespace nmesh::comm::gloo

#endif  // NMESH_COMM_GLOO_COMMUNICATOR_H_
