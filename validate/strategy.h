// The strategy map: strategy names (and aliases) to strategy kinds.
//
//   NMESH_ASSIGN_OR_RETURN(StrategyKind kind, ParseStrategy("Megatron-FSDP"));  // kMegatronFsdp
//   StrategyName(kind);                                                         // "megatron_fsdp"
#ifndef NMESH_VALIDATE_STRATEGY_H_
#define NMESH_VALIDATE_STRATEGY_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nmesh/base/enum_names.h"

namespace nmesh::validate {

enum class StrategyKind { kFsdp2, kMegatronFsdp, kDdp };

// The default strategy when a recipe or the command line names none.
inline constexpr StrategyKind kDefaultStrategy = StrategyKind::kFsdp2;

// The strategy names: each kind's first entry is its canonical name, the others are aliases.
inline constexpr NamedValue<StrategyKind> kStrategyNames[] = {
    {StrategyKind::kFsdp2, "fsdp2"},
    {StrategyKind::kMegatronFsdp, "megatron_fsdp"},
    {StrategyKind::kDdp, "ddp"},
    {StrategyKind::kMegatronFsdp, "megatron-fsdp"},
    {StrategyKind::kMegatronFsdp, "mfsdp"},
};

// Matches `name` case-insensitively against fsdp2, megatron_fsdp, megatron-fsdp, mfsdp and ddp.
// Fails with InvalidArgument "Unknown strategy: <name>. Valid strategies: [<sorted names>]",
// <name> lower-cased as the reference does (contract §2). Thread-safe.
absl::StatusOr<StrategyKind> ParseStrategy(std::string_view name);

// The unknown-strategy error with `shown` quoted as it is (not lower-cased): for a value that is
// not a string, such as null shown as "None". Thread-safe.
absl::Status UnknownStrategyError(std::string_view shown);

// The canonical name: "fsdp2", "megatron_fsdp" or "ddp".
std::string_view StrategyName(StrategyKind kind);

// Every accepted name, sorted.
const std::vector<std::string_view>& ValidStrategyNames();

}  // namespace nmesh::validate

#endif  // NMESH_VALIDATE_STRATEGY_H_
