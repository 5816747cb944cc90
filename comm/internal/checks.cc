#include "nmesh/comm/internal/checks.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace nmesh::comm::internal {
namespace {

std::string RankSuffix(const Communicator& comm) {
  return absl::StrFormat("(rank %d of %d)", comm.rank(), comm.size());
}

absl::Status Invalid(const Communicator& comm, OpName op, std::string_view detail) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: %s %s", OpContext(comm, op), detail, RankSuffix(comm)));
}

absl::Status CheckNotNull(const Communicator& comm, OpName op, std::string_view which,
                          const void* buffer, size_t count) {
  if (buffer != nullptr || count == 0) return absl::OkStatus();
  return Invalid(comm, op, absl::StrFormat("%s buffer is null but the count is %d", which, count));
}

absl::Status CheckRankArg(const Communicator& comm, OpName op, std::string_view role, int rank) {
  if (rank >= 0 && rank < comm.size()) return absl::OkStatus();
  return Invalid(comm, op,
                 absl::StrFormat("%s %d is out of range [0, %d)", role, rank, comm.size()));
}

bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  if (a_bytes == 0 || b_bytes == 0) return false;
  const auto x = reinterpret_cast<uintptr_t>(a);
  const auto y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

// The byte range [*begin, *end) covered by the non-empty blocks of an all_to_all_v buffer, and the
// sum of the counts.
void Extent(absl::Span<const size_t> counts, absl::Span<const size_t> displs, size_t* begin,
            size_t* end, size_t* total) {
  *begin = SIZE_MAX;
  *end = 0;
  *total = 0;
  for (size_t j = 0; j < counts.size(); ++j) {
    if (counts[j] == 0) continue;
    *total += counts[j];
    *begin = std::min(*begin, displs[j]);
    *end = std::max(*end, displs[j] + counts[j]);
  }
  if (*total == 0) *begin = 0;
}

}  // namespace

std::string OpContext(const Communicator& comm, OpName op) {
  return absl::StrFormat("%s on axis '%s'", op.text, comm.options().name);
}

std::string FormatTimeout(absl::Duration timeout) {
  const double seconds = absl::ToDoubleSeconds(timeout);
  if (seconds >= 1.0 || seconds == 0.0) {
    if (seconds == std::floor(seconds))
      return absl::StrFormat("%d s", static_cast<int64_t>(seconds));
    return absl::StrFormat("%g s", seconds);
  }
  return absl::StrFormat("%g ms", seconds * 1000.0);
}

absl::Status TimeoutError(const Communicator& comm, OpName op) {
  const absl::Duration timeout = comm.options().timeout.value_or(absl::ZeroDuration());
  return absl::DeadlineExceededError(absl::StrFormat(
      "%s timed out after %s %s", OpContext(comm, op), FormatTimeout(timeout), RankSuffix(comm)));
}

absl::Status AbortedError(const Communicator& comm, OpName op, std::string_view why) {
  return absl::FailedPreconditionError(absl::StrFormat("%s: the communicator was aborted (%s) %s",
                                                       OpContext(comm, op), why, RankSuffix(comm)));
}

absl::Status WithContext(const Communicator& comm, OpName op, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrFormat("%s: %s", OpContext(comm, op), status.message()));
}

bool AbortState::Mark(std::string reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (aborted_.load(std::memory_order_relaxed)) return false;
  reason_ = std::move(reason);
  aborted_.store(true, std::memory_order_release);
  return true;
}

absl::Status AbortState::Check(const Communicator& comm, OpName op) const {
  if (!aborted()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  return AbortedError(comm, op, reason_);
}

bool Revocation::Mark(std::string cause) {
  std::lock_guard<std::mutex> lock(mu_);
  if (revoked_.load(std::memory_order_relaxed)) return false;
  cause_ = cause.empty() ? "the communicator was revoked" : std::move(cause);
  revoked_.store(true, std::memory_order_release);
  return true;
}

std::string Revocation::cause() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cause_;
}

absl::Status Revocation::Apply(std::string_view context, absl::Status status) const {
  if (status.ok() || !revoked()) return status;
  std::lock_guard<std::mutex> lock(mu_);
  return absl::AbortedError(absl::StrFormat("%s: %s", context, cause_));
}

absl::Status CheckSplit(const Communicator& comm, std::optional<int> color) {
  if (!color || *color >= 0) return absl::OkStatus();
  return Invalid(comm, OpKind::kSplit,
                 absl::StrFormat("color must be non-negative or absent, got %d", *color));
}

