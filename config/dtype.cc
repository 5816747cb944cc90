#include "nmesh/config/dtype.h"

#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "nmesh/base/abbreviate.h"

namespace nmesh::config {
namespace {

// Dtypes 0.7.0's dtype_from_str knows that no recipe dtype field can hold.
constexpr std::string_view kOtherDtypes[] = {"float64", "double", "complex64", "cfloat", "uint8",
                                             "int8",    "int16",  "short",     "int32",  "int",
                                             "int64",   "long",   "bool"};

}  // namespace

absl::StatusOr<Dtype> ParseDtype(std::string_view name) {
  std::string lowered = absl::AsciiStrToLower(std::string(name));
  if (absl::StartsWith(lowered, "torch.")) lowered.erase(0, 6);
  if (std::optional<Dtype> dtype = ValueNamed<Dtype>(kDtypeNames, lowered)) return *dtype;
  for (std::string_view other : kOtherDtypes) {
    if (lowered == other) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "dtype '%s' is not a floating-point dtype nmesh supports (bfloat16, float16, float32)",
          name));
    }
  }
  return absl::InvalidArgumentError(absl::StrFormat("Unknown dtype string: %s", Abbreviate(name)));
}

std::string_view DtypeName(Dtype dtype) { return NameOf<Dtype>(kDtypeNames, dtype); }

}  // namespace nmesh::config
