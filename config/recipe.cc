#include "nmesh/config/recipe.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/config/internal/yaml_value.h"
#include "nmesh/validate/error_fields.h"
#include "nmesh/validate/validate.h"
#include "yaml-cpp/yaml.h"

// yaml-cpp >= 0.7 bounds parser recursion (YAML::DeepRecursion); older versions overflow the stack
// on deeply nested input, which recipes must survive.
#if __has_include("yaml-cpp/depthguard.h")
#include "yaml-cpp/depthguard.h"
#else
#error "nmesh needs yaml-cpp >= 0.7 (YAML::DeepRecursion guards deeply nested recipes)"
#endif

namespace nmesh::config {
namespace {

using internal::Entry;
using internal::IntRule;
using internal::Position;
using internal::Value;

// A recipe is a few KiB; anything this large is not one.
constexpr std::uintmax_t kMaxRecipeBytes = 64u << 20;

bool IsMetaKey(std::string_view name) {
  return name == "_target_" || name == "_recursive_" || name == "_convert_";
}

const Entry* Find(const std::vector<Entry>& entries, std::string_view name) {
  for (const Entry& entry : entries) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

// ---- Field tables: one entry per config field, read from a non-null YAML value. ----------------

template <typename C>
struct Field {
  std::string_view name;
  std::function<absl::Status(const Value&, C&)> read;
};
template <typename C>
using Fields = std::vector<Field<C>>;

absl::Status Read(const Value& v, bool& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.Bool());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<bool>& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.Bool());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, int64_t& out, IntRule rule) {
  NMESH_ASSIGN_OR_RETURN(out, v.Int(rule));
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<int64_t>& out, IntRule rule) {
  NMESH_ASSIGN_OR_RETURN(out, v.Int(rule));
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<double>& out) {
  NMESH_ASSIGN_OR_RETURN(double number, v.Number());
  if (number <= 0) return v.Invalid("a positive number");
  out = number;
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<std::string>& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.String());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<Dtype>& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.DtypeValue());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<std::vector<std::string>>& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.StringList());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<std::vector<std::vector<std::string>>>& out) {
  if (!v.IsList()) return v.Invalid("a list of lists of strings");
  std::vector<std::vector<std::string>> parts;
  for (size_t i = 0; i < v.Size(); ++i) {
    NMESH_ASSIGN_OR_RETURN(std::vector<std::string> part, v.Item(i).StringList());
    parts.push_back(std::move(part));
  }
  out = std::move(parts);
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<TpPlan>& out) {
  if (v.IsScalar() && !v.Bool().ok() && !v.Number().ok()) {
    out = v.Text();  // a string, e.g. the import path of a plan
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
absl::Status Read(const Value& v, std::optional<RoundVirtualStages>& out) {
  const std::string text = absl::AsciiStrToLower(v.Text());
  if (v.IsScalar() && text == "up") {
    out = RoundVirtualStages::kUp;
  } else if (v.IsScalar() && text == "down") {
    out = RoundVirtualStages::kDown;
  } else {
    return v.Invalid("'up' or 'down'");
  }
  return absl::OkStatus();
}
// activation_checkpointing_scope: a string or a list of strings.
absl::Status Read(const Value& v, std::vector<std::string>& out) {
  std::vector<std::string> entries;
  if (v.IsList()) {
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
absl::Status Read(const Value& v, MixedPrecisionPolicy& out);
absl::Status Read(const Value& v, std::optional<MixedPrecisionPolicy>& out);
absl::Status Read(const Value& v, std::optional<OffloadPolicy>& out);

// A field stored in `C::*member`; a null value keeps the default.
template <typename C, typename T, typename... Extra>
Field<C> Member(std::string_view name, T C::*member, Extra... extra) {
  return {name, [member, extra...](const Value& v, C& config) -> absl::Status {
            if (v.IsNull()) return absl::OkStatus();
            return Read(v, config.*member, extra...);
          }};
}

// A field whose YAML key is its C++ name, in a table where `C` names the config type.
#define NMESH_FIELD(name, ...) Member(#name, &C::name __VA_OPT__(, ) __VA_ARGS__)

template <typename C>
const Field<C>* FindField(const Fields<C>& fields, std::string_view name) {
  for (const Field<C>& field : fields) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

// "<prefix>: ['a', 'b'] (file:line:col of the first unknown key)". `unknown` is in document order.
absl::Status UnknownOptionsError(std::string_view prefix, const std::vector<const Entry*>& unknown,
                                 std::string_view file, std::string_view suffix = "") {
  std::vector<std::string> names;
  for (const Entry* entry : unknown) {
    names.push_back(absl::StrFormat("'%s'", Abbreviate(entry->name)));
  }
  std::sort(names.begin(), names.end());
  // A long list is cut too (long names are above): the message stays a line.
  constexpr size_t kMaxNames = 20;
  const size_t total = names.size();
  if (total > kMaxNames) names.resize(kMaxNames);
  if (total > kMaxNames) names.push_back(absl::StrFormat("... (%d in all)", total));
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: [%s] (%s)%s", prefix, absl::StrJoin(names, ", "),
                      internal::FormatWhere(file, unknown.front()->key_position), suffix));
}

// Entries that are neither fields nor meta keys nor `also_known`.
template <typename C>
std::vector<const Entry*> UnknownEntries(const std::vector<Entry>& entries, const Fields<C>& fields,
                                         const std::vector<std::string_view>& also_known = {}) {
  std::vector<const Entry*> unknown;
  for (const Entry& entry : entries) {
    if (IsMetaKey(entry.name) || FindField(fields, entry.name) != nullptr) continue;
    if (std::find(also_known.begin(), also_known.end(), entry.name) != also_known.end()) continue;
    unknown.push_back(&entry);
  }
  return unknown;
}

template <typename C>
absl::Status ReadFields(const std::vector<Entry>& entries, const Fields<C>& fields, C& out) {
  for (const Entry& entry : entries) {
    if (const Field<C>* field = FindField(fields, entry.name)) {
      NMESH_RETURN_IF_ERROR(field->read(entry.value, out));
    }
  }
  return absl::OkStatus();
}

// A nested map (mp_policy, offload_policy, moe, ...): unknown keys are errors.
template <typename C>
absl::Status ReadStruct(const Value& v, const Fields<C>& fields, C& out) {
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, v.Entries());
  std::vector<const Entry*> unknown = UnknownEntries(entries, fields);
  if (!unknown.empty()) {
    return UnknownOptionsError(absl::StrFormat("Unknown options for %s", v.key()), unknown,
                               v.file());
  }
  return ReadFields(entries, fields, out);
}

const Fields<MixedPrecisionPolicy>& MixedPrecisionFields() {
  using C = MixedPrecisionPolicy;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(param_dtype),
      NMESH_FIELD(reduce_dtype),
      NMESH_FIELD(output_dtype),
      NMESH_FIELD(cast_forward_inputs),
  };
  return *fields;
}

const Fields<OffloadPolicy>& OffloadFields() {
  using C = OffloadPolicy;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(pin_memory),
  };
  return *fields;
}

