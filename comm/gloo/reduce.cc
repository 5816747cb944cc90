#include "nmesh/comm/gloo/reduce.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "nmesh/comm/types.h"

namespace nmesh::comm::gloo {
namespace {

// How one element type is loaded into a value arithmetic works on, and stored back.
template <typename T>
struct Arith {
  using Value = T;
  static Value Load(T v) { return v; }
  static T Store(Value v) { return v; }
};
template <>
struct Arith<Float16> {
  using Value = float;
  static float Load(Float16 v) { return FromFloat16(v); }
  static Float16 Store(float v) { return ToFloat16(v); }
};
template <>
struct Arith<BFloat16> {
  using Value = float;
  static float Load(BFloat16 v) { return FromBFloat16(v); }
  static BFloat16 Store(float v) { return ToBFloat16(v); }
};

template <typename V>
V Combine(ReduceOp op, V a, V b) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      if constexpr (std::is_integral_v<V> && std::is_signed_v<V>) {
        // Wraps like the unsigned sum, without signed overflow.
        using U = std::make_unsigned_t<V>;
        return static_cast<V>(static_cast<U>(a) + static_cast<U>(b));
      } else {
        return static_cast<V>(a + b);
      }
    case ReduceOp::kProd:
      if constexpr (std::is_integral_v<V> && std::is_signed_v<V>) {
        using U = std::make_unsigned_t<V>;
        return static_cast<V>(static_cast<U>(a) * static_cast<U>(b));
      } else if constexpr (std::is_integral_v<V>) {
        // Unsigned types narrower than int promote to int: multiply as unsigned.
        return static_cast<V>(static_cast<unsigned long long>(a) *
                              static_cast<unsigned long long>(b));
      } else {
        return a * b;
      }
    case ReduceOp::kMin:
      return std::min(a, b);
    case ReduceOp::kMax:
      return std::max(a, b);
  }
  return a;
}

template <typename T, ReduceOp Op>
void Reduce(void* out, const void* a, const void* b, size_t n) {
  // Element by element through memcpy: out may alias a or b, and gloo's buffers are byte arrays.
  for (size_t i = 0; i < n; ++i) {
    T x, y;
    std::memcpy(&x, static_cast<const char*>(a) + i * sizeof(T), sizeof(T));
    std::memcpy(&y, static_cast<const char*>(b) + i * sizeof(T), sizeof(T));
    const T r = Arith<T>::Store(Combine(Op, Arith<T>::Load(x), Arith<T>::Load(y)));
    std::memcpy(static_cast<char*>(out) + i * sizeof(T), &r, sizeof(T));
  }
}

// The common types reduce on aligned arrays with a plain loop (gloo's buffers are the caller's
// typed arrays or its own aligned segments). `out` is `a` or `b` or apart from both, never a
// partial overlap, so no iteration reads what an earlier one wrote: the loop is marked so, and the
// compiler vectorises it without a runtime overlap check (which GCC's -O2 cost model does not
// pay for, leaving a scalar loop).
template <typename T, ReduceOp Op>
void ReduceFast(void* out, const void* a, const void* b, size_t n) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
#if defined(__clang__)
#pragma clang loop vectorize(assume_safety)
#elif defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (size_t i = 0; i < n; ++i) o[i] = Combine(Op, x[i], y[i]);
}

template <typename T, ReduceOp Op>
constexpr ReduceFunction Pick() {
  if constexpr (std::is_same_v<typename Arith<T>::Value, T>) {
    return &ReduceFast<T, Op>;
  } else {
    return &Reduce<T, Op>;
  }
}

template <typename T>
ReduceFunction ForType(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return Pick<T, ReduceOp::kSum>();
    case ReduceOp::kProd:
      return Pick<T, ReduceOp::kProd>();
    case ReduceOp::kMin:
      return Pick<T, ReduceOp::kMin>();
    case ReduceOp::kMax:
      return Pick<T, ReduceOp::kMax>();
  }
  return nullptr;
}

}  // namespace

ReduceFunction ReduceFunctionFor(DataType type, ReduceOp op) {
  switch (type) {
    case DataType::kInt8:
      return ForType<int8_t>(op);
    case DataType::kUint8:
      return ForType<uint8_t>(op);
    case DataType::kInt32:
      return ForType<int32_t>(op);
    case DataType::kUint32:
      return ForType<uint32_t>(op);
    case DataType::kInt64:
      return ForType<int64_t>(op);
    case DataType::kUint64:
      return ForType<uint64_t>(op);
    case DataType::kFloat16:
      return ForType<Float16>(op);
    case DataType::kBFloat16:
      return ForType<BFloat16>(op);
    case DataType::kFloat32:
      return ForType<float>(op);
    case DataType::kFloat64:
      return ForType<double>(op);
  }
  return nullptr;
}

}  // namespace nmesh::comm::gloo
