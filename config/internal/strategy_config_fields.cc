#include "nmesh/config/internal/strategy_config_fields.h"

#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "nmesh/base/status_macros.h"

namespace nmesh::config::internal {
namespace {

const Fields<MixedPrecisionPolicy>& MixedPrecisionFieldTable() {
  using C = MixedPrecisionPolicy;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(param_dtype),
      NMESH_FIELD(reduce_dtype),
      NMESH_FIELD(output_dtype),
      NMESH_FIELD(cast_forward_inputs),
  };
  return *fields;
}

const Fields<OffloadPolicy>& OffloadFieldTable() {
  using C = OffloadPolicy;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(pin_memory),
  };
  return *fields;
}

// MegatronFSDP's zero_dp_strategy: 0..3 or its name.
absl::Status ReadZeroDpStrategy(const Value& v, MegatronFSDPConfig& config) {
  if (v.IsNull()) return absl::OkStatus();
  constexpr std::string_view kNames[] = {"no_shard", "optim", "optim_grads", "optim_grads_params"};
  constexpr std::string_view kExpected =
      "0, 1, 2, 3 or one of 'no_shard', 'optim', 'optim_grads', 'optim_grads_params'";
  if (absl::StatusOr<int64_t> level = v.Int(IntRule::kNonNegative); level.ok()) {
    if (*level > 3) return v.Invalid(kExpected);
    config.zero_dp_strategy = *level;
    return absl::OkStatus();
  }
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (v.IsScalar() && v.Text() == kNames[i]) {
      config.zero_dp_strategy = static_cast<int64_t>(i);
      return absl::OkStatus();
    }
  }
  return v.Invalid(kExpected);
}

// `multimodal.vision.frame_sharding` (CpVisionFrameShardingConfig), a map.
absl::Status ReadFrameSharding(const Value& v, CpVisionFrameShardingConfig& out) {
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries,
                         KnownEntries(v, {"enabled", "mesh_dims", "min_tokens", "min_frames",
                                          "min_local_patch_rows", "cost_alpha"}));
  out = CpVisionFrameShardingConfig{};
  const std::string prefix = absl::StrFormat("%s.", v.key());
  auto error = [&](const Value& value, std::string_view what) {
    return absl::InvalidArgumentError(absl::StrFormat("%s%s (%s)", prefix, what, value.Where()));
  };
  if (const Entry* e = Find(entries, "enabled")) {
    absl::StatusOr<bool> enabled = e->value.Bool();
    if (!enabled.ok()) return error(e->value, "enabled must be a boolean");
    out.enabled = *enabled;
  }
  if (const Entry* e = Find(entries, "mesh_dims")) {
    if (!e->value.IsList())
      return error(e->value, "mesh_dims must be a list of mesh-dimension names");
    NMESH_RETURN_IF_ERROR(e->value.CheckBuilt());
    std::vector<std::string> dims;
    for (size_t i = 0; i < e->value.Size(); ++i) {
      const Value item = e->value.Item(i);
      if (!IsString(item)) {
        return error(e->value, "mesh_dims must be a list of mesh-dimension names");
      }
      dims.push_back(item.Text());
    }
    if (dims != std::vector<std::string>{"cp"}) {
      return error(e->value, "mesh_dims currently supports only [\"cp\"]");
    }
    out.mesh_dims = std::move(dims);
  }
  for (auto [name, member] :
       {std::pair{"min_tokens", &CpVisionFrameShardingConfig::min_tokens},
        std::pair{"min_frames", &CpVisionFrameShardingConfig::min_frames},
        std::pair{"min_local_patch_rows", &CpVisionFrameShardingConfig::min_local_patch_rows}}) {
    if (const Entry* e = Find(entries, name)) {
      absl::StatusOr<int64_t> value = e->value.Int(IntRule::kNonNegative);
      if (!value.ok()) {
        return error(e->value, absl::StrFormat("%s must be a non-negative integer", name));
      }
      out.*member = *value;
    }
  }
  if (const Entry* e = Find(entries, "cost_alpha")) {
    if (e->value.IsNull()) {
      out.cost_alpha_auto = false;
      out.cost_alpha.reset();
    } else if (IsString(e->value) && e->value.Text() == "auto") {
      out.cost_alpha_auto = true;
    } else if (absl::StatusOr<int64_t> alpha = e->value.Int(IntRule::kNonNegative); alpha.ok()) {
      out.cost_alpha_auto = false;
      out.cost_alpha = *alpha;
    } else {
      return error(e->value, "cost_alpha must be \"auto\", null, or a non-negative integer");
    }
  }
  return absl::OkStatus();
}

