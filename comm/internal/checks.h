// Helpers shared by the communicator backends (self, MPI, NCCL): argument checks that every backend
// must make the same way, the messages for timeouts and aborted communicators, and the polling
// pause used while waiting on a nonblocking operation. Not part of the installed API.
//
//   absl::Status MyComm::Broadcast(void* buffer, size_t count, DataType type, int root) {
//     NMESH_RETURN_IF_ERROR(internal::CheckBroadcast(*this, buffer, count, root));
//     ...
//   }
#ifndef NMESH_COMM_INTERNAL_CHECKS_H_
#define NMESH_COMM_INTERNAL_CHECKS_H_

#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/op.h"

namespace nmesh::comm::internal {

// The name of an operation in messages: a communication operation (its name in the op table,
// comm/op.h) or one of the buffer operations below. Converts implicitly from either.
struct OpName {
  constexpr OpName(OpKind op) : text(OpKindName(op)) {}    // NOLINT(google-explicit-constructor)
  constexpr OpName(std::string_view name) : text(name) {}  // NOLINT(google-explicit-constructor)
  constexpr OpName(const char* name) : text(name) {}       // NOLINT(google-explicit-constructor)
  OpName(const std::string& name) : text(name) {}          // NOLINT(google-explicit-constructor)
  std::string_view text;

  // Formats as its text with absl::StrFormat's %s.
  friend absl::FormatConvertResult<absl::FormatConversionCharSet::kString> AbslFormatConvert(
      const OpName& op, const absl::FormatConversionSpec&, absl::FormatSink* sink) {
    sink->Append(absl::string_view(op.text.data(), op.text.size()));
    return {true};
  }
};

// The buffer operations, which are not communication and have no entry in the op table.
inline constexpr std::string_view kAllocate = "allocate";
inline constexpr std::string_view kCopyToHost = "copy_to_host";
inline constexpr std::string_view kCopyFromHost = "copy_from_host";

// "<op> on axis '<name>'", the prefix of every message about an operation on `comm`.
std::string OpContext(const Communicator& comm, OpName op);

// "2 s", "1.5 s", "250 ms": a timeout as people write it.
std::string FormatTimeout(absl::Duration timeout);

// DeadlineExceeded "<op> on axis '<name>' timed out after <timeout> (rank r of n)".
absl::Status TimeoutError(const Communicator& comm, OpName op);
// FailedPrecondition "<op> on axis '<name>': the communicator was aborted (<why>) (rank r of n)".
absl::Status AbortedError(const Communicator& comm, OpName op, std::string_view why);

// `status` with its message prefixed by "<op> on axis '<name>': "; OK stays OK. For backend errors
// (MPI, NCCL, CUDA) that know the call but not the operation.
absl::Status WithContext(const Communicator& comm, OpName op, const absl::Status& status);

// The argument checks of each operation (InvalidArgument, messages start with OpContext). They
// check null buffers with a non-zero count, roots and peers against size(), overlapping AllToAll
// buffers and negative Split colors; sizes in bytes come from DataTypeSize(type).
absl::Status CheckSplit(const Communicator& comm, std::optional<int> color);
// A member list of SplitAgreed: ranks of `comm`, each once, the caller among them (or empty).
absl::Status CheckSplitMembers(const Communicator& comm, absl::Span<const int> members);
absl::Status CheckAllReduce(const Communicator& comm, const void* send, void* recv, size_t count);
absl::Status CheckAllGather(const Communicator& comm, const void* send, void* recv, size_t count);
absl::Status CheckReduceScatter(const Communicator& comm, const void* send, void* recv,
                                size_t count);
absl::Status CheckBroadcast(const Communicator& comm, void* buffer, size_t count, int root);
absl::Status CheckAllToAll(const Communicator& comm, const void* send, void* recv, size_t count,
                           DataType type);
absl::Status CheckPointToPoint(const Communicator& comm, OpName op, const void* buffer,
                               size_t count, int peer);
// Values outside the DataType / ReduceOp enums (a cast from a bad integer).
absl::Status CheckDataType(const Communicator& comm, OpName op, DataType type);
absl::Status CheckReduceOp(const Communicator& comm, OpName op, ReduceOp reduce_op);
// all_to_all_v: four arrays of size() entries, non-null buffers where their counts are non-zero,
// disjoint send and receive extents. Sets *total_send / *total_recv to the sums of the counts.
absl::Status CheckAllToAllV(const Communicator& comm, const void* send,
                            absl::Span<const size_t> send_counts,
                            absl::Span<const size_t> send_displs, const void* recv,
                            absl::Span<const size_t> recv_counts,
                            absl::Span<const size_t> recv_displs, DataType type, size_t* total_send,
                            size_t* total_recv);
// gather / scatter: `root` in range; the per-rank buffer (`mine`, `count` elements) non-null;
// on the root the whole buffer (`all`, size()*count elements) non-null, and either the in-place
// layout (mine == all + root*count) or disjoint from `mine`.
absl::Status CheckRooted(const Communicator& comm, OpKind op, const void* mine, const void* all,
                         size_t count, DataType type, int root);
// reduce: `root` in range, send non-null, on the root recv non-null and equal to or disjoint
// from send.
absl::Status CheckReduce(const Communicator& comm, const void* send, const void* recv, size_t count,
                         DataType type, int root);
// sendrecv: peers in range, non-null buffers, disjoint buffers.
absl::Status CheckSendRecv(const Communicator& comm, const void* send, size_t send_count, int dest,
                           const void* recv, size_t recv_count, int source, DataType type);
// The buffer copies: null pointers with a non-zero size.
absl::Status CheckCopy(const Communicator& comm, OpName op, const void* dst, const void* src,
                       size_t bytes);
// Unimplemented unless `comm` uses host memory: the default buffer methods of Communicator serve
// host memory only.
absl::Status CheckHostMemory(const Communicator& comm, OpName op);

// Whether a communicator has been aborted, and why (the first reason wins). Mark() and Check() may
// be called from any thread.
class AbortState {
 public:
  bool aborted() const { return aborted_.load(std::memory_order_acquire); }
  // Records the abort; returns false (and keeps the old reason) if it was already aborted.
  bool Mark(std::string reason);
  // OK while not aborted; afterwards AbortedError(comm, op, reason).
  absl::Status Check(const Communicator& comm, OpName op) const;

