// The communicator interface every nmesh backend implements.
//
// A Communicator is one group of ranks that can run collectives together: the world, one mesh axis,
// or one flattened group. Backends live in their own folders and return this interface from
// factories (comm/mpi: host memory over MPI; comm/nccl: device memory over NCCL); comm/self.h is
// the trivial one-rank communicator used for groups of size 1.
//
//   // world: the world communicator of a backend (mpi::WorldCommunicator, nccl::CreateWorld)
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp,
//                          world->Split(/*color=*/rank / 2, /*key=*/rank % 2, {.name = "tp"}));
//   std::vector<float> grad(1024, 1.0f);
//   NMESH_RETURN_IF_ERROR(tp->AllReduce<float>(grad, absl::MakeSpan(grad), ReduceOp::kSum));
//
// Collectives. Every method marked "Collective" must be called by every rank of the communicator,
// in the same order, with matching counts, datatypes, ops and roots. A mismatch is a usage error
// that a backend may detect (InvalidArgument) but may also turn into a hang that only a timeout
// (CommOptions::timeout) ends.
//
// Memory. Buffers live in the memory kind the communicator reports (memory_kind()): host memory for
// MPI and self, device memory for NCCL. In-place operation is allowed wherever the method says so,
// with the layout it gives. A null buffer with a non-zero count is InvalidArgument; zero counts are
// no-ops that synchronise nothing and succeed.
//
// Errors. Every call returns absl::Status: InvalidArgument for bad arguments, FailedPrecondition
// for use after Abort() or after a timeout, Aborted naming the cause after Revoke(),
// DeadlineExceeded when an operation outlives the timeout (the message names the communicator's
// name, the operation and the timeout, e.g. "all_reduce on axis 'tp' timed out after 2 s (rank 3 of
// 8)"), Internal/Unavailable for backend failures. Operation names in messages: split, all_reduce,
// all_gather, reduce_scatter, broadcast, all_to_all, send, recv, barrier, all_to_all_v, gather,
// scatter, reduce and sendrecv. A DataType or ReduceOp value outside its enum is InvalidArgument on
// every backend.
//
// Backend-neutral buffers. Code above the backends (the mesh runtime, `nmesh run`) runs collectives
// without knowing where the communicator's memory lives: AllocateBuffer, CopyFromHost and
// CopyToHost move data in and out, NewSelf makes a one-rank communicator of the same memory kind,
// and SplitAgreed splits when every rank already knows the colors are valid:
//
//   NMESH_ASSIGN_OR_RETURN(Buffer buffer, comm.AllocateBuffer(n * sizeof(int64_t)));
//   NMESH_RETURN_IF_ERROR(comm.CopyFromHost(buffer.data(), host.data(), buffer.bytes()));
//   NMESH_RETURN_IF_ERROR(comm.AllReduce(buffer.data(), buffer.data(), n, DataType::kInt64,
//                                        ReduceOp::kSum));
//   NMESH_RETURN_IF_ERROR(comm.CopyToHost(host.data(), buffer.data(), buffer.bytes()));
//
// Asynchronous operations. Every operation has an *Async variant returning a Work handle (wait
// with a timeout, test, final status; AsyncOptions names the CUDA stream on NCCL). A Batch groups
// several *Async operations, across communicators of one backend, so that they are issued
// together (e.g. pipeline neighbours that both send first). CommOptions::check_arguments makes the
// ranks compare each collective's arguments first, for debugging. The public operations check
// state and arguments once for every backend; backends implement the protected Do* hooks. Native
// handles and adoption of existing MPI/NCCL communicators live in comm/mpi/native.h and
// comm/nccl/native.h, the only public headers that include MPI, NCCL or CUDA headers.
//
// Thread safety. A Communicator is not thread-safe: one thread at a time may call its methods, and
// collectives on one communicator are issued in one order. Different communicators may be used from
// different threads only where the backend's threading level allows it (see the backend header).
// Abort() is the exception: it may be called from any thread to stop a hung operation.
#ifndef NMESH_COMM_COMMUNICATOR_H_
#define NMESH_COMM_COMMUNICATOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/buffer.h"
#include "nmesh/comm/op.h"
#include "nmesh/comm/options.h"
#include "nmesh/comm/types.h"
#include "nmesh/comm/work.h"

