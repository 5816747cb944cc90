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

}  // namespace

absl::StatusOr<Dtype> ParseDtype(std::string_view name) {
  std::string lowered = absl::AsciiStrToLower(std::string(name));
  if (absl::StartsWith(lowered, "torch.")) lowered.erase(0, 6);
  for (const auto& [spelling, dtype] : kSpellings) {
    if (lowered == spelling) return dtype;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "Unknown dtype: '%s'. Valid dtypes: [bf16, bfloat16, fp16, float16, half, fp32, float32, "
      "float] (optionally prefixed 'torch.')",
      Abbreviate(name)));
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
