// The strategy kinds and their names, as the typed configs and the recipe layer use them. The kinds
// are defined with the rules that depend on them (nmesh/validate/strategy.h); this header makes
// them available as config::StrategyKind and so on.
//
//   NMESH_ASSIGN_OR_RETURN(config::StrategyKind kind, config::ParseStrategy("mfsdp"));
//   config::StrategyName(kind);                                    // "megatron_fsdp"
#ifndef NMESH_CONFIG_STRATEGY_H_
#define NMESH_CONFIG_STRATEGY_H_

#include "nmesh/validate/strategy.h"

namespace nmesh::config {

using validate::kDefaultStrategy;
using validate::kStrategyNames;
using validate::ParseStrategy;
using validate::StrategyKind;
using validate::StrategyName;
using validate::UnknownStrategyError;
using validate::ValidStrategyNames;

}  // namespace nmesh::config

#endif  // NMESH_CONFIG_STRATEGY_H_
