#include "nmesh/config/dtype.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "nmesh/base/abbreviate.h"

namespace nmesh::config {
namespace {

constexpr std::pair<std::string_view, Dtype> kSpellings[] = {
    {"bf16", Dtype::kBfloat16},   {"bfloat16", Dtype::kBfloat16}, {"fp16", Dtype::kFloat16},
    {"float16", Dtype::kFloat16}, {"half", Dtype::kFloat16},      {"fp32", Dtype::kFloat32},
    {"float32", Dtype::kFloat32}, {"float", Dtype::kFloat32},
};

// Dtypes 0.7.0's dtype_from_str knows that no recipe dtype field can hold.
constexpr std::string_view kOtherDtypes[] = {"float64", "double", "complex64", "cfloat", "uint8",
                                             "int8",    "int16",  "short",     "int32",  "int",
                                             "int64",   "long",   "bool"};

}  // namespace

absl::StatusOr<Dtype> ParseDtype(std::string_view name) {
  std::string lowered = absl::AsciiStrToLower(std::string(name));
  if (absl::StartsWith(lowered, "torch.")) lowered.erase(0, 6);
  for (const auto& [spelling, dtype] : kSpellings) {
    if (lowered == spelling) return dtype;
  }
  for (std::string_view other : kOtherDtypes) {
    if (lowered == other) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "dtype '%s' is not a floating-point dtype nmesh supports (bfloat16, float16, float32)",
          name));
    }
  }
  return absl::InvalidArgumentError(absl::StrFormat("Unknown dtype string: %s", Abbreviate(name)));
}

std::string_view DtypeName(Dtype dtype) {
  switch (dtype) {
    case Dtype::kBfloat16:
      return "bfloat16";
    case Dtype::kFloat16:
      return "float16";
    case Dtype::kFloat32:
      return "float32";
  }
  return "unknown";
}

}  // namespace nmesh::config