// A recipe's mp_policy map starts from PyTorch's defaults, as MixedPrecisionPolicy(**map) does.
absl::Status Read(const Value& v, MixedPrecisionPolicy& out) {
  if (!v.IsMap()) return v.Invalid("a map of MixedPrecisionPolicy fields");
  out = MixedPrecisionPolicy{};
  return ReadStruct(v, MixedPrecisionFields(), out);
}
absl::Status Read(const Value& v, std::optional<MixedPrecisionPolicy>& out) {
  out.emplace();
  return Read(v, *out);
}
absl::Status Read(const Value& v, std::optional<OffloadPolicy>& out) {
  if (!v.IsMap()) return v.Invalid("a map of CPUOffloadPolicy fields");
  out.emplace();
  return ReadStruct(v, OffloadFields(), *out);
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

// Whether a YAML value is a string as Python sees it after loading (not null, bool or number).
bool IsString(const Value& v) { return v.IsScalar() && !v.Bool().ok() && !v.Number().ok(); }

// The Python type name of a loaded YAML value, as the reference's messages print it.
std::string PyTypeName(const Value& v) {
  if (v.IsNull()) return "NoneType";
  if (v.IsList()) return "list";
  if (v.IsMap()) return "dict";
  if (v.Bool().ok()) return "bool";
  if (v.Int(IntRule::kAny).ok()) return "int";
  if (v.Number().ok()) return "float";
  return "str";
}

// InvalidArgument "<key><message> (<where>)": the reference's text follows the key directly.
absl::Status KeyError(const Value& v, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrFormat("%s%s (%s)", v.key(), message, v.Where()));
}

// The keys of a map that are in `known` and not meta keys; unknown keys are an error.
absl::StatusOr<std::vector<Entry>> KnownEntries(const Value& v,
                                                const std::vector<std::string_view>& known) {
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, v.Entries());
  std::vector<const Entry*> unknown;
  for (const Entry& entry : entries) {
    if (IsMetaKey(entry.name)) continue;
    if (std::find(known.begin(), known.end(), entry.name) == known.end()) unknown.push_back(&entry);
  }
  if (!unknown.empty()) {
    return UnknownOptionsError(absl::StrFormat("Unknown options for %s", v.key()), unknown,
                               v.file());
  }
  return entries;
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

// `multimodal` (MultimodalDistributedConfig), a map (contract §2). Built at rule 5 for every
// strategy; FSDP2 also checks that the value is a map (rule 8).
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
    if (value == "root") {
      out.frozen_sharding = FrozenSharding::kRoot;
    } else if (value == "per_layer") {
      out.frozen_sharding = FrozenSharding::kPerLayer;
    } else if (value == "replicate") {
      out.frozen_sharding = FrozenSharding::kReplicate;
    } else {
      return KeyError(
          e->value,
          absl::StrFormat(" must be one of: root, per_layer, replicate. Got '%s'.", value));
    }
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

absl::Status ReadMultimodalField(const Value& v, FSDP2Config& config) {
  if (!v.IsMap()) {
    return v.Error("FSDP2Config.multimodal must be a MultimodalDistributedConfig instance.");
  }
  return BuildMultimodal(v, config.multimodal);
}

