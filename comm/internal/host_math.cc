#include "nmesh/comm/internal/host_math.h"

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace nmesh::comm::internal {
namespace {

// The value an element type divides in, and back.
float Widen(Float16 v) { return FromFloat16(v); }
float Widen(BFloat16 v) { return FromBFloat16(v); }
void Narrow(float v, Float16* out) { *out = ToFloat16(v); }
void Narrow(float v, BFloat16* out) { *out = ToBFloat16(v); }

template <typename T>
void Divide(void* buffer, size_t count, int divisor) {
  for (size_t i = 0; i < count; ++i) {
    T x;
    std::memcpy(&x, static_cast<char*>(buffer) + i * sizeof(T), sizeof(T));
    T r;
    if constexpr (std::is_floating_point_v<T>) {
      r = x / static_cast<T>(divisor);
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      r = static_cast<T>(static_cast<int64_t>(x) / divisor);
    } else if constexpr (std::is_integral_v<T>) {
      r = static_cast<T>(static_cast<uint64_t>(x) / static_cast<uint64_t>(divisor));
    } else {
      Narrow(Widen(x) / static_cast<float>(divisor), &r);
    }
    std::memcpy(static_cast<char*>(buffer) + i * sizeof(T), &r, sizeof(T));
  }
}

}  // namespace

void DivideElements(void* buffer, size_t count, DataType type, int divisor) {
  switch (type) {
    case DataType::kInt8:
      return Divide<int8_t>(buffer, count, divisor);
    case DataType::kUint8:
      return Divide<uint8_t>(buffer, count, divisor);
    case DataType::kInt32:
      return Divide<int32_t>(buffer, count, divisor);
    case DataType::kUint32:
      return Divide<uint32_t>(buffer, count, divisor);
    case DataType::kInt64:
      return Divide<int64_t>(buffer, count, divisor);
    case DataType::kUint64:
      return Divide<uint64_t>(buffer, count, divisor);
    case DataType::kFloat16:
      return Divide<Float16>(buffer, count, divisor);
    case DataType::kBFloat16:
      return Divide<BFloat16>(buffer, count, divisor);
    case DataType::kFloat32:
      return Divide<float>(buffer, count, divisor);
    case DataType::kFloat64:
      return Divide<double>(buffer, count, divisor);
  }
}

}  // namespace nmesh::comm::internal