// FSDP2 checks that `multimodal` is a map (rule 8) before building it.
absl::Status ReadMultimodalField(const Value& v, FSDP2Config& config) {
  if (!v.IsMap()) {
    return v.Error("FSDP2Config.multimodal must be a MultimodalDistributedConfig instance.");
  }
  return BuildMultimodal(v, config.multimodal);
}

}  // namespace

// FSDP2's tp_plan: a string (e.g. the import path of a plan) or a map of strings.
absl::Status Read(const Value& v, std::optional<TpPlan>& out) {
  if (v.IsScalar() && !v.Bool().ok() && !v.Number().ok()) {
    out = v.Text();
    return absl::OkStatus();
  }
  if (!v.IsMap()) return v.Invalid("a map of strings to strings, or a string");
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, v.Entries());
  StringMap map;
  for (const Entry& entry : entries) {
    if (!entry.value.IsScalar()) return entry.value.Invalid("a string");
    map.emplace_back(entry.name, entry.value.Text());
  }
  out = std::move(map);
  return absl::OkStatus();
}

// activation_checkpointing_scope: a string or a list of strings.
absl::Status Read(const Value& v, std::vector<std::string>& out) {
  std::vector<std::string> entries;
  if (v.IsList()) {
    NMESH_RETURN_IF_ERROR(v.CheckBuilt());
    for (size_t i = 0; i < v.Size(); ++i) {
      const Value item = v.Item(i);
      if (!item.IsScalar() || item.Bool().ok() || item.Number().ok()) {
        return v.Error("activation_checkpointing_scope entries must be strings.");
      }
      entries.push_back(item.Text());
    }
  } else if (v.IsScalar() && !v.Bool().ok() && !v.Number().ok()) {
    entries.push_back(v.Text());
  } else {
    return v.Error("activation_checkpointing_scope must be a string or list of strings.");
  }
  absl::StatusOr<std::vector<std::string>> scopes = NormalizeActivationCheckpointingScope(entries);
  if (!scopes.ok()) return v.Error(std::string(scopes.status().message()));
  out = *std::move(scopes);
  return absl::OkStatus();
}

absl::Status Read(const Value& v, std::optional<OffloadPolicy>& out) {
  if (!v.IsMap()) return v.Invalid("a map of CPUOffloadPolicy fields");
  out.emplace();
  return ReadStruct(v, OffloadFieldTable(), *out);
}

absl::Status Read(const Value& v, MixedPrecisionPolicy& out) {
  if (!v.IsMap()) return v.Invalid("a map of MixedPrecisionPolicy fields");
  out = MixedPrecisionPolicy{};
  return ReadStruct(v, MixedPrecisionFieldTable(), out);
}

absl::Status Read(const Value& v, std::optional<MixedPrecisionPolicy>& out) {
  out.emplace();
  return Read(v, *out);
}