namespace nmesh::comm {

class FlightRecorder;  // comm/watch/flight_recorder.h
namespace internal {
class SideChannel;  // comm/watch/watchdog_thread.h
class Watchdog;
class Revocation;  // comm/internal/checks.h
}  // namespace internal

// The interface. The public operations are not virtual: each checks, once for every backend, that
// the communicator is usable (not aborted) and that its arguments are valid (known DataType and
// ReduceOp values, null buffers with non-zero counts, roots and peers, per-peer count arrays,
// overlapping buffers where in-place is not allowed); zero-count collectives then succeed without
// reaching the backend. Only then does it call the protected backend hook (DoAllReduce, ...), which
// may assume valid arguments. A backend implements the hooks; code above the backends calls the
// public methods.
class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // This rank's index in [0, size()). Not collective.
  virtual int rank() const = 0;
  // Number of ranks. Not collective.
  virtual int size() const = 0;
  // "mpi", "nccl", "gloo" or "self". Not collective.
  virtual std::string_view backend() const = 0;
  // Where collective buffers must live. Not collective.
  virtual MemoryKind memory_kind() const = 0;
  // The options this communicator was created with. Not collective.
  virtual const CommOptions& options() const = 0;
  // Expires when this communicator is destroyed: for holders of a plain reference to it (a
  // DeviceMesh that reuses the caller's world), so that they can tell it is gone instead of using
  // it. Not collective; thread-safe.
  std::weak_ptr<const void> lifetime() const { return lifetime_; }

  // Collective over this communicator: splits it into disjoint sub-communicators, one per distinct
  // color. Ranks are ordered in each new communicator by `key` (ties by rank here). A rank passing
  // std::nullopt joins none and receives nullptr. Colors must be non-negative: a negative color is
  // InvalidArgument (the MPI backend reports it on every rank, not only the one that passed it).
  // `options` belong to the new communicator only; nothing is inherited from this one.
  absl::StatusOr<std::unique_ptr<Communicator>> Split(std::optional<int> color, int key,
                                                      CommOptions options);

  // Split for callers that have already agreed, across every rank, on the split (e.g. a
  // DeviceMesh after its agreement check): every rank of this communicator calls it, and every
  // color is non-negative or absent. Backends may then skip their own exchange of colors (MPI does
  // when this communicator has no timeout; with one, it keeps the exchange, which is what makes a
  // split honour the timeout). A caller that breaks the promise may hang.
  absl::StatusOr<std::unique_ptr<Communicator>> SplitAgreed(std::optional<int> color, int key,
                                                            CommOptions options);
  // SplitAgreed with the partition given by its groups: `members` lists the ranks of this
  // communicator in the caller's new communicator, in the new rank order (empty: the caller joins
  // none), and every member passes the same list. The same promise as above. Backends that can
  // build a communicator from its members alone do so (MPI: MPI_Comm_create_group, which only the
  // members take part in, when this communicator has no timeout); the others split with color
  // members[0] and key the caller's place in the list. A list that does not hold the caller once,
  // or holds a rank outside [0, size()) or twice, is InvalidArgument.
  absl::StatusOr<std::unique_ptr<Communicator>> SplitAgreed(absl::Span<const int> members,
                                                            CommOptions options);
  // Several SplitAgreed by members at once: entry i of the result is SplitAgreed(splits[i].members,
  // splits[i].options) (null where the caller joins none). Every rank passes as many entries, in
  // the same order, each under the promise above. Backends that can overlap the splits do (gloo:
  // one exchange of addresses with each peer and one round of connections for all the new
  // communicators, instead of one each); the others make them one after the other. Any entry's
  // error fails the whole call.
  absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> SplitAgreedMany(
      absl::Span<const AgreedSplit> splits);

