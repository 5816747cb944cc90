#include "nmesh/comm/types.h"

#include <bit>
#include <cmath>
#include <cstdint>

#include "nmesh/base/enum_names.h"

namespace nmesh::comm {
namespace {

constexpr NamedValue<DataType> kDataTypeNames[] = {
    {DataType::kInt8, "int8"},       {DataType::kUint8, "uint8"},
    {DataType::kInt32, "int32"},     {DataType::kUint32, "uint32"},
    {DataType::kInt64, "int64"},     {DataType::kUint64, "uint64"},
    {DataType::kFloat16, "float16"}, {DataType::kBFloat16, "bfloat16"},
    {DataType::kFloat32, "float32"}, {DataType::kFloat64, "float64"}};

constexpr NamedValue<ReduceOp> kReduceOpNames[] = {{ReduceOp::kSum, "sum"},
                                                   {ReduceOp::kProd, "prod"},
                                                   {ReduceOp::kMin, "min"},
                                                   {ReduceOp::kMax, "max"},
                                                   {ReduceOp::kAvg, "avg"}};

}  // namespace

size_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kInt8:
    case DataType::kUint8:
      return 1;
    case DataType::kFloat16:
    case DataType::kBFloat16:
      return 2;
    case DataType::kInt32:
    case DataType::kUint32:
    case DataType::kFloat32:
      return 4;
    case DataType::kInt64:
    case DataType::kUint64:
    case DataType::kFloat64:
      return 8;
  }
  return 0;
}

std::string_view DataTypeName(DataType type) { return NameOf<DataType>(kDataTypeNames, type); }

std::string_view ReduceOpName(ReduceOp op) { return NameOf<ReduceOp>(kReduceOpNames, op); }

// bfloat16 is the top half of a float32; round to nearest even and keep NaNs quiet.
BFloat16 ToBFloat16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return BFloat16{static_cast<uint16_t>((bits >> 16) | 0x40)};
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return BFloat16{static_cast<uint16_t>((bits + rounding) >> 16)};
}

float FromBFloat16(BFloat16 value) {
  return std::bit_cast<float>(static_cast<uint32_t>(value.bits) << 16);
}

Float16 ToFloat16(float value) {
  uint32_t f = std::bit_cast<uint32_t>(value);
  uint32_t sign = (f >> 16) & 0x8000u;
  uint32_t abs = f & 0x7fffffffu;
  if (abs > 0x7f800000u) return Float16{static_cast<uint16_t>(sign | 0x7e00u)};   // NaN
  if (abs >= 0x477ff000u) return Float16{static_cast<uint16_t>(sign | 0x7c00u)};  // overflow: inf
  if (abs < 0x38800000u) {
    // Subnormal or zero in binary16: scale so that the float's integer rounding does the work.
    float magnitude = std::bit_cast<float>(abs) * 16777216.0f;  // 2^24 = 1 / smallest subnormal
    uint32_t rounded = static_cast<uint32_t>(std::nearbyint(magnitude));
    return Float16{static_cast<uint16_t>(sign | rounded)};
  }
  uint32_t mantissa_rounding = 0xfffu + ((abs >> 13) & 1u);
  uint32_t h = (abs + mantissa_rounding - 0x38000000u) >> 13;
  return Float16{static_cast<uint16_t>(sign | h)};
}

float FromFloat16(Float16 value) {
  uint32_t sign = static_cast<uint32_t>(value.bits & 0x8000u) << 16;
  uint32_t exponent = (value.bits >> 10) & 0x1fu;
  uint32_t mantissa = value.bits & 0x3ffu;
  if (exponent == 0) {
    float magnitude = static_cast<float>(mantissa) / 16777216.0f;  // mantissa * 2^-24
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

}  // namespace nmesh::comm
