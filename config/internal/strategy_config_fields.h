// Internal: the field tables of the strategy configs (config/strategy_config.h) and of the
// structs they hold (mp_policy, offload_policy, multimodal): which YAML key reads which field,
// and how its value is checked.
//
//   FSDP2Config config;
//   NMESH_RETURN_IF_ERROR(ReadFields(entries, FieldTableFor(config), config));
//
// Thread-safe (the tables are built once, on first use).
#ifndef NMESH_CONFIG_INTERNAL_STRATEGY_CONFIG_FIELDS_H_
#define NMESH_CONFIG_INTERNAL_STRATEGY_CONFIG_FIELDS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nmesh/config/internal/field_binding.h"
#include "nmesh/config/internal/yaml_value.h"
#include "nmesh/config/strategy_config.h"

namespace nmesh::config::internal {

// The keys of each strategy's section that are its config's fields.
const Fields<FSDP2Config>& Fsdp2FieldTable();
const Fields<MegatronFSDPConfig>& MegatronFsdpFieldTable();
const Fields<DDPConfig>& DdpFieldTable();

// The table of `config`'s type (for code generic over StrategyConfig's alternatives).
const Fields<FSDP2Config>& FieldTableFor(const FSDP2Config& config);
const Fields<MegatronFSDPConfig>& FieldTableFor(const MegatronFSDPConfig& config);
const Fields<DDPConfig>& FieldTableFor(const DDPConfig& config);

// `multimodal` (MultimodalDistributedConfig), a map (contract §2): unknown keys, a bad
// frozen_sharding or a bad vision.frame_sharding fail with the reference's messages.
absl::Status BuildMultimodal(const Value& v, MultimodalDistributedConfig& out);

// Reads of the field types of these configs, for the tables (Member finds them by their type).
// An `mp_policy` map, starting from a default-constructed MixedPrecisionPolicy (as the
// reference's MixedPrecisionPolicy(**map) does); unknown keys are errors.
absl::Status Read(const Value& v, MixedPrecisionPolicy& out);
absl::Status Read(const Value& v, std::optional<MixedPrecisionPolicy>& out);
// An `offload_policy` map.
absl::Status Read(const Value& v, std::optional<OffloadPolicy>& out);
// FSDP2's tp_plan: a string (e.g. the import path of a plan) or a map of strings to strings.
absl::Status Read(const Value& v, std::optional<TpPlan>& out);
// activation_checkpointing_scope: a string or a list of strings, normalised
// (NormalizeActivationCheckpointingScope).
absl::Status Read(const Value& v, std::vector<std::string>& out);

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_STRATEGY_CONFIG_FIELDS_H_