absl::Status ReadRecvBufferPoolSlack(const Value& v, PipelineConfig& config) {
  if (v.IsNull()) return v.Invalid("an integer >= 0");
  NMESH_ASSIGN_OR_RETURN(int64_t slack, v.Int(IntRule::kAny));
  if (slack < 0) {
    return v.Error(absl::StrFormat("pp_recv_buffer_pool_slack must be >= 0, got %d", slack));
  }
  config.pp_recv_buffer_pool_slack = slack;
  return absl::OkStatus();
}

const Fields<FSDP2Config>& Fsdp2Fields() {
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

const Fields<MegatronFSDPConfig>& MegatronFsdpFields() {
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

const Fields<DDPConfig>& DdpFields() {
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

const Fields<FSDP2Config>& FieldsOf(const FSDP2Config&) { return Fsdp2Fields(); }
const Fields<MegatronFSDPConfig>& FieldsOf(const MegatronFSDPConfig&) {
  return MegatronFsdpFields();
}
const Fields<DDPConfig>& FieldsOf(const DDPConfig&) { return DdpFields(); }

const Fields<PipelineConfig>& PipelineFields() {
  using C = PipelineConfig;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(pp_schedule),
      NMESH_FIELD(pp_schedule_csv),
      NMESH_FIELD(pp_microbatch_size, IntRule::kPositive),
      NMESH_FIELD(pp_batch_size, IntRule::kPositive),
      NMESH_FIELD(layers_per_stage, IntRule::kPositive),
      NMESH_FIELD(round_virtual_stages_to_pp_multiple),
      NMESH_FIELD(module_fqns_per_model_part),
      NMESH_FIELD(patch_inner_model),
      NMESH_FIELD(patch_causal_lm_model),
      NMESH_FIELD(patch_stage_backward_maybe_with_nosync),
      NMESH_FIELD(dtype),
      NMESH_FIELD(scale_grads_in_schedule),
      NMESH_FIELD(pp_seq_len, IntRule::kPositive),
      NMESH_FIELD(pp_recv_buffer_pool),
      Field<C>{"pp_recv_buffer_pool_slack", ReadRecvBufferPoolSlack},
  };
  return *fields;
}

const Fields<MoEParallelizerConfig>& MoeFields() {
  using C = MoEParallelizerConfig;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(ignore_router_for_ac),
      NMESH_FIELD(reshard_after_forward),
      NMESH_FIELD(lm_head_precision),
      NMESH_FIELD(wrap_outer_model),
      NMESH_FIELD(mp_policy),
  };
  return *fields;
}

#undef NMESH_FIELD

// ---- The recipe parser ---------------------------------------------------------------------

using validate::RequestedSizes;

struct SizeKey {
  std::string_view name;
  std::optional<int64_t> RequestedSizes::*member;
};
constexpr SizeKey kSizeKeys[] = {
    {"dp_size", &RequestedSizes::dp}, {"dp_replicate_size", &RequestedSizes::dp_replicate},
    {"tp_size", &RequestedSizes::tp}, {"pp_size", &RequestedSizes::pp},
    {"cp_size", &RequestedSizes::cp}, {"ep_size", &RequestedSizes::ep},
};

// Section keys that are not strategy fields.
constexpr std::string_view kSectionKeys[] = {
    "strategy", "dp_size", "dp_replicate_size",        "tp_size", "pp_size", "cp_size", "ep_size",
    "pipeline", "moe",     "activation_checkpointing", "nccl"};

class Parser {
 public:
  Parser(std::string_view filename, Section section, const RecipeOverrides& overrides)
      : overrides_(overrides) {
    recipe_.filename = std::string(filename);
    recipe_.section = section;
  }

  absl::StatusOr<Recipe> Parse(std::string_view text);

 private:
  const std::string& file() const { return recipe_.filename; }
  std::string section_name() const { return std::string(SectionName(recipe_.section)); }
  void Record(const std::string& key, Position position) {
    if (position.line > 0) recipe_.positions[key] = {position.line, position.column};
  }
  void RecordEntries(const std::vector<Entry>& entries) {
    for (const Entry& entry : entries) Record(entry.value.key(), entry.value.position());
  }

  absl::Status ParseDistEnv(const Value& value);
  absl::Status ParseSection(const Value& section);
  absl::Status ParseStrategy(const Entry* entry);
  absl::StatusOr<std::optional<int64_t>> ReadSize(const Value& value, std::string_view name);
  absl::Status ParseActivationCheckpointing(const Entry* entry);
  absl::Status ParseStrategyFields(const std::vector<Entry>& entries);
  absl::Status ParseNccl(const Entry* entry);
  // `pipeline` or `moe` (a non-null entry), read into `out`.
  template <typename C>
  absl::Status ParseSubsection(const Entry* entry, const Fields<C>& fields, std::optional<C>& out);
  void DefaultPipelineDtype(const Entry* pipeline);

 public:
  // The §4 checks, after the section is read (deferred for separate KD meshes, §8).
  absl::Status CheckStrategyConflicts();
  void DeferConflicts() { defer_conflicts_ = true; }
  Recipe& recipe() { return recipe_; }

 private:
  absl::Status Conflict(std::string_view message, std::string_view key);
  bool defer_conflicts_ = false;
  absl::Status strategy_error_;
  std::vector<Entry> section_entries_;

  RecipeOverrides overrides_;
  Recipe recipe_;
  // The strategy as the recipe wrote it (lower-cased), for messages.
  std::string strategy_label_;
};

absl::StatusOr<Recipe> Parser::Parse(std::string_view text) {
  YAML::Node root;
  try {
    // One document only; sections nmesh ignores are not built (a large one costs no memory).
    NMESH_ASSIGN_OR_RETURN(root, internal::LoadSingleDocument(text, file(),
                                                              {"distributed", "teacher_distributed",
                                                               "dist_env", "separate_meshes"}));
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe YAML nests deeper than %d levels (%s)", e.depth(),
                        internal::FormatWhere(file(), internal::ToPosition(e.mark))));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("malformed YAML in recipe: %s (%s)", internal::Printable(e.msg),
                        internal::FormatWhere(file(), internal::ToPosition(e.mark))));
  }
  const std::string wanted = section_name();
  if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
    const Value top(root, "recipe", file(), {1, 1});
    return top.Invalid("a map of sections at the top level");
  }

  // Only the sections nmesh reads must be unique; the rest of the recipe is not nmesh's business.
  std::optional<Value> section, dist_env;
  Position section_key;
  if (root.IsMap()) {
    std::map<std::string, Position> seen;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string name = it->first.Scalar();
      if (name != "distributed" && name != "teacher_distributed" && name != "dist_env" &&
          name != "separate_meshes") {
        continue;
      }
      const Position key_position = internal::ToPosition(it->first.Mark());
      if (auto [previous, inserted] = seen.emplace(name, key_position); !inserted) {
        return absl::InvalidArgumentError(
            absl::StrFormat("duplicate key %s (%s); first defined at line %d", name,
                            internal::FormatWhere(file(), key_position), previous->second.line));
      }
      Value value(it->second, name, file(), key_position);
      if (name == "separate_meshes") {
        Record(name, value.position());
        if (!value.IsNull()) {
          NMESH_ASSIGN_OR_RETURN(recipe_.separate_meshes, value.Bool());
        }
        continue;
      }
      if (name == "teacher_distributed") {
        recipe_.has_teacher_section = true;
        Record(name, key_position);
      }
      if (name == "dist_env") dist_env = std::move(value);
      if (name == wanted) {
        section = std::move(value);
        section_key = key_position;
      }
    }
  }
  // Knowledge distillation (§8): the switch and the teacher section go together.
  if (recipe_.has_teacher_section && !recipe_.separate_meshes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("teacher_distributed requires separate_meshes=true (%s)",
                        recipe_.Where("teacher_distributed")));
  }
  if (recipe_.separate_meshes && !recipe_.has_teacher_section) {
    return absl::InvalidArgumentError(
        absl::StrFormat("separate_meshes=true requires a teacher_distributed section (%s)",
                        recipe_.Where("separate_meshes")));
  }
  if (!section.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe '%s' has no '%s' section", file(), wanted));
  }
  Record(wanted, section_key);
  if (!section->IsMap()) return section->Invalid("a map of options");
  if (dist_env.has_value()) NMESH_RETURN_IF_ERROR(ParseDistEnv(*dist_env));
  NMESH_RETURN_IF_ERROR(ParseSection(*section));
  return recipe_;
}

