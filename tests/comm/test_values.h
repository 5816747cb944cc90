// Known inputs for collective tests and the independent arithmetic that predicts their results.
//
// Every rank's contribution is a function of (rank, index), so each rank can compute what any
// other rank sent and what a reduction over all of them must give, in double, without running the
// code under test. The values are small integers (and halves for float types), so every partial
// result is exact in every DataType, float16 and bfloat16 included, at up to 8 ranks.
#ifndef NMESH_TESTS_COMM_TEST_VALUES_H_
#define NMESH_TESTS_COMM_TEST_VALUES_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm::testing {

template <typename T>
inline constexpr bool kIsInteger = std::is_integral_v<T>;
template <typename T>
inline constexpr bool kIsSigned = !std::is_unsigned_v<T>;  // Float16/BFloat16 are signed

template <typename T>
T FromDouble(double v) {
  if constexpr (std::is_same_v<T, Float16>) {
    return ToFloat16(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return ToBFloat16(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

template <typename T>
double ToDouble(T v) {
  if constexpr (std::is_same_v<T, Float16>) {
    return FromFloat16(v);
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return FromBFloat16(v);
  } else {
    return static_cast<double>(v);
  }
}

// What rank `r` contributes at element `i` to a reduction with `op`. Products use factors 1, 2
// and -1 (at most two 2s per element at 8 ranks); other ops use -2..2 for signed types, 1..5 for
// unsigned ones, plus 0.5 on odd elements for floating types.
template <typename T>
double Input(int r, size_t i, ReduceOp op) {
  const size_t ri = static_cast<size_t>(r) + i;
  if (op == ReduceOp::kProd) {
    if (ri % 4 == 0) return 2;
    if (kIsSigned<T> && ri % 3 == 0) return -1;
    return 1;
  }
  double v = static_cast<double>((static_cast<size_t>(r) * 7 + i * 3) % 5);
  v += kIsSigned<T> ? -2 : 1;
  if (!kIsInteger<T> && i % 2 == 1) v += 0.5;
  return v;
}

// The reduction over ranks 0..n-1 of Input<T>(r, i, op), rounded as the backend must round it:
// kAvg truncates toward zero for integer types.
template <typename T>
double Expected(int n, size_t i, ReduceOp op) {
  double acc = Input<T>(0, i, op);
  double sum = acc;
  for (int r = 1; r < n; ++r) {
    const double v = Input<T>(r, i, op);
    sum += v;
    switch (op) {
      case ReduceOp::kProd:
        acc *= v;
        break;
      case ReduceOp::kMin:
        acc = std::min(acc, v);
        break;
      case ReduceOp::kMax:
        acc = std::max(acc, v);
        break;
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        acc = sum;
        break;
    }
  }
  if (op == ReduceOp::kAvg) return kIsInteger<T> ? std::trunc(sum / n) : sum / n;
  return acc;
}

template <typename T>
std::vector<T> Inputs(int r, size_t count, ReduceOp op, size_t offset = 0) {
  std::vector<T> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = FromDouble<T>(Input<T>(r, offset + i, op));
  return v;
}

// A value identifying (source, index), exact in every type: 0..96.
template <typename T>
T Tag(int source, size_t i) {
  return FromDouble<T>(static_cast<double>((static_cast<size_t>(source) * 31 + i) % 97));
}

// A value no Tag takes, to fill receive buffers.
template <typename T>
T Sentinel() {
  return FromDouble<T>(99);
}

// Every element type, for typed tests.
using AllTypes = ::testing::Types<int8_t, uint8_t, int32_t, uint32_t, int64_t, uint64_t, Float16,
                                  BFloat16, float, double>;

inline constexpr ReduceOp kAllOps[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin,
                                       ReduceOp::kMax, ReduceOp::kAvg};

// Compares got[i] with want(i) (converted through T) for every i; reports the first few
// mismatches only.
template <typename T, typename Want>
void ExpectElements(const std::vector<T>& got, Want want, const std::string& what) {
  int reported = 0;
  for (size_t i = 0; i < got.size() && reported < 3; ++i) {
    const double w = ToDouble(FromDouble<T>(want(i)));
    if (ToDouble(got[i]) != w) {
      ADD_FAILURE() << what << ": element " << i << " is " << ToDouble(got[i]) << ", expected "
                    << w;
      ++reported;
    }
  }
}

}  // namespace nmesh::comm::testing

#endif  // NMESH_TESTS_COMM_TEST_VALUES_H_