 private:
  std::atomic<bool> aborted_{false};
  mutable std::mutex mu_;
  std::string reason_;  // guarded by mu_
};

// Whether a communicator has been revoked (Communicator::Revoke), and why (the first cause wins).
// Mark() and the readers may be called from any thread.
class Revocation {
 public:
  bool revoked() const { return revoked_.load(std::memory_order_acquire); }
  // Records the revocation; returns false (and keeps the old cause) if it was already revoked.
  bool Mark(std::string cause);
  // The cause; empty before Mark().
  std::string cause() const;
  // `status` while not revoked or when OK; afterwards Aborted "<context>: <cause>".
  absl::Status Apply(std::string_view context, absl::Status status) const;

 private:
  std::atomic<bool> revoked_{false};
  mutable std::mutex mu_;
  std::string cause_;  // guarded by mu_
};

// A point in time after which a waiting operation gives up; never expires without a timeout.
class Deadline {
 public:
  explicit Deadline(std::optional<absl::Duration> timeout)
      : at_(timeout ? absl::Now() + *timeout : absl::InfiniteFuture()) {}
  bool Expired() const { return absl::Now() >= at_; }

 private:
  absl::Time at_;
};

// Paces a polling loop: for the first 10 ms it only yields the CPU between polls (an MPI
// nonblocking collective progresses only while it is polled, so a sleep there stalls the peers
// too: a blocking MPI call spins the same way), then it sleeps for growing intervals up to 1 ms,
// so that a long wait (a late peer) on ranks oversubscribing a few cores lets the others progress.
// One per wait; not thread-safe.
class PollPacer {
 public:
  void Pause();

 private:
  absl::Time spin_until_ = absl::InfinitePast();  // set by the first Pause
  absl::Duration sleep_ = absl::Microseconds(10);
};

}  // namespace nmesh::comm::internal

#endif  // NMESH_COMM_INTERNAL_CHECKS_H_
