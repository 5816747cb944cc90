// The buffers of one measured call and the check of its results (perf/bench.h's #wrong column).
//
//   const perf::BenchOp op = perf::BenchOp::kAllToAllV;
//   const perf::CallShape shape = perf::ShapeOf(op, 1 << 20, comm->size(), comm->rank());
//   std::vector<float> send(shape.send), recv(shape.recv);
//   perf::FillInputs(op, shape, comm->rank(), absl::MakeSpan(send), absl::MakeSpan(recv));
//   // ... run the collective (AllToAllV with shape.send_counts, shape.send_displs, ...) ...
//   const int64_t wrong =
//       perf::CountWrong(op, shape, comm->rank(), comm->size(), absl::MakeConstSpan(recv));
//
// Input element k of local rank r is InputValue(r, k): a small integer, so sums over any group are
// exact in float32, and distinct for ranks less than 64 apart, so a block from the wrong rank is
// caught. Expected outputs are computed from InputValue and the op's definition alone, never from
// a collective. Everything here is pure and thread-safe.
#ifndef NMESH_PERF_CHECK_H_
#define NMESH_PERF_CHECK_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "nmesh/perf/bench.h"

namespace nmesh::perf {

inline constexpr uint64_t kBenchElementBytes = sizeof(float);

// Marks output elements the collective has not written; inputs are never negative.
inline constexpr float kUnwritten = -1.0f;

// The buffers of one call for a requested size, in elements (see perf/bench.h's overview).
struct CallShape {
  uint64_t count = 0;  // passed to the collective; all_to_all_v: elements each rank sends
  uint64_t send = 0;   // elements of the send buffer (0 for broadcast: one buffer)
  uint64_t recv = 0;   // elements of the output buffer
  // all_to_all_v only: the elements per weight unit (AllToAllVWeight), this rank's per-peer
  // counts and displacements (elements), n entries each, and the elements at the start of the
  // output that no block covers (perf/bench.h: the receive layout differs from the send layout).
  uint64_t unit = 0;
  std::vector<size_t> send_counts, send_displs, recv_counts, recv_displs;
  uint64_t recv_gap = 0;
  // The size column: the larger buffer, in bytes (the output without its gap).
  uint64_t bytes() const {
    const uint64_t out = recv - recv_gap;
    return (send > out ? send : out) * kBenchElementBytes;
  }
};

// Elements local rank `src` sends to local rank `dst` in all_to_all_v over `n` ranks, per unit:
// (src + dst) mod n, or 1 when n == 1.
uint64_t AllToAllVWeight(int64_t src, int64_t dst, int64_t n);

// The shape of `op` for `requested_bytes` over a group of `n` ranks, as local rank `rank` sees it
// (only all_to_all_v's count arrays depend on the rank). count == 0: the size is skipped.
CallShape ShapeOf(BenchOp op, uint64_t requested_bytes, int64_t n, int64_t rank = 0);

// Input element k of local rank r.
float InputValue(int64_t r, uint64_t k);

// Fills local rank `me`'s input (`send`, or for broadcast the one buffer `recv`) and marks the
// output unwritten. `send` and `recv` hold at least shape.send and shape.recv elements.
void FillInputs(BenchOp op, const CallShape& shape, int64_t me, absl::Span<float> send,
                absl::Span<float> recv);

// The output elements of local rank `me` in a group of `n` ranks (the first shape.recv of `out`)
// that differ from what `op` must produce.
int64_t CountWrong(BenchOp op, const CallShape& shape, int64_t me, int64_t n,
                   absl::Span<const float> out);

}  // namespace nmesh::perf

#endif  // NMESH_PERF_CHECK_H_