absl::Status CheckSplitMembers(const Communicator& comm, absl::Span<const int> members) {
  if (members.empty()) return absl::OkStatus();
  std::vector<int> sorted(members.begin(), members.end());
  std::sort(sorted.begin(), sorted.end());
  if (sorted.front() < 0 || sorted.back() >= comm.size()) {
    return Invalid(comm, OpKind::kSplit,
                   absl::StrFormat("members must be ranks in [0, %d), got %d", comm.size(),
                                   sorted.front() < 0 ? sorted.front() : sorted.back()));
  }
  if (auto twice = std::adjacent_find(sorted.begin(), sorted.end()); twice != sorted.end()) {
    return Invalid(comm, OpKind::kSplit, absl::StrFormat("member %d is listed twice", *twice));
  }
  if (!std::binary_search(sorted.begin(), sorted.end(), comm.rank())) {
    return Invalid(comm, OpKind::kSplit,
                   "members must include the calling rank (a rank that joins none passes none)");
  }
  return absl::OkStatus();
}

absl::Status CheckAllReduce(const Communicator& comm, const void* send, void* recv, size_t count) {
  if (auto s = CheckNotNull(comm, OpKind::kAllReduce, "send", send, count); !s.ok()) return s;
  return CheckNotNull(comm, OpKind::kAllReduce, "receive", recv, count);
}

absl::Status CheckAllGather(const Communicator& comm, const void* send, void* recv, size_t count) {
  if (auto s = CheckNotNull(comm, OpKind::kAllGather, "send", send, count); !s.ok()) return s;
  return CheckNotNull(comm, OpKind::kAllGather, "receive", recv, count);
}

absl::Status CheckReduceScatter(const Communicator& comm, const void* send, void* recv,
                                size_t count) {
  if (auto s = CheckNotNull(comm, OpKind::kReduceScatter, "send", send, count); !s.ok()) return s;
  return CheckNotNull(comm, OpKind::kReduceScatter, "receive", recv, count);
}

absl::Status CheckBroadcast(const Communicator& comm, void* buffer, size_t count, int root) {
  if (auto s = CheckRankArg(comm, OpKind::kBroadcast, "root", root); !s.ok()) return s;
  return CheckNotNull(comm, OpKind::kBroadcast, "the", buffer, count);
}

absl::Status CheckAllToAll(const Communicator& comm, const void* send, void* recv, size_t count,
                           DataType type) {
  if (auto s = CheckNotNull(comm, OpKind::kAllToAll, "send", send, count); !s.ok()) return s;
  if (auto s = CheckNotNull(comm, OpKind::kAllToAll, "receive", recv, count); !s.ok()) return s;
  if (count == 0) return absl::OkStatus();
  const size_t bytes = count * static_cast<size_t>(comm.size()) * DataTypeSize(type);
  const auto s = reinterpret_cast<uintptr_t>(send);
  const auto r = reinterpret_cast<uintptr_t>(recv);
  if (s < r + bytes && r < s + bytes) {
    return Invalid(comm, OpKind::kAllToAll,
                   "send and receive buffers overlap (not supported in place)");
  }
  return absl::OkStatus();
}

absl::Status CheckPointToPoint(const Communicator& comm, OpName op, const void* buffer,
                               size_t count, int peer) {
  if (auto s = CheckRankArg(comm, op, "peer", peer); !s.ok()) return s;
  return CheckNotNull(comm, op, "the", buffer, count);
}

absl::Status CheckDataType(const Communicator& comm, OpName op, DataType type) {
  if (DataTypeSize(type) != 0) return absl::OkStatus();
  return Invalid(comm, op, absl::StrFormat("unknown DataType value %d", static_cast<int>(type)));
}

absl::Status CheckReduceOp(const Communicator& comm, OpName op, ReduceOp reduce_op) {
  if (ReduceOpName(reduce_op) != "unknown") return absl::OkStatus();
  return Invalid(comm, op,
                 absl::StrFormat("unknown ReduceOp value %d", static_cast<int>(reduce_op)));
}

absl::Status CheckAllToAllV(const Communicator& comm, const void* send,
                            absl::Span<const size_t> send_counts,
                            absl::Span<const size_t> send_displs, const void* recv,
                            absl::Span<const size_t> recv_counts,
                            absl::Span<const size_t> recv_displs, DataType type, size_t* total_send,
                            size_t* total_recv) {
  const size_t n = static_cast<size_t>(comm.size());
  const std::pair<std::string_view, size_t> arrays[] = {{"send_counts", send_counts.size()},
                                                        {"send_displs", send_displs.size()},
                                                        {"recv_counts", recv_counts.size()},
                                                        {"recv_displs", recv_displs.size()}};
  for (const auto& [name, entries] : arrays) {
    if (entries != n) {
      return Invalid(
          comm, OpKind::kAllToAllV,
          absl::StrFormat("%s has %d entries, expected one per rank (%d)", name, entries, n));
    }
  }
  size_t send_begin = 0, send_end = 0, recv_begin = 0, recv_end = 0;
  Extent(send_counts, send_displs, &send_begin, &send_end, total_send);
  Extent(recv_counts, recv_displs, &recv_begin, &recv_end, total_recv);
  if (auto s = CheckNotNull(comm, OpKind::kAllToAllV, "send", send, *total_send); !s.ok()) return s;
  if (auto s = CheckNotNull(comm, OpKind::kAllToAllV, "receive", recv, *total_recv); !s.ok())
    return s;
  const size_t e = DataTypeSize(type);
  if (Overlap(static_cast<const std::byte*>(send) + send_begin * e, (send_end - send_begin) * e,
              static_cast<const std::byte*>(recv) + recv_begin * e, (recv_end - recv_begin) * e)) {
    return Invalid(comm, OpKind::kAllToAllV,
                   "send and receive buffers overlap (not supported in place)");
  }
  return absl::OkStatus();
}

