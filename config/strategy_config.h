// Typed strategy configs (NeMo AutoModel's FSDP2Config, MegatronFSDPConfig, DDPConfig): what the
// training engine reads for FSDP2, MegatronFSDP and DDP, with the reference's defaults. nmesh reads
// them from recipes (config/recipe.h) and validates them; it never interprets the engine-only
// knobs.
//
//   StrategyConfig config = DefaultStrategyConfig(StrategyKind::kFsdp2);
//   auto& fsdp2 = std::get<FSDP2Config>(config);
//   fsdp2.mp_policy.reduce_dtype = Dtype::kFloat32;
//   StrategyKindOf(config);  // StrategyKind::kFsdp2
//
// All types are plain values: copyable, comparable with ==, and thread-compatible.
#ifndef NMESH_CONFIG_STRATEGY_CONFIG_H_
#define NMESH_CONFIG_STRATEGY_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "nmesh/base/enum_names.h"
#include "nmesh/config/dtype.h"
#include "nmesh/config/strategy.h"

namespace nmesh::config {

// `activation_checkpointing`: false | full (true) | selective.
enum class ActivationCheckpointing { kFalse, kFull, kSelective };

// The names ParseActivationCheckpointing accepts (after normalising): each mode's first entry is
// its canonical name.
inline constexpr NamedValue<ActivationCheckpointing> kActivationCheckpointingNames[] = {
    {ActivationCheckpointing::kFalse, "false"},
    {ActivationCheckpointing::kFull, "full"},
    {ActivationCheckpointing::kSelective, "selective"},
    {ActivationCheckpointing::kFalse, "off"},
    {ActivationCheckpointing::kFalse, "none"},
    {ActivationCheckpointing::kFalse, "disabled"},
    {ActivationCheckpointing::kFalse, "no"},
    {ActivationCheckpointing::kFull, "true"},
    {ActivationCheckpointing::kFull, "on"},
    {ActivationCheckpointing::kFull, "enabled"},
    {ActivationCheckpointing::kFull, "yes"},
};

// Normalises a recipe string: lower-cased, `-` -> `_`; false, off, none,
// disabled, no -> kFalse; true, on, full, enabled, yes -> kFull; selective -> kSelective. Anything
// else fails with InvalidArgument "activation_checkpointing must be a boolean or one of 'full',
// 'selective', 'false'." (the recipe layer prefixes the section name). Thread-safe.
absl::StatusOr<ActivationCheckpointing> ParseActivationCheckpointing(std::string_view value);

// "false", "full" or "selective".
std::string_view ActivationCheckpointingName(ActivationCheckpointing mode);

// Normalises `activation_checkpointing_scope` entries: each is lower-cased with `-` -> `_` and
// split on `,` and `+`; empty parts are skipped, `default` and `auto` mean `all`, duplicates are
// dropped. Valid scopes: all, audio, language, multimodal, vision; `all` cannot be combined with
// others; no scope at all means {"all"}. Fails with InvalidArgument naming the bad part ("scope 'x'
// is not one of ..."). Thread-safe.
absl::StatusOr<std::vector<std::string>> NormalizeActivationCheckpointingScope(
    const std::vector<std::string>& entries);

// torch.distributed.fsdp.MixedPrecisionPolicy as NeMo AutoModel 0.7.0 builds it. A recipe's
// `mp_policy:` map starts from a default-constructed policy: dtypes it does not set stay none
// ("no cast") and cast_forward_inputs is false. A missing or null `mp_policy` gives
// Fsdp2Default().
struct MixedPrecisionPolicy {
  std::optional<Dtype> param_dtype;
  std::optional<Dtype> reduce_dtype;
  std::optional<Dtype> output_dtype;
  bool cast_forward_inputs = false;

