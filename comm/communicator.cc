#include "nmesh/comm/communicator.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/self.h"

namespace nmesh::comm {

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

std::string_view DataTypeName(DataType type) {
  switch (type) {
    case DataType::kInt8:
      return "int8";
    case DataType::kUint8:
      return "uint8";
    case DataType::kInt32:
      return "int32";
    case DataType::kUint32:
      return "uint32";
    case DataType::kInt64:
      return "int64";
    case DataType::kUint64:
      return "uint64";
    case DataType::kFloat16:
      return "float16";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat64:
      return "float64";
  }
  return "unknown";
}

std::string_view ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kProd:
      return "prod";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kAvg:
      return "avg";
  }
  return "unknown";
}

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

absl::Status Communicator::SizeMismatch(std::string_view op, std::string_view which,
                                        size_t expected, size_t got) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s on axis '%s': %s buffer holds %d elements, expected %d", op,
                      options().name, which, got, expected));
}

absl::Status Communicator::NotMultipleOfSize(std::string_view op, size_t got) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s on axis '%s': buffer holds %d elements, not a multiple of the %d ranks",
                      op, options().name, got, size()));
}

absl::StatusOr<Buffer> Communicator::AllocateBuffer(size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kAllocate));
  if (bytes == 0) return Buffer();
  void* data = ::operator new(bytes, std::nothrow);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: cannot allocate %d bytes", internal::OpContext(*this, "allocate"), bytes));
  }
  return Buffer(data, bytes, [](void* p) { ::operator delete(p); });
}

absl::Status Communicator::CopyToHost(void* host, const void* buffer, size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kCopyToHost));
  NMESH_RETURN_IF_ERROR(internal::CheckCopy(*this, internal::kCopyToHost, host, buffer, bytes));
  if (bytes != 0 && host != buffer) std::memmove(host, buffer, bytes);
  return absl::OkStatus();
}

absl::Status Communicator::CopyFromHost(void* buffer, const void* host, size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kCopyFromHost));
  NMESH_RETURN_IF_ERROR(internal::CheckCopy(*this, internal::kCopyFromHost, buffer, host, bytes));
  if (bytes != 0 && host != buffer) std::memmove(buffer, host, bytes);
  return absl::OkStatus();
}

std::unique_ptr<Communicator> Communicator::NewSelf(CommOptions options) const {
  NMESH_CHECK(memory_kind() == MemoryKind::kHost)
      << "the " << backend() << " backend must override Communicator::NewSelf";
  return NewSelfCommunicator(std::move(options));
}

}  // namespace nmesh::comm