absl::Status BuildMultimodal(const Value& v, MultimodalDistributedConfig& out) {
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries,
                         KnownEntries(v, {"frozen_sharding", "vision"}));
  out = MultimodalDistributedConfig{};
  if (const Entry* e = Find(entries, "frozen_sharding")) {
    if (!IsString(e->value)) {
      return KeyError(e->value,
                      absl::StrFormat(" must be a string. Got %s.", PyTypeName(e->value)));
    }
    const std::string value =
        absl::StrReplaceAll(absl::AsciiStrToLower(e->value.Text()), {{"-", "_"}});
    const std::optional<FrozenSharding> sharding =
        ValueNamed<FrozenSharding>(kFrozenShardingNames, value);
    if (!sharding.has_value()) {
      return KeyError(e->value,
                      absl::StrFormat(" must be one of: %s. Got '%s'.",
                                      NameList<FrozenSharding>(kFrozenShardingNames, ", "), value));
    }
    out.frozen_sharding = *sharding;
  }
  if (const Entry* e = Find(entries, "vision")) {
    if (!e->value.IsMap()) {
      return e->value.Error(
          "MultimodalDistributedConfig.vision must be a MultimodalVisionConfig instance.");
    }
    NMESH_ASSIGN_OR_RETURN(std::vector<Entry> vision, KnownEntries(e->value, {"frame_sharding"}));
    if (const Entry* fs = Find(vision, "frame_sharding")) {
      if (!fs->value.IsMap()) {
        return fs->value.Error(
            "MultimodalVisionConfig.frame_sharding must be a CpVisionFrameShardingConfig "
            "instance.");
      }
      NMESH_RETURN_IF_ERROR(ReadFrameSharding(fs->value, out.vision.frame_sharding));
    }
  }
  return absl::OkStatus();
}

const Fields<FSDP2Config>& Fsdp2FieldTable() {
  using C = FSDP2Config;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(sequence_parallel),
      NMESH_FIELD(tp_plan),
      NMESH_FIELD(patch_is_packed_sequence),
      NMESH_FIELD(mp_policy),
      NMESH_FIELD(offload_policy),
      NMESH_FIELD(autocast_dtype),
      NMESH_FIELD(activation_checkpointing_scope),
      NMESH_FIELD(defer_fsdp_grad_sync),
      NMESH_FIELD(reshard_after_forward),
      NMESH_FIELD(enable_async_tensor_parallel),
      NMESH_FIELD(enable_compile),
      NMESH_FIELD(enable_fsdp2_prefetch),
      Member("fsdp2_backward_prefetch_depth", &C::fsdp2_backward_prefetch_depth,
             IntRule::kNonNegative),
      Member("fsdp2_forward_prefetch_depth", &C::fsdp2_forward_prefetch_depth,
             IntRule::kNonNegative),
      Field<C>{"multimodal", ReadMultimodalField},
  };
  return *fields;
}

const Fields<MegatronFSDPConfig>& MegatronFsdpFieldTable() {
  using C = MegatronFSDPConfig;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(megatron_fsdp_unit_modules), Field<C>{"zero_dp_strategy", ReadZeroDpStrategy},
      NMESH_FIELD(init_fsdp_with_meta_device), NMESH_FIELD(grad_reduce_in_fp32),
      NMESH_FIELD(preserve_fp32_weights),      NMESH_FIELD(overlap_grad_reduce),
      NMESH_FIELD(overlap_param_gather),       NMESH_FIELD(check_for_nan_in_grad),
      NMESH_FIELD(report_nan_in_param_grad),   NMESH_FIELD(average_in_collective),
      NMESH_FIELD(disable_bucketing),          NMESH_FIELD(calculate_per_token_loss),
      NMESH_FIELD(keep_fp8_transpose_cache),   NMESH_FIELD(nccl_ub),
      NMESH_FIELD(fsdp_double_buffer),
  };
  return *fields;
}

const Fields<DDPConfig>& DdpFieldTable() {
  using C = DDPConfig;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(activation_checkpointing_scope),
      NMESH_FIELD(broadcast_buffers),
      NMESH_FIELD(find_unused_parameters),
      NMESH_FIELD(static_graph),
      NMESH_FIELD(bucket_cap_mb),
      NMESH_FIELD(gradient_as_bucket_view),
      NMESH_FIELD(autocast_dtype),
  };
  return *fields;
}

const Fields<FSDP2Config>& FieldTableFor(const FSDP2Config&) { return Fsdp2FieldTable(); }
const Fields<MegatronFSDPConfig>& FieldTableFor(const MegatronFSDPConfig&) {
  return MegatronFsdpFieldTable();
}
const Fields<DDPConfig>& FieldTableFor(const DDPConfig&) { return DdpFieldTable(); }

}  // namespace nmesh::config::internal
