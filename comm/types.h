// The element types and reduction operators of collective buffers, and where the buffers live:
//
//   std::vector<BFloat16> grad(n, ToBFloat16(1.0f));
//   DataType type = DataTypeOf<BFloat16>::value;   // DataType::kBFloat16
//   DataTypeSize(type);                            // 2
//   DataTypeName(type);                            // "bfloat16"
//   ReduceOpName(ReduceOp::kAvg);                  // "avg"
//
// Pure functions; thread-safe.
#ifndef NMESH_COMM_TYPES_H_
#define NMESH_COMM_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace nmesh::comm {

// Element types of collective buffers.
enum class DataType : uint8_t {
  kInt8,
  kUint8,
  kInt32,
  kUint32,
  kInt64,
  kUint64,
  kFloat16,
  kBFloat16,
  kFloat32,
  kFloat64,
};

// IEEE 754 binary16 and bfloat16 storage types for host buffers. Arithmetic on them is done by the
// backends (converted through float); these are plain bit containers.
struct Float16 {
  uint16_t bits = 0;
  friend bool operator==(Float16, Float16) = default;
};
struct BFloat16 {
  uint16_t bits = 0;
  friend bool operator==(BFloat16, BFloat16) = default;
};

// Conversions between float and the 16-bit types (round to nearest even). Thread-safe.
Float16 ToFloat16(float value);
float FromFloat16(Float16 value);
BFloat16 ToBFloat16(float value);
float FromBFloat16(BFloat16 value);

// Size in bytes of one element.
size_t DataTypeSize(DataType type);
// "int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "bfloat16", "float32",
// "float64": the names nccl-tests prints.
std::string_view DataTypeName(DataType type);

// The DataType of a C++ element type, for the typed convenience overloads:
// DataTypeOf<float>::value is DataType::kFloat32. Other element types do not compile.
template <typename T>
constexpr DataType DataTypeFor() {
  if constexpr (std::is_same_v<T, int8_t>) {
    return DataType::kInt8;
  } else if constexpr (std::is_same_v<T, uint8_t>) {
    return DataType::kUint8;
  } else if constexpr (std::is_same_v<T, int32_t>) {
    return DataType::kInt32;
  } else if constexpr (std::is_same_v<T, uint32_t>) {
    return DataType::kUint32;
  } else if constexpr (std::is_same_v<T, int64_t>) {
    return DataType::kInt64;
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    return DataType::kUint64;
  } else if constexpr (std::is_same_v<T, Float16>) {
    return DataType::kFloat16;
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return DataType::kBFloat16;
  } else if constexpr (std::is_same_v<T, float>) {
    return DataType::kFloat32;
  } else {
    static_assert(std::is_same_v<T, double>, "not an element type of nmesh's collectives");
    return DataType::kFloat64;
  }
}
template <typename T>
struct DataTypeOf {
  static constexpr DataType value = DataTypeFor<T>();
};

// Reduction operators. kAvg is the sum divided by the communicator size (integer types: truncated
// toward zero).
enum class ReduceOp : uint8_t { kSum, kProd, kMin, kMax, kAvg };
// "sum", "prod", "min", "max", "avg".
std::string_view ReduceOpName(ReduceOp op);

enum class MemoryKind : uint8_t { kHost, kDevice };

}  // namespace nmesh::comm

#endif  // NMESH_COMM_TYPES_H_