absl::Status Parser::ParseDistEnv(const Value& value) {
  if (value.IsNull()) return absl::OkStatus();
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, value.Entries());
  RecordEntries(entries);
  if (const Entry* backend = Find(entries, "backend"); backend && !backend->value.IsNull()) {
    NMESH_ASSIGN_OR_RETURN(recipe_.dist_env.backend, backend->value.String());
  }
  if (const Entry* timeout = Find(entries, "timeout_minutes");
      timeout && !timeout->value.IsNull()) {
    absl::StatusOr<double> minutes = timeout->value.Number();
    if (!minutes.ok() || *minutes <= 0) return timeout->value.Invalid("a positive number");
    // 1e-300 minutes rounds to a zero duration: every operation would time out at once.
    if (absl::Status usable =
            TimeoutFromNumber(*minutes, absl::Minutes(1), "minutes", timeout->value.key()).status();
        !usable.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s (%s)", usable.message(), timeout->value.Where()));
    }
    recipe_.dist_env.timeout_minutes = *minutes;
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseSection(const Value& section) {
  NMESH_ASSIGN_OR_RETURN(section_entries_, section.Entries());
  const std::vector<Entry>& entries = section_entries_;
  RecordEntries(entries);

  // 1. The strategy name (resolved in 8).
  NMESH_RETURN_IF_ERROR(ParseStrategy(Find(entries, "strategy")));

  // 2. The six sizes; flags replace the file's values (which are then not read).
  RequestedSizes& sizes = recipe_.request.sizes;
  for (const SizeKey& size : kSizeKeys) {
    const std::string key = absl::StrFormat("%s.%s", section_name(), size.name);
    if (overrides_.sizes.*size.member) {
      sizes.*size.member = overrides_.sizes.*size.member;
      recipe_.positions.erase(key);
    } else if (const Entry* entry = Find(entries, size.name)) {
      NMESH_ASSIGN_OR_RETURN(sizes.*size.member, ReadSize(entry->value, size.name));
    }
  }
  sizes.world_size = overrides_.sizes.world_size;

  // 3. activation_checkpointing (pipeline and moe are read in 7, 9 and 11).
  NMESH_RETURN_IF_ERROR(ParseActivationCheckpointing(Find(entries, "activation_checkpointing")));

  // 5. multimodal, mp_policy, offload_policy and autocast_dtype are built whatever the strategy.
  {
    FSDP2Config scratch;
    if (const Entry* e = Find(entries, "multimodal"); e != nullptr && e->value.IsMap()) {
      NMESH_RETURN_IF_ERROR(BuildMultimodal(e->value, scratch.multimodal));
    }
    for (std::string_view name : {"mp_policy", "offload_policy", "autocast_dtype"}) {
      if (const Entry* e = Find(entries, name)) {
        NMESH_RETURN_IF_ERROR(FindField(Fsdp2Fields(), name)->read(e->value, scratch));
      }
    }
  }

  // 6. Selective checkpointing, on the name as written.
  if (recipe_.activation_checkpointing == ActivationCheckpointing::kSelective &&
      strategy_label_ != "fsdp2" && strategy_label_ != "ddp") {
    return Find(entries, "activation_checkpointing")
        ->value.Error(absl::StrFormat(
            "selective activation checkpointing is supported only for FSDP2 and DDP configs. "
            "(strategy '%s')",
            strategy_label_));
  }

  // 7. A pipeline with pp <= 1 is dropped with a warning, a moe with ep <= 1 silently; neither
  // is checked then.
  const Entry* pipeline = Find(entries, "pipeline");
  const Entry* moe = Find(entries, "moe");
  const int64_t pp = sizes.pp.value_or(1);
  if (pipeline != nullptr && !pipeline->value.IsNull() && !validate::HasPipeline(sizes)) {
    recipe_.warnings.push_back(absl::StrFormat(
        "`%s` is set but pp_size=%d (<= 1): it is ignored; set pp_size > 1 to use pipeline "
        "parallelism (%s)",
        pipeline->value.key(), pp, internal::FormatWhere(file(), pipeline->key_position)));
  }

  // 8. The strategy is resolved; every other key must be one of its fields.
  if (!strategy_error_.ok()) return strategy_error_;
  NMESH_RETURN_IF_ERROR(ParseStrategyFields(entries));

  // nmesh: per-axis NCCL settings (names are checked against the mesh by the job layer).
  NMESH_RETURN_IF_ERROR(ParseNccl(Find(entries, "nccl")));

  // 9, 10. The pipeline config.
  if (validate::HasPipeline(sizes)) {
    if (pipeline == nullptr || pipeline->value.IsNull()) {
      const Entry* pp_entry = Find(entries, "pp_size");
      std::string where;
      if (pp_entry != nullptr && recipe_.PositionOf("pp_size").has_value()) {
        where = absl::StrFormat(" (%s)", pp_entry->value.Where());
      }
      return absl::InvalidArgumentError(absl::StrFormat(
          "`pp_size=%d` (> 1) enables pipeline parallelism but no `distributed.pipeline` block "
          "was provided. Add a `distributed.pipeline` section (e.g. `pp_schedule`, "
          "`pp_microbatch_size`); an empty `pipeline: {}` selects defaults.%s",
          pp, where));
    }
    NMESH_RETURN_IF_ERROR(ParseSubsection(pipeline, PipelineFields(), recipe_.pipeline));
    DefaultPipelineDtype(pipeline);
  }

  // 11. The MoE config.
  if (validate::HasMoe(sizes)) {
    if (moe == nullptr || moe->value.IsNull()) {
      recipe_.moe.emplace();
    } else {
      NMESH_RETURN_IF_ERROR(ParseSubsection(moe, MoeFields(), recipe_.moe));
    }
  }

  if (defer_conflicts_) return absl::OkStatus();
  return CheckStrategyConflicts();
}

// Rule 10: with pp > 1 and no pipeline.dtype, the dtype is the strategy's mp_policy output_dtype,
// else its param_dtype; an explicit dtype that differs is kept with a warning.
void Parser::DefaultPipelineDtype(const Entry* pipeline) {
  const auto* fsdp2 = std::get_if<FSDP2Config>(&recipe_.strategy_config);
  if (fsdp2 == nullptr) return;
  const MixedPrecisionPolicy& policy = fsdp2->mp_policy;
  const std::optional<Dtype> policy_dtype =
      policy.output_dtype.has_value() ? policy.output_dtype : policy.param_dtype;
  PipelineConfig& config = *recipe_.pipeline;
  if (!config.dtype.has_value()) {
    config.dtype = policy_dtype;
  } else if (policy_dtype.has_value() && *config.dtype != *policy_dtype) {
    recipe_.warnings.push_back(absl::StrFormat(
        "pipeline.dtype=%s does not match the strategy's mp_policy dtype %s; the pipeline keeps "
        "%s (%s)",
        DtypeName(*config.dtype), DtypeName(*policy_dtype), DtypeName(*config.dtype),
        internal::FormatWhere(file(), pipeline->key_position)));
  }
}

absl::Status Parser::ParseStrategy(const Entry* entry) {
  StrategyKind kind = kDefaultStrategy;
  strategy_label_ = std::string(StrategyName(kind));
  if (overrides_.strategy.has_value()) {
    kind = *overrides_.strategy;
    strategy_label_ = std::string(StrategyName(kind));
    recipe_.positions.erase(absl::StrFormat("%s.strategy", section_name()));
  } else if (entry != nullptr && !entry->value.IsNull()) {
    if (!entry->value.IsScalar()) {
      strategy_label_.clear();
      strategy_error_ = entry->value.Invalid("a strategy name");
    } else {
      strategy_label_ = absl::AsciiStrToLower(entry->value.Text());
      absl::StatusOr<StrategyKind> parsed = config::ParseStrategy(entry->value.Text());
      if (parsed.ok()) {
        kind = *parsed;
      } else {
        strategy_error_ = entry->value.Error(std::string(parsed.status().message()));
      }
    }
  } else if (entry != nullptr) {
    // (nmesh) A null strategy gives the unknown-strategy message.
    strategy_label_.clear();
    absl::StatusOr<StrategyKind> parsed = config::ParseStrategy("None");
    strategy_error_ = entry->value.Error(std::string(parsed.status().message()));
  }
  recipe_.request.strategy = kind;
  recipe_.strategy_config = DefaultStrategyConfig(kind);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> Parser::ReadSize(const Value& value, std::string_view name) {
  if (value.IsNull()) return std::nullopt;
  if (name == "dp_size") {
    if (absl::StatusOr<int64_t> dp = value.Int(IntRule::kAny);
        dp.ok() && *dp == validate::kInferDp) {
      return std::nullopt;  // infer
    }
  }
  NMESH_ASSIGN_OR_RETURN(int64_t size, value.Int(IntRule::kPositive));
  return size;
}

absl::Status Parser::ParseActivationCheckpointing(const Entry* entry) {
  ActivationCheckpointing& mode = recipe_.activation_checkpointing;
  if (entry == nullptr || entry->value.IsNull()) {
    mode = ActivationCheckpointing::kFalse;
  } else if (absl::StatusOr<bool> flag = entry->value.Bool(); flag.ok()) {
    mode = *flag ? ActivationCheckpointing::kFull : ActivationCheckpointing::kFalse;
  } else {
    absl::StatusOr<ActivationCheckpointing> parsed =
        entry->value.IsScalar() ? config::ParseActivationCheckpointing(entry->value.Text())
                                : absl::InvalidArgumentError("not a scalar");
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.activation_checkpointing must be a boolean or one of 'full', 'selective', "
          "'false'. Got %s (%s)",
          section_name(), entry->value.Describe(), entry->value.Where()));
    }
    mode = *parsed;
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseNccl(const Entry* entry) {
  if (entry == nullptr || entry->value.IsNull()) return absl::OkStatus();
  if (!entry->value.IsMap()) {
    return entry->value.Invalid("a map of axis or group names to NCCL settings");
  }
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> groups, entry->value.Entries());
  for (const Entry& group : groups) {
    // The group's key: an unknown axis name is reported there.
    Record(group.value.key(), group.key_position);
    if (group.value.IsNull()) continue;
    if (!group.value.IsMap()) {
      return group.value.Invalid("a map of NCCL settings (e.g. {max_ctas: 16})");
    }
    NMESH_ASSIGN_OR_RETURN(std::vector<Entry> fields, group.value.Entries());
    comm::NcclSettings settings;
    for (const Entry& field : fields) {
      Record(field.value.key(), field.value.position());
      const comm::NcclField* row = comm::FindNcclField(field.name);
      if (row == nullptr) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: unknown NCCL setting '%s'; known settings are %s (%s)", group.value.key(),
            field.name, comm::NcclFieldNames(), internal::FormatWhere(file(), field.key_position)));
      }
      if (field.value.IsNull()) continue;
      if (!field.value.IsScalar()) {
        return field.value.Error(
            absl::StrFormat("must be a scalar, got %s", field.value.Describe()));
      }
      // The YAML scalar typed as the field wants it; anything else is passed on as its text, for
      // SetNcclField to refuse with the field's rule.
      comm::NcclValue value = field.value.Text();
      if (row->kind != comm::NcclField::Kind::kString && field.value.IsPlain()) {
        if (absl::StatusOr<bool> b = field.value.Bool(); b.ok()) {
          value = *b;
        } else if (absl::StatusOr<int64_t> i = field.value.Int(internal::IntRule::kAny); i.ok()) {
          value = *i;
        }
      }
      if (absl::Status set = comm::SetNcclField(settings, field.name, value, field.value.key());
          !set.ok()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s (%s)", set.message(), field.value.Where()));
      }
    }
    if (absl::Status checked = comm::CheckNcclSettings(settings, group.value.key());
        !checked.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s (%s)", checked.message(), group.value.Where()));
    }
    recipe_.nccl[group.name] = std::move(settings);
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseStrategyFields(const std::vector<Entry>& entries) {
  return std::visit(
      [&](auto& config) -> absl::Status {
        const auto& fields = FieldsOf(config);
        std::vector<const Entry*> unknown = UnknownEntries(
            entries, fields,
            std::vector<std::string_view>(std::begin(kSectionKeys), std::end(kSectionKeys)));
        if (!unknown.empty()) {
          const bool tp_plan = std::any_of(unknown.begin(), unknown.end(),
                                           [](const Entry* e) { return e->name == "tp_plan"; });
          return UnknownOptionsError(
              absl::StrFormat("Unknown options for strategy '%s'", strategy_label_), unknown,
              file(),
              tp_plan && recipe_.request.strategy == StrategyKind::kMegatronFsdp
                  ? "; tp_plan is not supported by MegatronFSDP, use FSDP2 (strategy: fsdp2) for a "
                    "custom tensor-parallel plan"
                  : "");
        }
        NMESH_RETURN_IF_ERROR(ReadFields(entries, fields, config));
        using C = std::decay_t<decltype(config)>;
        if constexpr (std::is_same_v<C, MegatronFSDPConfig>) {
          config.activation_checkpointing =
              recipe_.activation_checkpointing != ActivationCheckpointing::kFalse;
        } else {
          config.activation_checkpointing = recipe_.activation_checkpointing;
        }
        return absl::OkStatus();
      },
      recipe_.strategy_config);
}

