#include "nmesh/validate/strategy.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/abbreviate.h"

namespace nmesh::validate {

const std::vector<std::string_view>& ValidStrategyNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string_view>;
    for (const NamedValue<StrategyKind>& entry : kStrategyNames) v->push_back(entry.name);
    std::sort(v->begin(), v->end());
    return v;
  }();
  return *names;
}

absl::StatusOr<StrategyKind> ParseStrategy(std::string_view name) {
  const std::string lowered = absl::AsciiStrToLower(std::string(name));
  if (std::optional<StrategyKind> kind = ValueNamed<StrategyKind>(kStrategyNames, lowered)) {
    return *kind;
  }
  return UnknownStrategyError(lowered);
}

absl::Status UnknownStrategyError(std::string_view shown) {
  std::vector<std::string> quoted;
  for (std::string_view valid : ValidStrategyNames())
    quoted.push_back(absl::StrFormat("'%s'", valid));
  return absl::InvalidArgumentError(absl::StrFormat("Unknown strategy: %s. Valid strategies: [%s]",
                                                    Abbreviate(shown),
                                                    absl::StrJoin(quoted, ", ")));
}

std::string_view StrategyName(StrategyKind kind) {
  return NameOf<StrategyKind>(kStrategyNames, kind);
}

}  // namespace nmesh::validate
