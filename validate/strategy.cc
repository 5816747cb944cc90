#include "nmesh/validate/strategy.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/abbreviate.h"

namespace nmesh::validate {
namespace {

constexpr std::pair<std::string_view, StrategyKind> kStrategies[] = {
    {"ddp", StrategyKind::kDdp},
    {"fsdp2", StrategyKind::kFsdp2},
    {"megatron-fsdp", StrategyKind::kMegatronFsdp},
    {"megatron_fsdp", StrategyKind::kMegatronFsdp},
    {"mfsdp", StrategyKind::kMegatronFsdp},
};

}  // namespace

const std::vector<std::string_view>& ValidStrategyNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string_view>;
    for (const auto& [name, kind] : kStrategies) v->push_back(name);
    std::sort(v->begin(), v->end());
    return v;
  }();
  return *names;
}

absl::StatusOr<StrategyKind> ParseStrategy(std::string_view name) {
  const std::string lowered = absl::AsciiStrToLower(std::string(name));
  for (const auto& [candidate, kind] : kStrategies) {
    if (lowered == candidate) return kind;
  }
  std::vector<std::string> quoted;
  for (std::string_view valid : ValidStrategyNames())
    quoted.push_back(absl::StrFormat("'%s'", valid));
  return absl::InvalidArgumentError(absl::StrFormat("Unknown strategy: %s. Valid strategies: [%s]",
                                                    Abbreviate(name), absl::StrJoin(quoted, ", ")));
}

std::string_view StrategyName(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::kFsdp2:
      return "fsdp2";
    case StrategyKind::kMegatronFsdp:
      return "megatron_fsdp";
    case StrategyKind::kDdp:
      return "ddp";
  }
  return "unknown";
}

}  // namespace nmesh::validate