template <typename C>
absl::Status Parser::ParseSubsection(const Entry* entry, const Fields<C>& fields,
                                     std::optional<C>& out) {
  const Value& value = entry->value;
  if (!value.IsMap()) return value.Invalid("a map of options");
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, value.Entries());
  RecordEntries(entries);
  // The reference's pipeline takes a Python `loss_fn`, which no C++ config can hold.
  const Entry* loss_fn = std::is_same_v<C, PipelineConfig> ? Find(entries, "loss_fn") : nullptr;
  if (loss_fn != nullptr) {
    recipe_.warnings.push_back(absl::StrFormat(
        "%s is a Python callable that nmesh cannot represent; it is ignored (%s)",
        loss_fn->value.key(), internal::FormatWhere(file(), loss_fn->key_position)));
  }
  std::vector<const Entry*> unknown = UnknownEntries(entries, fields);
  unknown.erase(std::remove(unknown.begin(), unknown.end(), loss_fn), unknown.end());
  if (!unknown.empty()) {
    return UnknownOptionsError(absl::StrFormat("Unknown options for %s", value.key()), unknown,
                               file());
  }
  C config;
  NMESH_RETURN_IF_ERROR(ReadFields(entries, fields, config));
  out = std::move(config);
  return absl::OkStatus();
}

