// The element-wise reductions the gloo backend hands to gloo (internal to comm/gloo).
//
//   ReduceFunction f = ReduceFunctionFor(DataType::kBFloat16, ReduceOp::kAvg);  // the sum
//   f(out, a, b, n);                                   // out[i] = a[i] + b[i], through float
//   internal::DivideElements(out, n, DataType::kBFloat16, size);  // the average (host_math.h)
//
// Every DataType and ReduceOp. float16 and bfloat16 combine each pair of values in float and round
// back to nearest even; integers wrap (as MPI's sum does); kAvg gives the sum, and the caller
// divides afterwards, integers truncating toward zero. Pure functions; thread-safe.
#ifndef NMESH_COMM_GLOO_REDUCE_H_
#define NMESH_COMM_GLOO_REDUCE_H_

#include <cstddef>

#include "nmesh/comm/types.h"

namespace nmesh::comm::gloo {

// gloo's reduction signature: out[i] = a[i] op b[i] for i < n (out may equal a or b).
using ReduceFunction = void (*)(void* out, const void* a, const void* b, size_t n);

ReduceFunction ReduceFunctionFor(DataType type, ReduceOp op);

}  // namespace nmesh::comm::gloo

#endif  // NMESH_COMM_GLOO_REDUCE_H_
