// NCCL communicators on device memory, bootstrapped through any host-memory Communicator (in
// practice the MPI world).
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> mpi_world,
//                          mpi::WorldCommunicator(*session));
//   NMESH_ASSIGN_OR_RETURN(
//       std::unique_ptr<Communicator> world,
//       CreateWorld(*mpi_world, {.comm = {.name = "world", .timeout = absl::Seconds(60)}}));
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp,
//                          world->Split(rank / 2, rank % 2, {.name = "tp"}));
//   // grad: n bfloat16 values in device memory on DeviceOf(*world) (cudaMalloc)
//   NMESH_RETURN_IF_ERROR(tp->AllReduce(grad, grad, n, DataType::kBFloat16, ReduceOp::kAvg));
//
// Buffers. Every collective takes device pointers on this communicator's GPU (DeviceOf). Operations
// run on a CUDA stream the communicator owns, and each call returns only when that stream has
// finished the operation, so the buffers may be reused (or read on another stream) at once.
// DataTypes map to ncclInt8 ... ncclFloat64, float16 and bfloat16 to ncclFloat16 and ncclBfloat16;
// ReduceOps to ncclSum/Prod/Min/Max/Avg (NCCL's avg truncates integers toward zero, as nmesh
// specifies). AllToAll is a group of ncclSend/ncclRecv; Barrier is an all-reduce of one float on a
// small device buffer the communicator owns.
//
// Asynchronous operations (Communicator::*Async) are enqueued on AsyncOptions::stream
// (the caller's cudaStream_t on this communicator's device; another device's stream is
// InvalidArgument) or on the communicator's stream, and return once NCCL has enqueued them (no
// stream synchronisation); a CUDA event recorded after the operation backs the handle (Wait:
// cudaEventSynchronize, or polls of cudaEventQuery with a timeout). The handle reports CUDA errors
// of the event; asynchronous NCCL errors show on the communicator's next operation. The new
// operations: all_to_all_v, gather and scatter are groups of ncclSend/ncclRecv, reduce is
// ncclReduce, sendrecv a group of one ncclSend and one ncclRecv.
//
// AllocateBuffer gives cudaMalloc'ed memory on DeviceOf(comm); CopyToHost/CopyFromHost are
// synchronous cudaMemcpy calls; NewSelf gives NewDeviceSelfCommunicator on the same device.
//
// Nonblocking communicators. Every communicator is created with ncclConfig_t.blocking = 0, so no
// NCCL call blocks: initialisation, Split, and each operation are polled (ncclCommGetAsyncError,
// then cudaStreamQuery) with a yield/sleep between polls. With CommOptions::timeout set, a poll
// that outlives the deadline aborts the communicator (ncclCommAbort) and returns DeadlineExceeded
// ("all_reduce on axis 'tp' timed out after 2 s (rank 3 of 8)"); later operations are
// FailedPrecondition. An asynchronous NCCL error (a peer died, a network failure) also aborts the
// communicator and is returned as the error of the operation that saw it.
//
// Split uses ncclCommSplit with splitShare = 1 (children share the parent's resources) and
// NCCL_SPLIT_NOCOLOR for ranks without a color. Unlike the MPI backend, a negative color is
// reported only on the rank that passed it; the others wait in ncclCommSplit until their timeout.
// The child's CommOptions::nccl settings (comm/nccl_settings.h) go into its ncclConfig_t, and
// CreateWorld applies NcclWorldOptions::comm.nccl the same way; a setting the NCCL in use predates
// is InvalidArgument before any NCCL call.
//
// The watchdog (comm/watch/watchdog.h) watches every NCCL communicator: the deadline of each
// asynchronous operation (which may never be waited for), and ncclCommGetAsyncError on every tick,
// with or without a timeout. A timeout or an error found there, or by an operation's own polling,
// stops the communicator's family (SetAbortFamily: every communicator of its DeviceMesh) in one
// ncclGroupStart / ncclCommRevoke... / ncclGroupEnd (NCCL 2.28 and later), or else one
// ncclGroupStart / ncclCommAbort... / ncclGroupEnd (NCCL 2.22 and later; one by one before), so
// that the abort of one cannot wait on a kernel of another that hangs (NVIDIA/nccl#1013). A handle
// whose communicator was aborted before it completed fails with the abort's reason (the kernel
// ends early and its event completes, but the data is undefined).
//
// Abort() may be called from any thread: it calls ncclCommRevoke (NCCL 2.28 or later) or else
// ncclCommAbort, either of which also ends an operation that another thread is polling (that call
// returns FailedPrecondition). A timeout or an asynchronous error stops the communicator the same
// way. A revoked NCCL communicator is kept, so that nccl::ShrinkComm (comm/nccl/recovery.h) can
// still make a smaller one from it. Destruction finalises the communicator (ncclCommFinalize,
// polled up to the timeout, then ncclCommDestroy); a revoked one is aborted (ncclCommAbort), and
// an aborted one frees only the stream and buffers.
//
// Threads. One thread at a time per communicator, plus Abort() from any thread.
#ifndef NMESH_COMM_NCCL_COMMUNICATOR_H_
#define NMESH_COMM_NCCL_COMMUNICATOR_H_

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/nccl/bootstrap.h"
#include "nmesh/comm/store.h"