absl::Status Parser::Conflict(std::string_view message, std::string_view key) {
  const Entry* entry = Find(section_entries_, key);
  const bool from_file = entry != nullptr && recipe_.PositionOf(key).has_value();
  if (!from_file) return absl::InvalidArgumentError(std::string(message));
  return absl::InvalidArgumentError(absl::StrFormat("%s (%s=%s at %s)", message, entry->value.key(),
                                                    entry->value.Describe(), entry->value.Where()));
}

// The strategy-support checks before any mesh (validate::FindUnsupportedSize), naming the key's
// file:line:col when the file set it.
absl::Status Parser::CheckStrategyConflicts() {
  const std::optional<validate::UnsupportedSize> unsupported =
      validate::FindUnsupportedSize(recipe_.request.strategy, recipe_.request.sizes);
  if (!unsupported.has_value()) return absl::OkStatus();
  return Conflict(unsupported->rule, unsupported->field);
}

// Separate knowledge-distillation meshes (§8): both sections follow the rules (student first),
// both must set dp_size, the mesh sizes must fill the job's world, the §4 checks run on both, and
// neither may be DDP. Returns `section`'s recipe with its ranks.
absl::StatusOr<Recipe> ParseSeparateMeshes(std::string_view text, std::string_view filename,
                                           Section section, const RecipeOverrides& overrides) {
  Parser student(filename, Section::kDistributed,
                 section == Section::kDistributed ? overrides : RecipeOverrides{});
  Parser teacher(filename, Section::kTeacherDistributed,
                 section == Section::kTeacherDistributed ? overrides : RecipeOverrides{});
  student.DeferConflicts();
  teacher.DeferConflicts();
  NMESH_RETURN_IF_ERROR(student.Parse(text).status());
  NMESH_RETURN_IF_ERROR(teacher.Parse(text).status());
  int64_t mesh_sizes[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    const Recipe& recipe = (i == 0 ? student : teacher).recipe();
    const RequestedSizes& s = recipe.request.sizes;
    // Sizes from flags are not checked yet; a bad one would give a negative mesh size.
    if (absl::Status given = validate::CheckRequestedSizes(s); !given.ok()) {
      return recipe.Annotate(given, validate::FieldsOf(given).subject);
    }
    if (!s.dp.has_value() || *s.dp == validate::kInferDp) {
      return recipe.Annotate(
          absl::InvalidArgumentError(absl::StrFormat(
              "%s.dp_size must be set when separate_meshes=true so the non-overlapping rank "
              "split is explicit",
              SectionName(recipe.section))),
          SectionName(recipe.section));
    }
    const std::optional<int64_t> size = validate::RequestedMeshSize(s);
    if (!size.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: the mesh size overflows", SectionName(recipe.section)));
    }
    mesh_sizes[i] = *size;
  }
  int64_t sum = 0;
  if (__builtin_add_overflow(mesh_sizes[0], mesh_sizes[1], &sum)) {
    return absl::InvalidArgumentError("Separate KD mesh sizes overflow");
  }
  const int64_t world = overrides.job_world_size.value_or(sum);
  if (sum != world) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Separate KD mesh sizes must use every rank exactly once: student=%d + teacher=%d != "
        "world_size=%d",
        mesh_sizes[0], mesh_sizes[1], world));
  }
  NMESH_RETURN_IF_ERROR(student.CheckStrategyConflicts());
  NMESH_RETURN_IF_ERROR(teacher.CheckStrategyConflicts());
  for (Parser* parser : {&student, &teacher}) {
    if (parser->recipe().request.strategy == StrategyKind::kDdp) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "Separate KD meshes currently require mesh-backed strategies; DDP is not supported "
          "(%s)",
          SectionName(parser->recipe().section)));
    }
  }
  Recipe& chosen = (section == Section::kDistributed ? student : teacher).recipe();
  const int64_t begin = section == Section::kDistributed ? 0 : mesh_sizes[0];
  const int64_t count = mesh_sizes[section == Section::kDistributed ? 0 : 1];
  std::vector<int64_t> ranks(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) ranks[static_cast<size_t>(i)] = begin + i;
  chosen.request.ranks = std::move(ranks);
  chosen.request.job_world_size = world;
  return std::move(chosen);
}

}  // namespace

