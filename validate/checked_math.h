// Overflow-checked integer arithmetic for mesh sizes and ranks.
//
// Every size and rank in nmesh is an int64_t, and every product of sizes goes through these
// helpers, so that a product that would overflow is reported instead of wrapping.
//
//   std::optional<int64_t> n = CheckedProduct({tp, cp, pp});
//   if (!n.has_value() || *n > kMaxMeshSize) return absl::InvalidArgumentError("too many ranks");
#ifndef NMESH_VALIDATE_CHECKED_MATH_H_
#define NMESH_VALIDATE_CHECKED_MATH_H_

#include <cstdint>
#include <optional>

#include "absl/types/span.h"

namespace nmesh::validate {

// The largest number of ranks a mesh (and a job's world) may have: ranks must fit an int (MPI and
// NCCL count ranks in int).
inline constexpr int64_t kMaxMeshSize = 2147483647;

// a * b, or std::nullopt when the product does not fit an int64_t. Thread-safe.
inline std::optional<int64_t> CheckedMul(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

// The product of `factors` (1 when empty), or std::nullopt when it does not fit an int64_t.
// Thread-safe.
inline std::optional<int64_t> CheckedProduct(absl::Span<const int64_t> factors) {
  int64_t product = 1;
  for (int64_t factor : factors) {
    std::optional<int64_t> next = CheckedMul(product, factor);
    if (!next.has_value()) return std::nullopt;
    product = *next;
  }
  return product;
}

}  // namespace nmesh::validate

#endif  // NMESH_VALIDATE_CHECKED_MATH_H_