namespace nmesh::comm::nccl {

struct NcclWorldOptions {
  // Options of the world communicator. The timeout also bounds initialisation.
  CommOptions comm = {.name = "world"};
  // This process's index among the ranks on its host. Default: computed from the host names of
  // every rank, allgathered over the bootstrap communicator (comm/topology.h).
  std::optional<int> local_rank = std::nullopt;
  // The CUDA device to use. Default: the local rank.
  std::optional<int> device = std::nullopt;
  // One bootstrap root per this many ranks (comm/nccl/bootstrap.h).
  BootstrapOptions bootstrap = {};
};

// Collective over `bootstrap`, which must use host memory (InvalidArgument otherwise): creates an
// NCCL communicator with bootstrap's size and rank order.
//  1. Every rank checks that it sees a CUDA device (VisibleCudaDevices, before any other CUDA or
//     NCCL call) and that its device index is below the number visible (fewer GPUs than local
//     ranks is FailedPrecondition "host 'h' runs N ranks but only M CUDA devices are visible").
//     The ranks share their verdicts over `bootstrap`, so every rank fails together: one without a
//     GPU gets FailedPrecondition "no CUDA device visible: ...", and the others get the same
//     message naming the rank that reported it, instead of hanging.
//  2. The bootstrap roots (PlanBootstrap: rank 0, or one per options.bootstrap.ranks_per_root
//     ranks) call ncclGetUniqueId; rank 0 gathers the ids and broadcasts them through `bootstrap`.
//  3. ncclCommInitRankConfig with one root, ncclCommInitRankScalable with several (nonblocking),
//     polled up to options.comm.timeout.
// Fails with the NCCL or CUDA error (comm/nccl/status.h) of whichever step failed.
absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(Communicator& bootstrap,
                                                          NcclWorldOptions options = {});

// How long CreateWorld over a store waits for the other ranks when options.comm has no timeout.
inline constexpr absl::Duration kStoreBootstrapTimeout = absl::Seconds(300);

// The same steps with no bootstrap communicator (a job launched without MPI): this process is
// rank `rank` of `size`, and the ranks meet through `store` under the keys "nccl/<comm name>/...":
// the host names (when options.local_rank is unset), the agreement on each rank's device and
// setup (comm::StoreAgreeOnStatus), and the roots' unique ids (ShareUniqueIds). Every meeting is
// bounded by options.comm.timeout (kStoreBootstrapTimeout without one): DeadlineExceeded naming
// the ranks that did not arrive and the store. The keys are written once: one world per name per
// store prefix.
absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(Store& store, int rank, int size,
                                                          NcclWorldOptions options = {});

// The CUDA device of a communicator from this backend; InvalidArgument for any other backend.
absl::StatusOr<int> DeviceOf(const Communicator& comm);

// A one-rank communicator on device memory of `device` (comm/self.h semantics; copies with
// cudaMemcpy), for groups of size 1 on the GPU backend. Never fails; copies report CUDA errors.
std::unique_ptr<Communicator> NewDeviceSelfCommunicator(CommOptions options, int device);

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_COMMUNICATOR_H_