  // FSDP2's default: bf16 parameters, fp32 gradient reduction, outputs not cast.
  static MixedPrecisionPolicy Fsdp2Default() {
    return {Dtype::kBfloat16, Dtype::kFloat32, std::nullopt, false};
  }
  friend bool operator==(const MixedPrecisionPolicy&, const MixedPrecisionPolicy&) = default;
};

// torch.distributed.fsdp.CPUOffloadPolicy.
struct OffloadPolicy {
  bool pin_memory = true;
  friend bool operator==(const OffloadPolicy&, const OffloadPolicy&) = default;
};

// A string-to-string map in the order the recipe wrote it (e.g. a tensor-parallel plan:
// module pattern -> parallel style).
using StringMap = std::vector<std::pair<std::string, std::string>>;

// FSDP2's `tp_plan`: a map (module pattern -> parallel style) or a string (e.g. an import path
// of a plan), kept as written.
using TpPlan = std::variant<StringMap, std::string>;

// `multimodal.frozen_sharding`: how frozen (non-trainable) towers are sharded.
enum class FrozenSharding { kRoot, kPerLayer, kReplicate };

inline constexpr NamedValue<FrozenSharding> kFrozenShardingNames[] = {
    {FrozenSharding::kRoot, "root"},
    {FrozenSharding::kPerLayer, "per_layer"},
    {FrozenSharding::kReplicate, "replicate"},
};

// "root", "per_layer" or "replicate".
std::string_view FrozenShardingName(FrozenSharding sharding);

// `multimodal.vision.frame_sharding` (CpVisionFrameShardingConfig).
struct CpVisionFrameShardingConfig {
  bool enabled = false;
  std::vector<std::string> mesh_dims = {"cp"};
  int64_t min_tokens = 2048;
  int64_t min_frames = 32;
  int64_t min_local_patch_rows = 96;
  // `cost_alpha`: "auto" (cost_alpha_auto, the default), null or a non-negative integer.
  bool cost_alpha_auto = true;
  std::optional<int64_t> cost_alpha;
  friend bool operator==(const CpVisionFrameShardingConfig&,
                         const CpVisionFrameShardingConfig&) = default;
};

// `multimodal.vision` (MultimodalVisionConfig).
struct MultimodalVisionConfig {
  CpVisionFrameShardingConfig frame_sharding;
  friend bool operator==(const MultimodalVisionConfig&, const MultimodalVisionConfig&) = default;
};

// FSDP2's `multimodal` (MultimodalDistributedConfig).
struct MultimodalDistributedConfig {
  FrozenSharding frozen_sharding = FrozenSharding::kRoot;
  MultimodalVisionConfig vision;
  friend bool operator==(const MultimodalDistributedConfig&,
                         const MultimodalDistributedConfig&) = default;
};

struct FSDP2Config {
  bool sequence_parallel = false;
  std::optional<TpPlan> tp_plan;
  bool patch_is_packed_sequence = false;
  MixedPrecisionPolicy mp_policy = MixedPrecisionPolicy::Fsdp2Default();
  std::optional<OffloadPolicy> offload_policy;
  std::optional<Dtype> autocast_dtype;
  // The recipe layer copies the section's normalised `activation_checkpointing` here.
  ActivationCheckpointing activation_checkpointing = ActivationCheckpointing::kFalse;
  std::vector<std::string> activation_checkpointing_scope = {"all"};
  bool defer_fsdp_grad_sync = true;
  // Tri-state: std::nullopt keeps the engine's heuristic.
  std::optional<bool> reshard_after_forward;
  bool enable_async_tensor_parallel = false;
  bool enable_compile = false;
  bool enable_fsdp2_prefetch = false;
  int64_t fsdp2_backward_prefetch_depth = 2;
  int64_t fsdp2_forward_prefetch_depth = 1;
  MultimodalDistributedConfig multimodal;

  friend bool operator==(const FSDP2Config&, const FSDP2Config&) = default;
};

// No `sequence_parallel` and no `backend` (0.7.0).
struct MegatronFSDPConfig {
  std::optional<std::vector<std::string>> megatron_fsdp_unit_modules;
  // 0 no_shard, 1 optim, 2 optim_grads, 3 optim_grads_params.
  int64_t zero_dp_strategy = 3;
  bool init_fsdp_with_meta_device = false;
  bool grad_reduce_in_fp32 = false;
  bool preserve_fp32_weights = false;
  bool overlap_grad_reduce = true;
  bool overlap_param_gather = true;
  bool check_for_nan_in_grad = true;
  bool report_nan_in_param_grad = false;
  bool average_in_collective = false;
  bool disable_bucketing = false;
  bool calculate_per_token_loss = false;
  bool keep_fp8_transpose_cache = false;
  bool nccl_ub = false;
  bool fsdp_double_buffer = false;
  // MegatronFSDP supports full checkpointing only (selective is rejected by the recipe layer).
  bool activation_checkpointing = false;

  friend bool operator==(const MegatronFSDPConfig&, const MegatronFSDPConfig&) = default;
};

struct DDPConfig {
  ActivationCheckpointing activation_checkpointing = ActivationCheckpointing::kFalse;
  std::vector<std::string> activation_checkpointing_scope = {"all"};
  bool broadcast_buffers = false;
  bool find_unused_parameters = false;
  bool static_graph = false;
  // MiB; std::nullopt uses PyTorch's default.
  std::optional<double> bucket_cap_mb;
  bool gradient_as_bucket_view = false;
  std::optional<Dtype> autocast_dtype;

  friend bool operator==(const DDPConfig&, const DDPConfig&) = default;
};

// The strategy config: a closed sum type. The alternative fixes the strategy.
using StrategyConfig = std::variant<FSDP2Config, MegatronFSDPConfig, DDPConfig>;

// The config of `kind` with every default. Thread-safe.
StrategyConfig DefaultStrategyConfig(StrategyKind kind);

// The strategy `config` configures. Thread-safe.
StrategyKind StrategyKindOf(const StrategyConfig& config);

}  // namespace nmesh::config

#endif  // NMESH_CONFIG_STRATEGY_CONFIG_H_
