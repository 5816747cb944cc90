#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm {
namespace {

TEST(DataTypeTest, SizesAndNames) {
  EXPECT_EQ(DataTypeSize(DataType::kInt8), sizeof(int8_t));
  EXPECT_EQ(DataTypeSize(DataType::kUint32), sizeof(uint32_t));
  EXPECT_EQ(DataTypeSize(DataType::kInt64), sizeof(int64_t));
  EXPECT_EQ(DataTypeSize(DataType::kFloat16), sizeof(Float16));
  EXPECT_EQ(DataTypeSize(DataType::kBFloat16), sizeof(BFloat16));
  EXPECT_EQ(DataTypeSize(DataType::kFloat32), sizeof(float));
  EXPECT_EQ(DataTypeSize(DataType::kFloat64), sizeof(double));
  EXPECT_EQ(DataTypeName(DataType::kBFloat16), "bfloat16");
  EXPECT_EQ(ReduceOpName(ReduceOp::kAvg), "avg");
}

// Every binary16 value converts to float and back unchanged (NaNs stay NaN).
TEST(Float16Test, RoundTripsEveryBitPattern) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    Float16 h{static_cast<uint16_t>(bits)};
    float f = FromFloat16(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(FromFloat16(ToFloat16(f))));
      continue;
    }
    ASSERT_EQ(ToFloat16(f).bits, h.bits) << "bits " << bits << " value " << f;
  }
}

TEST(Float16Test, KnownValuesAndRounding) {
  EXPECT_EQ(ToFloat16(1.0f).bits, 0x3c00);
  EXPECT_EQ(ToFloat16(-2.0f).bits, 0xc000);
  EXPECT_EQ(ToFloat16(65504.0f).bits, 0x7bff);                      // largest finite
  EXPECT_EQ(ToFloat16(1e6f).bits, 0x7c00);                          // overflow to inf
  EXPECT_EQ(ToFloat16(std::ldexp(1.0f, -24)).bits, 0x0001);         // smallest subnormal
  EXPECT_EQ(ToFloat16(1.0f + std::ldexp(1.0f, -11)).bits, 0x3c00);  // tie rounds to even
  EXPECT_EQ(ToFloat16(1.0f + 3 * std::ldexp(1.0f, -11)).bits, 0x3c02);
}

TEST(BFloat16Test, RoundTripsAndRounds) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    BFloat16 b{static_cast<uint16_t>(bits)};
    float f = FromBFloat16(b);
    if (std::isnan(f)) continue;
    ASSERT_EQ(ToBFloat16(f).bits, b.bits) << "bits " << bits;
  }
  EXPECT_EQ(ToBFloat16(1.0f).bits, 0x3f80);
  EXPECT_EQ(ToBFloat16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);      // tie to even
  EXPECT_EQ(ToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)).bits, 0x3f82);  // tie to even (up)
  EXPECT_TRUE(std::isnan(FromBFloat16(ToBFloat16(std::numeric_limits<float>::quiet_NaN()))));
}

}  // namespace
}  // namespace nmesh::comm