std::string_view SectionName(Section section) {
  return section == Section::kTeacherDistributed ? "teacher_distributed" : "distributed";
}

absl::StatusOr<Section> ParseSection(std::string_view name) {
  if (name == "distributed") return Section::kDistributed;
  if (name == "teacher_distributed") return Section::kTeacherDistributed;
  return absl::InvalidArgumentError(absl::StrFormat(
      "Unknown recipe section: %s. Valid sections: ['distributed', 'teacher_distributed']", name));
}

std::optional<absl::Duration> DistEnv::Timeout() const {
  if (!timeout_minutes.has_value()) return std::nullopt;
  return absl::Seconds(*timeout_minutes * 60.0);
}

std::optional<SourcePosition> Recipe::PositionOf(std::string_view key) const {
  if (auto it = positions.find(key); it != positions.end()) return it->second;
  const std::string relative = absl::StrFormat("%s.%s", SectionName(section), key);
  if (auto it = positions.find(relative); it != positions.end()) return it->second;
  return std::nullopt;
}

std::string Recipe::Where(std::string_view key) const {
  const std::optional<SourcePosition> position = PositionOf(key);
  if (!position.has_value()) return "";
  return internal::FormatWhere(filename, {position->line, position->column});
}

absl::Status Recipe::Annotate(const absl::Status& status, std::string_view key) const {
  const std::string where = Where(key);
  if (status.ok() || where.empty()) return status;
  return absl::Status(status.code(), absl::StrFormat("%s (%s)", status.message(), where));
}