  // Collective. recv[i] = op over ranks of send[i], for i < count, on every rank. In-place:
  // send == recv.
  absl::Status AllReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op);
  // Collective. recv (size()*send_count elements) holds rank j's send buffer at j*send_count.
  // In-place: send == recv + rank()*send_count (the NCCL convention).
  absl::Status AllGather(const void* send, void* recv, size_t send_count, DataType type);
  // Collective. send holds size()*recv_count elements; rank j receives the reduction of every
  // rank's block j. In-place: recv == send + rank()*recv_count (the NCCL convention).
  absl::Status ReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                             ReduceOp op);
  // Collective. Copies `root`'s buffer into every rank's buffer. A root outside [0, size()) is
  // InvalidArgument.
  absl::Status Broadcast(void* buffer, size_t count, DataType type, int root);
  // Collective. send and recv hold size()*count elements; block j of send goes to rank j, and
  // block j of recv comes from rank j. Not in-place: overlapping buffers are InvalidArgument.
  absl::Status AllToAll(const void* send, void* recv, size_t count, DataType type);
  // Point to point: must be matched by Recv on `peer` with the same count and type. A peer outside
  // [0, size()) is InvalidArgument. Send may block until the matching Recv is posted, so a rank
  // sending to itself must not rely on it (only the self communicator buffers such a message).
  absl::Status Send(const void* buffer, size_t count, DataType type, int peer);
  absl::Status Recv(void* buffer, size_t count, DataType type, int peer);
  // Collective. Returns once every rank has entered it.
  absl::Status Barrier();

  // The collectives engines need.
  //
  // Collective. Uneven all-to-all (MoE token dispatch): send_counts[j] elements starting at element
  // send_displs[j] of send go to rank j; recv_counts[j] elements from rank j land at element
  // recv_displs[j] of recv. Each of the four arrays has size() entries (InvalidArgument otherwise),
  // and recv_counts[j] must equal rank j's send_counts[rank()] (a mismatch is a usage error the
  // backend may report or not). Not in-place: overlapping send and receive extents are
  // InvalidArgument. All counts zero: a no-op.
  absl::Status AllToAllV(const void* send, absl::Span<const size_t> send_counts,
                         absl::Span<const size_t> send_displs, void* recv,
                         absl::Span<const size_t> recv_counts, absl::Span<const size_t> recv_displs,
                         DataType type);
  // Collective. `root`'s recv (size()*send_count elements) receives rank j's send at
  // j*send_count; recv is not used on other ranks (may be null there). In-place on the root:
  // send == recv + root*send_count.
  absl::Status Gather(const void* send, void* recv, size_t send_count, DataType type, int root);
  // Collective. Block j of `root`'s send (size()*recv_count elements) goes to rank j's recv; send
  // is not used on other ranks (may be null there). In-place on the root:
  // recv == send + root*recv_count.
  absl::Status Scatter(const void* send, void* recv, size_t recv_count, DataType type, int root);
  // Collective. `root`'s recv[i] = op over ranks of send[i]; recv is not used on other ranks (may
  // be null there). In-place on the root: send == recv.
  absl::Status Reduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                      int root);
  // Point to point, both ways at once: sends send_count elements to `dest` and receives
  // recv_count elements from `source` without the deadlock of Send-then-Recv between two ranks
  // that both send first. Matched by Recv/SendRecv on `dest` and Send/SendRecv on `source`.
  // send and recv must not overlap (InvalidArgument).
  absl::Status SendRecv(const void* send, size_t send_count, int dest, void* recv,
                        size_t recv_count, int source, DataType type);

  // Asynchronous operations. Each checks its arguments exactly as its blocking
  // counterpart (errors come back at once), then enqueues the operation and returns a handle
  // (Work). Zero-count collectives return a handle that is already complete. Operations issued on
  // one communicator run in issue order (blocking ones included), and every rank must issue the
  // same collectives in the same order. The buffers must stay valid and untouched until the
  // operation completes. MPI: the nonblocking calls (MPI_Iallreduce, MPI_Isend, ...), on the
  // caller's buffers (a staging copy only for overlaps MPI cannot express); with a timeout (not
  // interruptible) the watchdog watches the operation from the moment it is issued
  // (comm/watch/watchdog.h); Wait also takes a timeout of its own. NCCL: enqueued on
  // `async.stream`. self: runs at once and returns a completed handle. The blocking methods are
  // these plus Wait, except on MPI, where they are the blocking MPI calls (faster for small
  // messages; with an interruptible timeout, nonblocking calls polled against the deadline).
  absl::StatusOr<Work> AllReduceAsync(const void* send, void* recv, size_t count, DataType type,
                                      ReduceOp op, AsyncOptions async = {});
  absl::StatusOr<Work> AllGatherAsync(const void* send, void* recv, size_t send_count,
                                      DataType type, AsyncOptions async = {});
  absl::StatusOr<Work> ReduceScatterAsync(const void* send, void* recv, size_t recv_count,
                                          DataType type, ReduceOp op, AsyncOptions async = {});
  absl::StatusOr<Work> BroadcastAsync(void* buffer, size_t count, DataType type, int root,
                                      AsyncOptions async = {});
  absl::StatusOr<Work> AllToAllAsync(const void* send, void* recv, size_t count, DataType type,
                                     AsyncOptions async = {});
  // Non-blocking send and receive.
  absl::StatusOr<Work> SendAsync(const void* buffer, size_t count, DataType type, int peer,
                                 AsyncOptions async = {});
  absl::StatusOr<Work> RecvAsync(void* buffer, size_t count, DataType type, int peer,
                                 AsyncOptions async = {});
  absl::StatusOr<Work> BarrierAsync(AsyncOptions async = {});
  // The count and displacement arrays are copied: they need not outlive the call.
  absl::StatusOr<Work> AllToAllVAsync(const void* send, absl::Span<const size_t> send_counts,
                                      absl::Span<const size_t> send_displs, void* recv,
                                      absl::Span<const size_t> recv_counts,
                                      absl::Span<const size_t> recv_displs, DataType type,
                                      AsyncOptions async = {});
  absl::StatusOr<Work> GatherAsync(const void* send, void* recv, size_t send_count, DataType type,
                                   int root, AsyncOptions async = {});
  absl::StatusOr<Work> ScatterAsync(const void* send, void* recv, size_t recv_count, DataType type,
                                    int root, AsyncOptions async = {});
  absl::StatusOr<Work> ReduceAsync(const void* send, void* recv, size_t count, DataType type,
                                   ReduceOp op, int root, AsyncOptions async = {});
  absl::StatusOr<Work> SendRecvAsync(const void* send, size_t send_count, int dest, void* recv,
                                     size_t recv_count, int source, DataType type,
                                     AsyncOptions async = {});

  // Any operation from its record (comm/op.h), for callers that choose the operation at run time
  // (a bench, a scheduler): the same checks and semantics as the named method the record's
  // constructor mirrors, e.g. Run(OpArgs::AllReduce(...)) is AllReduce(...) and
  // RunAsync(OpArgs::AllReduce(...), async) is AllReduceAsync(...). Every named method is one of
  // these two calls. A record of split (use Split) or of an unknown operation is InvalidArgument.
  absl::Status Run(const OpArgs& args);
  absl::StatusOr<Work> RunAsync(const OpArgs& args, AsyncOptions async = {});

  // Sets the timeout of the operations issued from now on (CommOptions::timeout; std::nullopt:
  // none), e.g. a long one during start-up and a short one in steady state. Not collective: every
  // rank should set the same. Not while an operation of this communicator runs on another thread;
  // operations already running keep the deadline they started with. A timeout that is zero,
  // negative, infinite or rounds to zero is InvalidArgument naming the communicator; on an
  // aborted communicator, FailedPrecondition. options().timeout reflects the change.
  absl::Status SetTimeout(std::optional<absl::Duration> timeout);

  // The last operations of this communicator (comm/watch/flight_recorder.h). Not collective; the
  // recorder lives as long as the communicator or the last copy of this pointer.
  std::shared_ptr<const FlightRecorder> flight_recorder() const;

  // What runs instead of Abort() when an operation of this communicator times out or fails
  // asynchronously (found by the watchdog, or by an NCCL operation's own polling): e.g. a
  // DeviceMesh aborting every communicator it holds, together (AbortTogether). Empty: Abort().
  // Thread-safe.
  void SetAbortFamily(std::function<void()> abort_family);

  // Stops this communicator: pending and later operations fail (FailedPrecondition). Not
  // collective; idempotent; may be called from any thread. Whether an operation already blocked in
  // the backend is interrupted depends on the backend (see its header).
  virtual absl::Status Abort() = 0;

  // Abort() with a cause: every pending and later operation (Work handles included) fails with
  // Aborted "<op> on axis '<name>': <cause>", where `cause` says what was revoked and why (e.g.
  // DeviceMesh::Revoke gives "mesh 'device_mesh' was revoked: rank 3: all_reduce on axis 'tp'
  // timed out after 2 s (rank 3 of 8)"; empty: "the communicator was revoked"). The first cause
  // wins; a communicator aborted before keeps failing, now naming the cause. For a job whose ranks
  // agreed that a failure happened elsewhere (job::Job::Recover). Not collective; idempotent; may
  // be called from any thread. Returns Abort()'s status.
  absl::Status Revoke(std::string cause);
  // The cause given to Revoke (or RevokeAll), or nullopt. Thread-safe.
  std::optional<std::string> revocation_cause() const;

  // Frees what the backend holds for this communicator (its native communicator, its watchdog
  // registration) while the object itself stays: every later operation fails with
  // FailedPrecondition naming `reason`. For an owner that handed out plain pointers to it and
  // keeps the object alive after it is done with it (DeviceMesh::Comm), so that a stale pointer
  // gets an error instead of freed memory. Returns false where the backend cannot (the default):
  // the owner then destroys it as usual. Called where the destructor would run (collective where
  // that is), on the owner's thread.
  virtual bool Release(std::string_view reason);

  // Buffers. Not collective; usable after Abort(). The defaults serve host-memory backends (MPI,
  // self): heap memory and memcpy; a backend with another memory kind overrides all four.
  //
  // A buffer of `bytes` bytes in memory_kind() memory (uninitialised; zero bytes gives an empty
  // buffer with a null data()). Fails with ResourceExhausted when memory runs out, or with the
  // backend's error (e.g. CUDA's).
  virtual absl::StatusOr<Buffer> AllocateBuffer(size_t bytes);
  // Copies `bytes` bytes from `buffer` (memory_kind() memory) to `host`, or from `host` to
  // `buffer`, and returns when the copy is complete. Null pointers with a non-zero size are
  // InvalidArgument.
  virtual absl::Status CopyToHost(void* host, const void* buffer, size_t bytes);
  virtual absl::Status CopyFromHost(void* buffer, const void* host, size_t bytes);
  // A new one-rank communicator (comm/self.h semantics) with the same memory kind (and, for
  // device memory, the same device) as this one, for groups of size 1. Never fails; thread-safe.
  virtual std::unique_ptr<Communicator> NewSelf(CommOptions options) const;

  // Typed conveniences over host or device spans. Each checks the span sizes against each other and
  // against size() (InvalidArgument "<op> on axis '<name>': <which> buffer holds N elements,
  // expected M" on a mismatch, before any communication), then calls the untyped method. T must be
  // one of the types with a DataTypeOf specialisation; give it explicitly (AllReduce<float>(...)),
  // because spans are not deduced from containers.
  template <typename T>
  absl::Status AllReduce(absl::Span<const T> send, absl::Span<T> recv, ReduceOp op) {
    if (send.size() != recv.size()) {
      return SizeMismatch(OpKind::kAllReduce, "receive", send.size(), recv.size());
    }
    return AllReduce(send.data(), recv.data(), send.size(), DataTypeOf<T>::value, op);
  }
  template <typename T>
  absl::Status AllGather(absl::Span<const T> send, absl::Span<T> recv) {
    if (send.size() * static_cast<size_t>(size()) != recv.size()) {
      return SizeMismatch(OpKind::kAllGather, "receive", send.size() * static_cast<size_t>(size()),
                          recv.size());
    }
    return AllGather(send.data(), recv.data(), send.size(), DataTypeOf<T>::value);
  }
  template <typename T>
  absl::Status ReduceScatter(absl::Span<const T> send, absl::Span<T> recv, ReduceOp op) {
    if (recv.size() * static_cast<size_t>(size()) != send.size()) {
      return SizeMismatch(OpKind::kReduceScatter, "send", recv.size() * static_cast<size_t>(size()),
                          send.size());
    }
    return ReduceScatter(send.data(), recv.data(), recv.size(), DataTypeOf<T>::value, op);
  }
  template <typename T>
  absl::Status Broadcast(absl::Span<T> buffer, int root) {
    return Broadcast(buffer.data(), buffer.size(), DataTypeOf<T>::value, root);
  }
  // send.size() must equal recv.size() and be a multiple of size().
  template <typename T>
  absl::Status AllToAll(absl::Span<const T> send, absl::Span<T> recv) {
    if (send.size() != recv.size()) {
      return SizeMismatch(OpKind::kAllToAll, "receive", send.size(), recv.size());
    }
    const size_t n = static_cast<size_t>(size());
    if (send.size() % n != 0) return NotMultipleOfSize(OpKind::kAllToAll, send.size());
    return AllToAll(send.data(), recv.data(), send.size() / n, DataTypeOf<T>::value);
  }
  template <typename T>
  absl::Status Send(absl::Span<const T> buffer, int peer) {
    return Send(buffer.data(), buffer.size(), DataTypeOf<T>::value, peer);
  }
  template <typename T>
  absl::Status Recv(absl::Span<T> buffer, int peer) {
    return Recv(buffer.data(), buffer.size(), DataTypeOf<T>::value, peer);
  }
  // AllToAllV: every extent (displacement + count) must lie inside its span.
  template <typename T>
  absl::Status AllToAllV(absl::Span<const T> send, absl::Span<const size_t> send_counts,
                         absl::Span<const size_t> send_displs, absl::Span<T> recv,
                         absl::Span<const size_t> recv_counts,
                         absl::Span<const size_t> recv_displs) {
    if (absl::Status s =
            CheckExtents(OpKind::kAllToAllV, "send", send.size(), send_counts, send_displs);
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            CheckExtents(OpKind::kAllToAllV, "receive", recv.size(), recv_counts, recv_displs);
        !s.ok()) {
      return s;
    }
    return AllToAllV(send.data(), send_counts, send_displs, recv.data(), recv_counts, recv_displs,
                     DataTypeOf<T>::value);
  }
  // On the root recv holds size()*send.size() elements; elsewhere recv may be empty.
  template <typename T>
  absl::Status Gather(absl::Span<const T> send, absl::Span<T> recv, int root) {
    if (rank() == root && send.size() * static_cast<size_t>(size()) != recv.size()) {
      return SizeMismatch(OpKind::kGather, "receive", send.size() * static_cast<size_t>(size()),
                          recv.size());
    }
    return Gather(send.data(), recv.data(), send.size(), DataTypeOf<T>::value, root);
  }
  // On the root send holds size()*recv.size() elements; elsewhere send may be empty.
  template <typename T>
  absl::Status Scatter(absl::Span<const T> send, absl::Span<T> recv, int root) {
    if (rank() == root && recv.size() * static_cast<size_t>(size()) != send.size()) {
      return SizeMismatch(OpKind::kScatter, "send", recv.size() * static_cast<size_t>(size()),
                          send.size());
    }
    return Scatter(send.data(), recv.data(), recv.size(), DataTypeOf<T>::value, root);
  }
  // On the root recv holds send.size() elements; elsewhere recv may be empty.
  template <typename T>
  absl::Status Reduce(absl::Span<const T> send, absl::Span<T> recv, ReduceOp op, int root) {
    if (rank() == root && send.size() != recv.size()) {
      return SizeMismatch(OpKind::kReduce, "receive", send.size(), recv.size());
    }
    return Reduce(send.data(), recv.data(), send.size(), DataTypeOf<T>::value, op, root);
  }
  template <typename T>
  absl::Status SendRecv(absl::Span<const T> send, int dest, absl::Span<T> recv, int source) {
    return SendRecv(send.data(), send.size(), dest, recv.data(), recv.size(), source,
                    DataTypeOf<T>::value);
  }

  // Typed asynchronous overloads: the same size checks as the blocking ones, then the
  // untyped *Async method.
  template <typename T>
  absl::StatusOr<Work> AllReduceAsync(absl::Span<const T> send, absl::Span<T> recv, ReduceOp op,
                                      AsyncOptions async = {}) {
    if (send.size() != recv.size()) {
      return SizeMismatch(OpKind::kAllReduce, "receive", send.size(), recv.size());
    }
    return AllReduceAsync(send.data(), recv.data(), send.size(), DataTypeOf<T>::value, op, async);
  }
  template <typename T>
  absl::StatusOr<Work> AllGatherAsync(absl::Span<const T> send, absl::Span<T> recv,
                                      AsyncOptions async = {}) {
    if (send.size() * static_cast<size_t>(size()) != recv.size()) {
      return SizeMismatch(OpKind::kAllGather, "receive", send.size() * static_cast<size_t>(size()),
                          recv.size());
    }
    return AllGatherAsync(send.data(), recv.data(), send.size(), DataTypeOf<T>::value, async);
  }
  template <typename T>
  absl::StatusOr<Work> ReduceScatterAsync(absl::Span<const T> send, absl::Span<T> recv, ReduceOp op,
                                          AsyncOptions async = {}) {
    if (recv.size() * static_cast<size_t>(size()) != send.size()) {
      return SizeMismatch(OpKind::kReduceScatter, "send", recv.size() * static_cast<size_t>(size()),
                          send.size());
    }
    return ReduceScatterAsync(send.data(), recv.data(), recv.size(), DataTypeOf<T>::value, op,
                              async);
  }
  template <typename T>
  absl::StatusOr<Work> BroadcastAsync(absl::Span<T> buffer, int root, AsyncOptions async = {}) {
    return BroadcastAsync(buffer.data(), buffer.size(), DataTypeOf<T>::value, root, async);
  }
  template <typename T>
  absl::StatusOr<Work> AllToAllAsync(absl::Span<const T> send, absl::Span<T> recv,
                                     AsyncOptions async = {}) {
    if (send.size() != recv.size()) {
      return SizeMismatch(OpKind::kAllToAll, "receive", send.size(), recv.size());
    }
    const size_t n = static_cast<size_t>(size());
    if (send.size() % n != 0) return NotMultipleOfSize(OpKind::kAllToAll, send.size());
    return AllToAllAsync(send.data(), recv.data(), send.size() / n, DataTypeOf<T>::value, async);
  }
  template <typename T>
  absl::StatusOr<Work> SendAsync(absl::Span<const T> buffer, int peer, AsyncOptions async = {}) {
    return SendAsync(buffer.data(), buffer.size(), DataTypeOf<T>::value, peer, async);
  }
  template <typename T>
  absl::StatusOr<Work> RecvAsync(absl::Span<T> buffer, int peer, AsyncOptions async = {}) {
    return RecvAsync(buffer.data(), buffer.size(), DataTypeOf<T>::value, peer, async);
  }
  template <typename T>
  absl::StatusOr<Work> SendRecvAsync(absl::Span<const T> send, int dest, absl::Span<T> recv,
                                     int source, AsyncOptions async = {}) {
    return SendRecvAsync(send.data(), send.size(), dest, recv.data(), recv.size(), source,
                         DataTypeOf<T>::value, async);
  }

 protected:
  Communicator();

  // OK while this communicator may run operations; otherwise the error every operation `op`
  // returns (FailedPrecondition after Abort() or a timeout). Called first by every public
  // operation. Default: always usable.
  virtual absl::Status CheckUsable(std::string_view op) const;

  // The backend hooks, called by the public operations above after the checks: the communicator is
  // usable, DataType and ReduceOp values are known, buffers are non-null where their count is
  // non-zero, roots and peers lie in [0, size()), count arrays have size() entries, and
  // collectives have a non-zero count (zero-count collectives never reach the hooks; zero-count
  // point-to-point operations and Barrier do). DoSplit also checks the color (the MPI backend does
  // so collectively); DoSplitAgreed's colors are already checked (default: DoSplit).
  virtual absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                                CommOptions options) = 0;
  virtual absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreed(std::optional<int> color,
                                                                      int key, CommOptions options);
  // SplitAgreed by members (checked as that method says). Default: DoSplitAgreed with color
  // members[0] and key the caller's place in `members`.
  virtual absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreedMembers(
      absl::Span<const int> members, CommOptions options);
  // SplitAgreedMany (each entry checked as SplitAgreed by members). Default: DoSplitAgreedMembers
  // for each entry in order.
  virtual absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> DoSplitAgreedMany(
      absl::Span<const AgreedSplit> splits);
  // Runs one checked operation (`args`, comm/op.h; never split) to completion. A backend
  // overrides either this (one switch over args.op, as MPI does) or the per-operation hooks below,
  // which the default calls.
  virtual absl::Status DoRun(const OpArgs& args);
  // The per-operation hooks. The defaults are Unimplemented, naming the backend and the operation.
  virtual absl::Status DoAllReduce(const void* send, void* recv, size_t count, DataType type,
                                   ReduceOp op);
  virtual absl::Status DoAllGather(const void* send, void* recv, size_t send_count, DataType type);
  virtual absl::Status DoReduceScatter(const void* send, void* recv, size_t recv_count,
                                       DataType type, ReduceOp op);
  virtual absl::Status DoBroadcast(void* buffer, size_t count, DataType type, int root);
  virtual absl::Status DoAllToAll(const void* send, void* recv, size_t count, DataType type);
  virtual absl::Status DoSend(const void* buffer, size_t count, DataType type, int peer);
  virtual absl::Status DoRecv(void* buffer, size_t count, DataType type, int peer);
  virtual absl::Status DoBarrier();
  virtual absl::Status DoAllToAllV(const void* send, absl::Span<const size_t> send_counts,
                                   absl::Span<const size_t> send_displs, void* recv,
                                   absl::Span<const size_t> recv_counts,
                                   absl::Span<const size_t> recv_displs, DataType type);
  virtual absl::Status DoGather(const void* send, void* recv, size_t send_count, DataType type,
                                int root);
  virtual absl::Status DoScatter(const void* send, void* recv, size_t recv_count, DataType type,
                                 int root);
  virtual absl::Status DoReduce(const void* send, void* recv, size_t count, DataType type,
                                ReduceOp op, int root);
  virtual absl::Status DoSendRecv(const void* send, size_t send_count, int dest, void* recv,
                                  size_t recv_count, int source, DataType type);

  // Enqueues one checked operation (`args`, comm/op.h; the same guarantees as the blocking hooks;
  // zero-count collectives never get here) and returns its handle. Default: runs the blocking hook
  // and returns a completed handle (right for backends whose operations complete on return).
  virtual absl::StatusOr<Work> DoAsync(const OpArgs& args, const AsyncOptions& async);

  // Changes options().timeout (checked already). Default: Unimplemented naming the backend.
  virtual absl::Status DoSetTimeout(std::optional<absl::Duration> timeout);
  // Tests the asynchronous operations still pending, without blocking, so that the flight
  // recorder learns which have ended; called by the watchdog thread when an asynchronous
  // operation's deadline has passed. Default: nothing.
  virtual void PollOutstanding() {}
  // An error the backend found without an operation asking (a peer died, the network failed):
  // NCCL's ncclCommGetAsyncError. Called by the watchdog thread on every tick for communicators
  // watched with WatchMode::kSelfPolling; never blocks. Default: OK.
  virtual absl::Status PollAsyncError() { return absl::OkStatus(); }
  // Aborts `family` together; every entry is of this backend (the same backend() as this one,
  // which is one of them). Called by AbortTogether. Default: Abort() on each, in order. A backend
  // that must abort related communicators in one call (NCCL: a group of ncclCommAbort calls for
  // communicators that share resources after a split) overrides it.
  virtual absl::Status AbortGroup(absl::Span<Communicator* const> family);
  // Runs the abort family (SetAbortFamily), or Abort() when there is none: for a backend that
  // finds a timeout or an asynchronous error itself.
  void AbortFamilyOrSelf();

  // How the watchdog watches a communicator of this backend.
  enum class WatchMode : uint8_t {
    // Operations are run as blocking calls the backend cannot interrupt (MPI): with a timeout,
    // and without options().interruptible, every operation is recorded with a deadline that the
    // watchdog enforces.
    kBlocking,
    // Blocking operations poll and enforce their own deadline (NCCL); the watchdog enforces the
    // deadline of asynchronous operations (nobody may be waiting for them) and polls
    // PollAsyncError() on every tick, with or without a timeout.
    kSelfPolling,
  };
  // For backends whose operations the watchdog watches (comm/watch/watchdog.h): registers this
  // communicator (call at the end of the constructor; `side` may be null: no exchange of records
  // and no end of the job, the report has this rank's records only) and unregisters it (call
  // first in the destructor).
  void Watch(internal::SideChannel* side, WatchMode mode = WatchMode::kBlocking);
  void Unwatch();
  bool watched() const { return watched_; }
  // The recorder (created on first use, with options().flight_recorder_entries).
  const std::shared_ptr<FlightRecorder>& recorder() const;

 private:
  friend class internal::Watchdog;
  friend class Work::Impl;
  friend absl::Status AbortTogether(absl::Span<Communicator* const> comms);
  friend absl::Status RevokeAll(absl::Span<Communicator* const> comms, std::string_view cause);

  // `status` (an operation's failure), or Aborted naming the cause once revoked (Revoke). Only
  // failures pay for it: one atomic load.
  absl::Status Revoked(std::string_view op, absl::Status status) const;

  // Records the start of a checked operation (`async`: enqueued through a *Async call); returns
  // its sequence number.
  uint64_t BeginRecord(const OpArgs& args, bool async = false);
  // Records its end; returns `status`.
  absl::Status EndRecord(uint64_t seq, absl::Status status);

  // InvalidArgument naming the operation, this communicator's name and the two sizes.
  absl::Status SizeMismatch(OpKind op, std::string_view which, size_t expected, size_t got) const;
  // InvalidArgument: a buffer of `got` elements cannot be cut into size() equal blocks.
  absl::Status NotMultipleOfSize(OpKind op, size_t got) const;
  // InvalidArgument unless counts and displs have size() entries and every block
  // [displs[j], displs[j] + counts[j]) lies within `elements`.
  absl::Status CheckExtents(OpKind op, std::string_view which, size_t elements,
                            absl::Span<const size_t> counts, absl::Span<const size_t> displs) const;
  // The guards of every operation (state, then arguments), shared by the blocking and the
  // asynchronous entry points. *empty: a zero-count collective that needs no communication.
  absl::Status Guard(const OpArgs& args, bool* empty) const;
  // With options().check_arguments: the exchange of arguments across ranks described there.
  absl::Status CheckAcrossRanks(const OpArgs& args);

  std::shared_ptr<const int> lifetime_ = std::make_shared<const int>(0);
  // Shared with the Work handles, so that a handle that fails after a revocation names its cause.
  const std::shared_ptr<internal::Revocation> revocation_;
  mutable std::shared_ptr<FlightRecorder> recorder_;
  bool watched_ = false;
  WatchMode watch_mode_ = WatchMode::kBlocking;
  mutable std::mutex family_mu_;
  std::function<void()> abort_family_;  // guarded by family_mu_
};

// Aborts every communicator of `comms` (null entries skipped), e.g. all those of one DeviceMesh:
// those of one backend in one Communicator::AbortGroup call, so that NCCL communicators split from
// one another are aborted in one group, as NCCL requires. Not collective; may be called from any
// thread; idempotent. Returns the first error.
absl::Status AbortTogether(absl::Span<Communicator* const> comms);

// Revokes every communicator of `comms` (null entries skipped) with the one `cause`
// (Communicator::Revoke), aborting them together as AbortTogether does: each records the cause
// before any is aborted, so that an operation of any of them that the abort ends names it. Not
// collective; may be called from any thread; idempotent. Returns the first error.
absl::Status RevokeAll(absl::Span<Communicator* const> comms, std::string_view cause);

}  // namespace nmesh::comm

#endif  // NMESH_COMM_COMMUNICATOR_H_
