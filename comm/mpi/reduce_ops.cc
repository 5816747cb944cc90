#include "nmesh/comm/mpi/reduce_ops.h"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "nmesh/base/status_macros.h"

namespace nmesh::comm::mpi {
namespace {

// Conversions of the two 16-bit storage types, so one template serves both.
template <typename Half>
float ToFloat(Half h);
template <>
float ToFloat(Float16 h) {
  return FromFloat16(h);
}
template <>
float ToFloat(BFloat16 h) {
  return FromBFloat16(h);
}
template <typename Half>
Half FromFloat(float f);
template <>
Float16 FromFloat(float f) {
  return ToFloat16(f);
}
template <>
BFloat16 FromFloat(float f) {
  return ToBFloat16(f);
}

float Combine(ReduceOp op, float a, float b) {
  switch (op) {
    case ReduceOp::kProd:
      return a * b;
    case ReduceOp::kMin:
      return std::min(a, b);
    case ReduceOp::kMax:
      return std::max(a, b);
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      break;
  }
  return a + b;
}

// MPI_User_function: inout[i] = in[i] (op) inout[i].
template <typename Half, ReduceOp kOp>
void ReduceHalf(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  const Half* a = static_cast<const Half*>(in);
  Half* b = static_cast<Half*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = FromFloat<Half>(Combine(kOp, ToFloat(a[i]), ToFloat(b[i])));
}

struct HalfTypes {
  MPI_Datatype float16 = MPI_DATATYPE_NULL;
  MPI_Datatype bfloat16 = MPI_DATATYPE_NULL;
  // Indexed by ReduceOp (kSum, kProd, kMin, kMax); kAvg uses kSum's.
  MPI_Op float16_ops[4] = {};
  MPI_Op bfloat16_ops[4] = {};
};

MPI_Datatype NewTwoByteType(const char* name) {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  NMESH_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &type) == MPI_SUCCESS) << name;
  NMESH_CHECK(MPI_Type_commit(&type) == MPI_SUCCESS) << name;
  MPI_Type_set_name(type, name);
  return type;
}

template <typename Half>
void CreateOps(MPI_Op (&ops)[4]) {
  NMESH_CHECK(MPI_Op_create(&ReduceHalf<Half, ReduceOp::kSum>, 1, &ops[0]) == MPI_SUCCESS);
  NMESH_CHECK(MPI_Op_create(&ReduceHalf<Half, ReduceOp::kProd>, 1, &ops[1]) == MPI_SUCCESS);
  NMESH_CHECK(MPI_Op_create(&ReduceHalf<Half, ReduceOp::kMin>, 1, &ops[2]) == MPI_SUCCESS);
  NMESH_CHECK(MPI_Op_create(&ReduceHalf<Half, ReduceOp::kMax>, 1, &ops[3]) == MPI_SUCCESS);
}

// Created once per process and never freed: MPI_Finalize releases them, and freeing earlier would
// race with communicators that are still alive.
const HalfTypes& Halves() {
  static HalfTypes* halves = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    halves = new HalfTypes;
    halves->float16 = NewTwoByteType("nmesh_float16");
    halves->bfloat16 = NewTwoByteType("nmesh_bfloat16");
    CreateOps<Float16>(halves->float16_ops);
    CreateOps<BFloat16>(halves->bfloat16_ops);
  });
  return *halves;
}

int OpIndex(ReduceOp op) {
  switch (op) {
    case ReduceOp::kProd:
      return 1;
    case ReduceOp::kMin:
      return 2;
    case ReduceOp::kMax:
      return 3;
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      break;
  }
  return 0;
}

// Integers divide in 64 bits, so a divisor larger than the element type still truncates toward
// zero correctly.
}  // namespace

MPI_Datatype MpiDatatype(DataType type) {
  switch (type) {
    case DataType::kInt8:
      return MPI_INT8_T;
    case DataType::kUint8:
      return MPI_UINT8_T;
    case DataType::kInt32:
      return MPI_INT32_T;
    case DataType::kUint32:
      return MPI_UINT32_T;
    case DataType::kInt64:
      return MPI_INT64_T;
    case DataType::kUint64:
      return MPI_UINT64_T;
    case DataType::kFloat16:
      return Halves().float16;
    case DataType::kBFloat16:
      return Halves().bfloat16;
    case DataType::kFloat32:
      return MPI_FLOAT;
    case DataType::kFloat64:
      return MPI_DOUBLE;
  }
  NMESH_CHECK(false) << "unknown DataType " << static_cast<int>(type);
  return MPI_DATATYPE_NULL;
}

MPI_Op MpiOp(DataType type, ReduceOp op) {
  if (type == DataType::kFloat16) return Halves().float16_ops[OpIndex(op)];
  if (type == DataType::kBFloat16) return Halves().bfloat16_ops[OpIndex(op)];
  switch (op) {
    case ReduceOp::kProd:
      return MPI_PROD;
    case ReduceOp::kMin:
      return MPI_MIN;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      break;
  }
  return MPI_SUM;
}

}  // namespace nmesh::comm::mpi
