// Element arithmetic on host memory that every host backend (MPI, gloo) shares: finishing an
// average after a sum. Internal to the comm target and its backends.
//
//   // recv holds the sum of n bfloat16 elements over `size` ranks:
//   internal::DivideElements(recv, n, DataType::kBFloat16, size);  // now their average
#ifndef NMESH_COMM_INTERNAL_HOST_MATH_H_
#define NMESH_COMM_INTERNAL_HOST_MATH_H_

#include <cstddef>

#include "nmesh/comm/types.h"

namespace nmesh::comm::internal {

// buffer[i] /= divisor for i < count, in the element type: integers truncate toward zero (C++
// division), float16/bfloat16 divide in float and round back. Thread-safe on distinct buffers.
void DivideElements(void* buffer, size_t count, DataType type, int divisor);

}  // namespace nmesh::comm::internal

#endif  // NMESH_COMM_INTERNAL_HOST_MATH_H_
