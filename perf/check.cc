#include "nmesh/perf/check.h"

#include <array>
#include <cstdint>
#include <set>

namespace nmesh::perf {
namespace {

// Σ_r InputValue(r, k) over a group of n ranks, for each k mod 64 (the inputs have period 64).
std::array<float, 64> SumTable(int64_t n) {
  std::array<float, 64> sums{};
  for (uint64_t k = 0; k < 64; ++k) {
    double sum = 0;
    for (int64_t r = 0; r < n; ++r) sum += InputValue(r, k);
    sums[k] = static_cast<float>(sum);
  }
  return sums;
}

// The sum of AllToAllVWeight(src, d, n) over d < dst: where src's block for dst starts, in units.
uint64_t WeightsBefore(int64_t src, int64_t dst, int64_t n) {
  uint64_t sum = 0;
  for (int64_t d = 0; d < dst; ++d) sum += AllToAllVWeight(src, d, n);
  return sum;
}

}  // namespace

uint64_t AllToAllVWeight(int64_t src, int64_t dst, int64_t n) {
  if (n == 1) return 1;
  return static_cast<uint64_t>((src + dst) % n);
}

float InputValue(int64_t r, uint64_t k) {
  return static_cast<float>(((r + 1) * 7 + static_cast<int64_t>(k % 64) * 3) % 64);
}

CallShape ShapeOf(BenchOp op, uint64_t requested_bytes, int64_t n, int64_t rank) {
  const uint64_t elements = requested_bytes / kBenchElementBytes;
  const uint64_t ranks = static_cast<uint64_t>(n);
  const uint64_t per_rank = elements / ranks;
  CallShape shape;
  switch (op) {
    case BenchOp::kAllReduce:
      shape.count = shape.send = shape.recv = elements;
      break;
    case BenchOp::kBroadcast:
      shape.count = shape.recv = elements;
      break;
    case BenchOp::kAllGather:
      shape.count = shape.send = per_rank;
      shape.recv = per_rank * ranks;
      break;
    case BenchOp::kReduceScatter:
      shape.count = shape.recv = per_rank;
      shape.send = per_rank * ranks;
      break;
    case BenchOp::kAllToAll:
      shape.count = per_rank;
      shape.send = shape.recv = per_rank * ranks;
      break;
    case BenchOp::kAllToAllV: {
      // Every rank's weights sum to the same total, in both directions ((s + d) mod n takes every
      // value once as d, or s, runs over the group).
      const uint64_t total_weight = n == 1 ? 1 : ranks * (ranks - 1) / 2;
      shape.unit = elements / total_weight;
      shape.count = shape.send = shape.unit * total_weight;
      shape.send_counts.resize(ranks);
      shape.send_displs.resize(ranks);
      shape.recv_counts.resize(ranks);
      shape.recv_displs.resize(ranks);
      // Send: blocks in peer order. Receive: blocks in reverse peer order, after the gap.
      size_t send_at = 0, recv_at = 0;
      for (int64_t peer = 0; peer < n; ++peer) {
        const size_t p = static_cast<size_t>(peer);
        shape.send_counts[p] = shape.unit * AllToAllVWeight(rank, peer, n);
        shape.send_displs[p] = send_at;
        send_at += shape.send_counts[p];
      }
      for (int64_t peer = n - 1; peer >= 0; --peer) {
        const size_t p = static_cast<size_t>(peer);
        shape.recv_counts[p] = shape.unit * AllToAllVWeight(peer, rank, n);
        shape.recv_displs[p] = recv_at;
        recv_at += shape.recv_counts[p];
      }
      // The gap: the smallest positive one that leaves no non-empty block at the same
      // displacement in both buffers.
      std::set<size_t> taken;
      for (size_t p = 0; p < ranks; ++p) {
        if (shape.recv_counts[p] > 0 && shape.send_displs[p] > shape.recv_displs[p]) {
          taken.insert(shape.send_displs[p] - shape.recv_displs[p]);
        }
      }
      shape.recv_gap = 1;
      while (taken.count(shape.recv_gap) > 0) ++shape.recv_gap;
      for (size_t& displ : shape.recv_displs) displ += shape.recv_gap;
      shape.recv = shape.recv_gap + recv_at;
      break;
    }
    default:  // not a bench op
      break;
  }
  return shape;
}

void FillInputs(BenchOp op, const CallShape& shape, int64_t me, absl::Span<float> send,
                absl::Span<float> recv) {
  for (uint64_t k = 0; k < shape.send; ++k) send[k] = InputValue(me, k);
  for (uint64_t k = 0; k < shape.recv; ++k) {
    recv[k] = op == BenchOp::kBroadcast && me == 0 ? InputValue(0, k) : kUnwritten;
  }
}

int64_t CountWrong(BenchOp op, const CallShape& shape, int64_t me, int64_t n,
                   absl::Span<const float> out) {
  const uint64_t p = shape.count;
  const uint64_t rank = static_cast<uint64_t>(me);
  int64_t wrong = 0;
  if (op == BenchOp::kAllToAllV) {
    // The gap stays unwritten; block s, at recv_displs[s], comes from rank s's block for `me`,
    // which starts at its WeightsBefore(s, me) units.
    for (uint64_t k = 0; k < shape.recv_gap; ++k) {
      if (out[k] != kUnwritten) ++wrong;
    }
    for (int64_t s = 0; s < n; ++s) {
      const uint64_t count = shape.unit * AllToAllVWeight(s, me, n);
      const uint64_t from = shape.unit * WeightsBefore(s, me, n);
      const uint64_t at = shape.recv_displs[static_cast<size_t>(s)];
      for (uint64_t k = 0; k < count; ++k) {
        if (out[at + k] != InputValue(s, from + k)) ++wrong;
      }
    }
    return wrong;
  }
  std::array<float, 64> sums{};
  if (Reduces(op)) sums = SumTable(n);
  for (uint64_t k = 0; k < shape.recv; ++k) {
    float expected = 0;
    switch (op) {
      case BenchOp::kAllReduce:
        expected = sums[k % 64];
        break;
      case BenchOp::kBroadcast:
        expected = InputValue(0, k);
        break;
      case BenchOp::kAllGather:  // block j is rank j's input
        expected = InputValue(static_cast<int64_t>(k / p), k % p);
        break;
      case BenchOp::kReduceScatter:  // the sum of every rank's block `me`
        expected = sums[(rank * p + k) % 64];
        break;
      case BenchOp::kAllToAll:  // block j comes from rank j's block `me`
        expected = InputValue(static_cast<int64_t>(k / p), rank * p + k % p);
        break;
      case BenchOp::kAllToAllV:
        break;
      default:  // not a bench op
        break;
    }
    if (out[k] != expected) ++wrong;
  }
  return wrong;
}

}  // namespace nmesh::perf
