#include "nmesh/comm/internal/checks.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"

namespace nmesh::comm::internal {
namespace {

std::string RankSuffix(const Communicator& comm) {
  return absl::StrFormat("(rank %d of %d)", comm.rank(), comm.size());
}

absl::Status Invalid(const Communicator& comm, std::string_view op, std::string_view detail) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: %s %s", OpContext(comm, op), detail, RankSuffix(comm)));
}

absl::Status CheckNotNull(const Communicator& comm, std::string_view op, std::string_view which,
                          const void* buffer, size_t count) {
  if (buffer != nullptr || count == 0) return absl::OkStatus();
  return Invalid(comm, op, absl::StrFormat("%s buffer is null but the count is %d", which, count));
}

absl::Status CheckRankArg(const Communicator& comm, std::string_view op, std::string_view role,
                          int rank) {
  if (rank >= 0 && rank < comm.size()) return absl::OkStatus();
  return Invalid(comm, op,
                 absl::StrFormat("%s %d is out of range [0, %d)", role, rank, comm.size()));
}

}  // namespace

std::string OpContext(const Communicator& comm, std::string_view op) {
  return absl::StrFormat("%s on axis '%s'", op, comm.options().name);
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

absl::Status TimeoutError(const Communicator& comm, std::string_view op) {
  const absl::Duration timeout = comm.options().timeout.value_or(absl::ZeroDuration());
  return absl::DeadlineExceededError(absl::StrFormat(
      "%s timed out after %s %s", OpContext(comm, op), FormatTimeout(timeout), RankSuffix(comm)));
}

absl::Status AbortedError(const Communicator& comm, std::string_view op, std::string_view why) {
  return absl::FailedPreconditionError(absl::StrFormat("%s: the communicator was aborted (%s) %s",
                                                       OpContext(comm, op), why, RankSuffix(comm)));
}

absl::Status WithContext(const Communicator& comm, std::string_view op,
                         const absl::Status& status) {
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

absl::Status AbortState::Check(const Communicator& comm, std::string_view op) const {
  if (!aborted()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  return AbortedError(comm, op, reason_);
}

absl::Status CheckSplit(const Communicator& comm, std::optional<int> color) {
  if (!color || *color >= 0) return absl::OkStatus();
  return Invalid(comm, kSplit,
                 absl::StrFormat("color must be non-negative or absent, got %d", *color));
}

absl::Status CheckAllReduce(const Communicator& comm, const void* send, void* recv, size_t count) {
  if (auto s = CheckNotNull(comm, kAllReduce, "send", send, count); !s.ok()) return s;
  return CheckNotNull(comm, kAllReduce, "receive", recv, count);
}

absl::Status CheckAllGather(const Communicator& comm, const void* send, void* recv, size_t count) {
  if (auto s = CheckNotNull(comm, kAllGather, "send", send, count); !s.ok()) return s;
  return CheckNotNull(comm, kAllGather, "receive", recv, count);
}

absl::Status CheckReduceScatter(const Communicator& comm, const void* send, void* recv,
                                size_t count) {
  if (auto s = CheckNotNull(comm, kReduceScatter, "send", send, count); !s.ok()) return s;
  return CheckNotNull(comm, kReduceScatter, "receive", recv, count);
}

absl::Status CheckBroadcast(const Communicator& comm, void* buffer, size_t count, int root) {
  if (auto s = CheckRankArg(comm, kBroadcast, "root", root); !s.ok()) return s;
  return CheckNotNull(comm, kBroadcast, "the", buffer, count);
}

absl::Status CheckAllToAll(const Communicator& comm, const void* send, void* recv, size_t count,
                           DataType type) {
  if (auto s = CheckNotNull(comm, kAllToAll, "send", send, count); !s.ok()) return s;
  if (auto s = CheckNotNull(comm, kAllToAll, "receive", recv, count); !s.ok()) return s;
  if (count == 0) return absl::OkStatus();
  const size_t bytes = count * static_cast<size_t>(comm.size()) * DataTypeSize(type);
  const auto s = reinterpret_cast<uintptr_t>(send);
  const auto r = reinterpret_cast<uintptr_t>(recv);
  if (s < r + bytes && r < s + bytes) {
    return Invalid(comm, kAllToAll, "send and receive buffers overlap (not supported in place)");
  }
  return absl::OkStatus();
}

absl::Status CheckPointToPoint(const Communicator& comm, std::string_view op, const void* buffer,
                               size_t count, int peer) {
  if (auto s = CheckRankArg(comm, op, "peer", peer); !s.ok()) return s;
  return CheckNotNull(comm, op, "the", buffer, count);
}

absl::Status CheckCopy(const Communicator& comm, std::string_view op, const void* dst,
                       const void* src, size_t bytes) {
  if (auto s = CheckNotNull(comm, op, "destination", dst, bytes); !s.ok()) return s;
  return CheckNotNull(comm, op, "source", src, bytes);
}

absl::Status CheckHostMemory(const Communicator& comm, std::string_view op) {
  if (comm.memory_kind() == MemoryKind::kHost) return absl::OkStatus();
  return absl::UnimplementedError(
      absl::StrFormat("%s: the %s backend does not provide buffers of its memory kind",
                      OpContext(comm, op), comm.backend()));
}

void PollPacer::Pause() {
  constexpr int kYieldingPolls = 64;
  constexpr absl::Duration kMaxSleep = absl::Milliseconds(1);
  if (polls_++ < kYieldingPolls) {
    std::this_thread::yield();
    return;
  }
  absl::SleepFor(sleep_);
  sleep_ = std::min(sleep_ * 2, kMaxSleep);
}

}  // namespace nmesh::comm::internal