absl::Status CheckRooted(const Communicator& comm, OpKind op, const void* mine, const void* all,
                         size_t count, DataType type, int root) {
  if (auto s = CheckRankArg(comm, op, "root", root); !s.ok()) return s;
  const bool gather = op == OpKind::kGather;
  if (auto s = CheckNotNull(comm, op, gather ? "send" : "receive", mine, count); !s.ok()) return s;
  if (comm.rank() != root || count == 0) return absl::OkStatus();
  if (auto s = CheckNotNull(comm, op, gather ? "receive" : "send", all, count); !s.ok()) return s;
  const size_t block = count * DataTypeSize(type);
  if (mine == static_cast<const std::byte*>(all) + block * static_cast<size_t>(root)) {
    return absl::OkStatus();  // the in-place layout
  }
  if (Overlap(mine, block, all, block * static_cast<size_t>(comm.size()))) {
    return Invalid(comm, op,
                   absl::StrFormat("send and receive buffers overlap other than in place (in "
                                   "place, the root's %s buffer is block %d of its %s buffer)",
                                   gather ? "send" : "receive", root, gather ? "receive" : "send"));
  }
  return absl::OkStatus();
}

absl::Status CheckReduce(const Communicator& comm, const void* send, const void* recv, size_t count,
                         DataType type, int root) {
  if (auto s = CheckRankArg(comm, OpKind::kReduce, "root", root); !s.ok()) return s;
  if (auto s = CheckNotNull(comm, OpKind::kReduce, "send", send, count); !s.ok()) return s;
  if (comm.rank() != root || count == 0) return absl::OkStatus();
  if (auto s = CheckNotNull(comm, OpKind::kReduce, "receive", recv, count); !s.ok()) return s;
  const size_t bytes = count * DataTypeSize(type);
  if (send != recv && Overlap(send, bytes, recv, bytes)) {
    return Invalid(comm, OpKind::kReduce,
                   "send and receive buffers overlap other than in place (send == "
                   "receive)");
  }
  return absl::OkStatus();
}

absl::Status CheckSendRecv(const Communicator& comm, const void* send, size_t send_count, int dest,
                           const void* recv, size_t recv_count, int source, DataType type) {
  if (auto s = CheckRankArg(comm, OpKind::kSendRecv, "destination", dest); !s.ok()) return s;
  if (auto s = CheckRankArg(comm, OpKind::kSendRecv, "source", source); !s.ok()) return s;
  if (auto s = CheckNotNull(comm, OpKind::kSendRecv, "send", send, send_count); !s.ok()) return s;
  if (auto s = CheckNotNull(comm, OpKind::kSendRecv, "receive", recv, recv_count); !s.ok())
    return s;
  const size_t e = DataTypeSize(type);
  if (Overlap(send, send_count * e, recv, recv_count * e)) {
    return Invalid(comm, OpKind::kSendRecv, "send and receive buffers overlap");
  }
  return absl::OkStatus();
}

absl::Status CheckCopy(const Communicator& comm, OpName op, const void* dst, const void* src,
                       size_t bytes) {
  if (auto s = CheckNotNull(comm, op, "destination", dst, bytes); !s.ok()) return s;
  return CheckNotNull(comm, op, "source", src, bytes);
}

absl::Status CheckHostMemory(const Communicator& comm, OpName op) {
  if (comm.memory_kind() == MemoryKind::kHost) return absl::OkStatus();
  return absl::UnimplementedError(
      absl::StrFormat("%s: the %s backend does not provide buffers of its memory kind",
                      OpContext(comm, op), comm.backend()));
}

void PollPacer::Pause() {
  constexpr absl::Duration kSpin = absl::Milliseconds(10);
  constexpr absl::Duration kMaxSleep = absl::Milliseconds(1);
  const absl::Time now = absl::Now();
  if (spin_until_ == absl::InfinitePast()) spin_until_ = now + kSpin;
  if (now < spin_until_) {
    std::this_thread::yield();
    return;
  }
  absl::SleepFor(sleep_);
  sleep_ = std::min(sleep_ * 2, kMaxSleep);
}

}  // namespace nmesh::comm::internal
