#include "nmesh/config/strategy_config.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/config/parallelizer_config.h"

namespace nmesh::config {
namespace {

// Lower-cases and maps `-` to `_`, as the reference does before matching enum-like strings.
std::string Canonicalize(std::string_view value) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(std::string(value)), {{"-", "_"}});
}

constexpr std::string_view kValidScopes[] = {"all", "audio", "language", "multimodal", "vision"};

}  // namespace

absl::StatusOr<ActivationCheckpointing> ParseActivationCheckpointing(std::string_view value) {
  if (std::optional<ActivationCheckpointing> mode =
          ValueNamed<ActivationCheckpointing>(kActivationCheckpointingNames, Canonicalize(value))) {
    return *mode;
  }
  return absl::InvalidArgumentError(
      "activation_checkpointing must be a boolean or one of 'full', 'selective', 'false'.");
}

std::string_view ActivationCheckpointingName(ActivationCheckpointing mode) {
  return NameOf<ActivationCheckpointing>(kActivationCheckpointingNames, mode);
}

absl::StatusOr<std::vector<std::string>> NormalizeActivationCheckpointingScope(
    const std::vector<std::string>& entries) {
  std::vector<std::string> scopes;
  for (const std::string& entry : entries) {
    const std::string canonical = absl::StrReplaceAll(Canonicalize(entry), {{"+", ","}});
    for (absl::string_view part : absl::StrSplit(canonical, ',')) {
      std::string scope(absl::StripAsciiWhitespace(part));
      if (scope.empty()) continue;
      if (scope == "default" || scope == "auto") scope = "all";
      if (std::find(std::begin(kValidScopes), std::end(kValidScopes), scope) ==
          std::end(kValidScopes)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "activation_checkpointing_scope must use only: all, audio, language, multimodal, "
            "vision. Got '%s'.",
            Abbreviate(std::string(part))));
      }
      if (std::find(scopes.begin(), scopes.end(), scope) == scopes.end()) scopes.push_back(scope);
    }
  }
  if (scopes.empty()) return std::vector<std::string>{"all"};
  if (scopes.size() > 1 && std::find(scopes.begin(), scopes.end(), "all") != scopes.end()) {
    return absl::InvalidArgumentError(
        "activation_checkpointing_scope='all' cannot be combined with other scopes.");
  }
  return scopes;
}

StrategyConfig DefaultStrategyConfig(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::kFsdp2:
      return FSDP2Config{};
    case StrategyKind::kMegatronFsdp:
      return MegatronFSDPConfig{};
    case StrategyKind::kDdp:
      return DDPConfig{};
  }
  return FSDP2Config{};
}

StrategyKind StrategyKindOf(const StrategyConfig& config) {
  if (std::holds_alternative<MegatronFSDPConfig>(config)) return StrategyKind::kMegatronFsdp;
  if (std::holds_alternative<DDPConfig>(config)) return StrategyKind::kDdp;
  return StrategyKind::kFsdp2;
}

std::string_view FrozenShardingName(FrozenSharding sharding) {
  return NameOf<FrozenSharding>(kFrozenShardingNames, sharding);
}

std::string_view RoundVirtualStagesName(RoundVirtualStages rounding) {
  return NameOf<RoundVirtualStages>(kRoundVirtualStagesNames, rounding);
}

}  // namespace nmesh::config
