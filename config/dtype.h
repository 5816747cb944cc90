// Floating-point dtypes named in recipes (mixed precision, autocast, pipeline, lm-head precision).
//
//   NMESH_ASSIGN_OR_RETURN(Dtype dtype, ParseDtype("torch.bfloat16"));  // Dtype::kBfloat16
//   DtypeName(dtype);                                                  // "bfloat16"
//
// Accepted spellings (case-insensitive, each optionally prefixed `torch.`):
//   bfloat16: bf16, bfloat16
//   float16:  fp16, float16, half
//   float32:  fp32, float32, float
#ifndef NMESH_CONFIG_DTYPE_H_
#define NMESH_CONFIG_DTYPE_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "nmesh/base/enum_names.h"

namespace nmesh::config {

enum class Dtype { kBfloat16, kFloat16, kFloat32 };

// The spellings above, lower-case and without `torch.`: each dtype's first entry is its canonical
// (PyTorch) name.
inline constexpr NamedValue<Dtype> kDtypeNames[] = {
    {Dtype::kBfloat16, "bfloat16"}, {Dtype::kFloat16, "float16"}, {Dtype::kFloat32, "float32"},
    {Dtype::kBfloat16, "bf16"},     {Dtype::kFloat16, "fp16"},    {Dtype::kFloat16, "half"},
    {Dtype::kFloat32, "fp32"},      {Dtype::kFloat32, "float"},
};

// Parses one of the spellings above (NeMo AutoModel 0.7.0's `dtype_from_str` spellings; nmesh also
// accepts `torch.bf16`, fp32, fp16 and their `torch.` forms). A string 0.7.0 does not know fails
// with InvalidArgument "Unknown dtype string: <name>"; one it knows that is not floating-point
// (float64, int8, bool, ...) fails with "dtype '<name>' is not a floating-point dtype nmesh
// supports (...)".
// Thread-safe.
absl::StatusOr<Dtype> ParseDtype(std::string_view name);

// The canonical (PyTorch) name: "bfloat16", "float16" or "float32".
std::string_view DtypeName(Dtype dtype);

}  // namespace nmesh::config

#endif  // NMESH_CONFIG_DTYPE_H_
