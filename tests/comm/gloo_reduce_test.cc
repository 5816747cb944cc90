// The gloo backend's reductions (comm/gloo/reduce.h) on arrays long enough for the vectorised loop
// and its remainder, with the output apart from both inputs and equal to either (how gloo calls
// them), against a scalar loop written here.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "nmesh/comm/gloo/reduce.h"

namespace nmesh::comm::gloo {
namespace {

template <typename T>
T Expected(ReduceOp op, T a, T b) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return static_cast<T>(a + b);
    case ReduceOp::kProd:
      return static_cast<T>(a * b);
    case ReduceOp::kMin:
      return a < b ? a : b;
    case ReduceOp::kMax:
      return a < b ? b : a;
  }
  return a;
}

template <typename T>
void CheckType(DataType type) {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> value(-50, 50);
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax}) {
    for (size_t n : {size_t{1}, size_t{3}, size_t{17}, size_t{1003}}) {
      std::vector<T> a(n), b(n);
      for (size_t i = 0; i < n; ++i) {
        a[i] = static_cast<T>(value(random));
        b[i] = static_cast<T>(value(random));
      }
      std::vector<T> want(n);
      for (size_t i = 0; i < n; ++i) want[i] = Expected(op, a[i], b[i]);
      const ReduceFunction f = ReduceFunctionFor(type, op);
      std::vector<T> out(n);
      f(out.data(), a.data(), b.data(), n);
      EXPECT_EQ(out, want) << "apart, n " << n << " op " << static_cast<int>(op);
      std::vector<T> in_a = a;
      f(in_a.data(), in_a.data(), b.data(), n);
      EXPECT_EQ(in_a, want) << "out == a, n " << n << " op " << static_cast<int>(op);
      std::vector<T> in_b = b;
      f(in_b.data(), a.data(), in_b.data(), n);
      EXPECT_EQ(in_b, want) << "out == b, n " << n << " op " << static_cast<int>(op);
    }
  }
}

TEST(GlooReduceTest, EveryCommonTypeApartAndInPlace) {
  CheckType<float>(DataType::kFloat32);
  CheckType<double>(DataType::kFloat64);
  CheckType<int32_t>(DataType::kInt32);
  CheckType<int64_t>(DataType::kInt64);
  CheckType<uint8_t>(DataType::kUint8);
}

}  // namespace
}  // namespace nmesh::comm::gloo