absl::Status Recipe::AnnotateSizeError(const absl::Status& status) const {
  if (status.ok() || (!filename.empty() && absl::StrContains(status.message(), filename))) {
    return status;
  }
  for (const std::string& field : validate::FieldsOf(status).named) {
    if (PositionOf(field).has_value()) return Annotate(status, field);
  }
  return Annotate(status, SectionName(section));
}

absl::StatusOr<Recipe> ParseRecipe(std::string_view yaml_text, std::string_view filename,
                                   Section section, const RecipeOverrides& overrides) {
  // yaml-cpp reports errors by throwing, also from node accessors; nothing may escape.
  try {
    Parser parser(filename, section, overrides);
    absl::StatusOr<Recipe> recipe = parser.Parse(yaml_text);
    if (!recipe.ok() || !recipe->separate_meshes) return recipe;
    return ParseSeparateMeshes(yaml_text, filename, section, overrides);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid YAML in recipe: %s (%s)", internal::Printable(e.msg),
                        internal::FormatWhere(filename, internal::ToPosition(e.mark))));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrFormat("unexpected error reading recipe '%s': %s", filename, e.what()));
  }
}

absl::StatusOr<Recipe> LoadRecipeFile(const std::string& path, Section section,
                                      const RecipeOverrides& overrides) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': %s", path,
                        error ? error.message() : std::string("No such file or directory")));
  }
  if (std::filesystem::is_directory(status)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': it is a directory", path));
  }
  // A FIFO with no writer blocks the open for ever (and a socket cannot be opened); devices
  // such as /dev/null are read, bounded, below.
  if (std::filesystem::is_fifo(status) || std::filesystem::is_socket(status)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': it is a %s, not a regular file", path,
                        std::filesystem::is_fifo(status) ? "FIFO (named pipe)" : "socket"));
  }
  const std::uintmax_t bytes = std::filesystem::file_size(path, error);
  if (!error && bytes > kMaxRecipeBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe file '%s' is %d bytes, more than the %d a recipe may have", path,
                        bytes, kMaxRecipeBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': %s", path, std::strerror(errno)));
  }
  // Bounded read: a device or a pipe (/dev/zero, /dev/stdin) has no size to check beforehand.
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof(chunk)) || in.gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxRecipeBytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "recipe file '%s' has more than the %d bytes a recipe may have", path, kMaxRecipeBytes));
    }
  }
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot read recipe file '%s'", path));
  }
  return ParseRecipe(text, path, section, overrides);
}

}  // namespace nmesh::config
