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
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/config/internal/yaml_value.h"
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
constexpr int64_t kMaxMultimodalValues = 100000;

bool IsMetaKey(std::string_view name) {
  return name == "_target_" || name == "_recursive_" || name == "_convert_";
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
absl::Status Read(const Value& v, std::string& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.String());
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
absl::Status Read(const Value& v, std::optional<StringMap>& out) {
  if (!v.IsMap()) return v.Invalid("a map of strings to strings");
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
absl::Status Read(const Value& v, nlohmann::json& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.Json(kMaxMultimodalValues));
  return absl::OkStatus();
}
// activation_checkpointing_scope: a string or a list of strings.
absl::Status Read(const Value& v, std::vector<std::string>& out) {
  std::vector<std::string> entries;
  if (v.IsList()) {
    NMESH_ASSIGN_OR_RETURN(entries, v.StringList());
  } else if (v.IsScalar()) {
    entries.push_back(v.Text());
  } else {
    return v.Invalid("a string or a list of strings");
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
      NMESH_FIELD(multimodal),
      NMESH_FIELD(backend),
  };
  return *fields;
}

const Fields<MegatronFSDPConfig>& MegatronFsdpFields() {
  using C = MegatronFSDPConfig;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(sequence_parallel),
      NMESH_FIELD(megatron_fsdp_unit_modules),
      Field<C>{"zero_dp_strategy", ReadZeroDpStrategy},
      NMESH_FIELD(init_fsdp_with_meta_device),
      NMESH_FIELD(grad_reduce_in_fp32),
      NMESH_FIELD(preserve_fp32_weights),
      NMESH_FIELD(overlap_grad_reduce),
      NMESH_FIELD(overlap_param_gather),
      NMESH_FIELD(check_for_nan_in_grad),
      NMESH_FIELD(report_nan_in_param_grad),
      NMESH_FIELD(average_in_collective),
      NMESH_FIELD(disable_bucketing),
      NMESH_FIELD(calculate_per_token_loss),
      NMESH_FIELD(keep_fp8_transpose_cache),
      NMESH_FIELD(nccl_ub),
      NMESH_FIELD(fsdp_double_buffer),
      NMESH_FIELD(backend),
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
      NMESH_FIELD(backend),
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

struct SizeKey {
  std::string_view name;
  std::optional<int64_t> ParallelSizes::*member;
};
constexpr SizeKey kSizeKeys[] = {
    {"dp_size", &ParallelSizes::dp}, {"dp_replicate_size", &ParallelSizes::dp_replicate},
    {"tp_size", &ParallelSizes::tp}, {"pp_size", &ParallelSizes::pp},
    {"cp_size", &ParallelSizes::cp}, {"ep_size", &ParallelSizes::ep},
};

// Section keys that are not strategy fields.
constexpr std::string_view kSectionKeys[] = {
    "strategy", "dp_size", "dp_replicate_size", "tp_size", "pp_size",
    "cp_size",  "ep_size", "pipeline",          "moe",     "activation_checkpointing"};

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
  // `pipeline` or `moe`: checked, then kept only when `size_name` > 1 (defaulted when absent).
  template <typename C>
  absl::Status ParseSubsection(const Entry* entry, std::string_view size_name,
                               const Fields<C>& fields, std::optional<C>& out);
  // The requested size of a size key ("pp_size"), unset when not given.
  std::optional<int64_t> SizeOf(std::string_view size_name) const;
  absl::Status CheckStrategyConflicts(const std::vector<Entry>& entries);
  absl::Status Conflict(std::string_view message, const std::vector<Entry>& entries,
                        std::string_view key);

  RecipeOverrides overrides_;
  Recipe recipe_;
  // The strategy as the recipe wrote it (lower-cased), for messages.
  std::string strategy_label_;
};

const Entry* Find(const std::vector<Entry>& entries, std::string_view name) {
  for (const Entry& entry : entries) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

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
      if (name != "distributed" && name != "teacher_distributed" && name != "dist_env") continue;
      const Position key_position = internal::ToPosition(it->first.Mark());
      if (auto [previous, inserted] = seen.emplace(name, key_position); !inserted) {
        return absl::InvalidArgumentError(
            absl::StrFormat("duplicate key %s (%s); first defined at line %d", name,
                            internal::FormatWhere(file(), key_position), previous->second.line));
      }
      Value value(it->second, name, file(), key_position);
      if (name == "teacher_distributed") recipe_.has_teacher_section = true;
      if (name == "dist_env") dist_env = std::move(value);
      if (name == wanted) {
        section = std::move(value);
        section_key = key_position;
      }
    }
  }
  if (!section.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe '%s' has no '%s' section", file(), wanted));
  }
  Record(wanted, section_key);
  if (!section->IsMap()) return section->Invalid("a map of options");
  if (dist_env.has_value()) NMESH_RETURN_IF_ERROR(ParseDistEnv(*dist_env));
  NMESH_RETURN_IF_ERROR(ParseSection(*section));
  return std::move(recipe_);
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
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, section.Entries());
  RecordEntries(entries);

  // 1. The strategy.
  NMESH_RETURN_IF_ERROR(ParseStrategy(Find(entries, "strategy")));

  // 2. The six sizes; flags replace the file's values (which are then not read).
  ParallelSizes& sizes = recipe_.request.sizes;
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

  // 3. activation_checkpointing (pipeline and moe are read in 7).
  NMESH_RETURN_IF_ERROR(ParseActivationCheckpointing(Find(entries, "activation_checkpointing")));

  // 4, 5, 9. Meta keys are skipped; everything else must be a field of the strategy.
  NMESH_RETURN_IF_ERROR(ParseStrategyFields(entries));

  // 6. Selective checkpointing.
  if (recipe_.activation_checkpointing == ActivationCheckpointing::kSelective &&
      recipe_.request.strategy == StrategyKind::kMegatronFsdp) {
    return Find(entries, "activation_checkpointing")
        ->value.Error(absl::StrFormat(
            "selective activation checkpointing is supported only for FSDP2 and DDP, not "
            "strategy '%s'",
            strategy_label_));
  }

  // 7, 8. Pipeline and MoE configs.
  NMESH_RETURN_IF_ERROR(
      ParseSubsection(Find(entries, "pipeline"), "pp_size", PipelineFields(), recipe_.pipeline));
  NMESH_RETURN_IF_ERROR(ParseSubsection(Find(entries, "moe"), "ep_size", MoeFields(), recipe_.moe));

  return CheckStrategyConflicts(entries);
}

absl::Status Parser::ParseStrategy(const Entry* entry) {
  StrategyKind kind = kDefaultStrategy;
  strategy_label_ = std::string(StrategyName(kind));
  if (overrides_.strategy.has_value()) {
    kind = *overrides_.strategy;
    strategy_label_ = std::string(StrategyName(kind));
    recipe_.positions.erase(absl::StrFormat("%s.strategy", section_name()));
  } else if (entry != nullptr && !entry->value.IsNull()) {
    if (!entry->value.IsScalar()) return entry->value.Invalid("a strategy name");
    absl::StatusOr<StrategyKind> parsed = config::ParseStrategy(entry->value.Text());
    if (!parsed.ok()) return entry->value.Error(std::string(parsed.status().message()));
    kind = *parsed;
    strategy_label_ = absl::AsciiStrToLower(entry->value.Text());
  }
  recipe_.request.strategy = kind;
  recipe_.strategy_config = DefaultStrategyConfig(kind);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> Parser::ReadSize(const Value& value, std::string_view name) {
  if (value.IsNull()) return std::nullopt;
  if (name == "dp_size") {
    if (absl::StatusOr<int64_t> dp = value.Int(IntRule::kAny); dp.ok() && *dp == -1) {
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

std::optional<int64_t> Parser::SizeOf(std::string_view size_name) const {
  for (const SizeKey& size : kSizeKeys) {
    if (size.name == size_name) return recipe_.request.sizes.*size.member;
  }
  return std::nullopt;
}

template <typename C>
absl::Status Parser::ParseSubsection(const Entry* entry, std::string_view size_name,
                                     const Fields<C>& fields, std::optional<C>& out) {
  const int64_t size = SizeOf(size_name).value_or(1);
  if (entry == nullptr || entry->value.IsNull()) {
    if (size > 1) out = C{};
    return absl::OkStatus();
  }
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
  if (size <= 1) {
    recipe_.warnings.push_back(absl::StrFormat(
        "%s is set but %s=%d (<= 1): it is ignored; set %s > 1 to use it (%s)", value.key(),
        size_name, size, size_name, internal::FormatWhere(file(), entry->key_position)));
    return absl::OkStatus();
  }
  out = std::move(config);
  return absl::OkStatus();
}

absl::Status Parser::Conflict(std::string_view message, const std::vector<Entry>& entries,
                              std::string_view key) {
  const Entry* entry = Find(entries, key);
  const bool from_file = entry != nullptr && recipe_.PositionOf(key).has_value();
  if (!from_file) return absl::InvalidArgumentError(std::string(message));
  return absl::InvalidArgumentError(absl::StrFormat("%s (%s=%s at %s)", message, entry->value.key(),
                                                    entry->value.Describe(), entry->value.Where()));
}

absl::Status Parser::CheckStrategyConflicts(const std::vector<Entry>& entries) {
  const ParallelSizes& sizes = recipe_.request.sizes;
  const StrategyKind kind = recipe_.request.strategy;
  if (kind != StrategyKind::kFsdp2 && sizes.dp_replicate.value_or(1) > 1) {
    return Conflict("dp_replicate_size is only supported with FSDP2Config", entries,
                    "dp_replicate_size");
  }
  if (kind == StrategyKind::kMegatronFsdp) {
    if (sizes.pp.value_or(1) > 1) {
      return Conflict("megatron_fsdp does not support pipeline parallelism", entries, "pp_size");
    }
    if (sizes.ep.value_or(1) > 1) {
      return Conflict("megatron_fsdp does not support expert parallelism", entries, "ep_size");
    }
    if (std::get<MegatronFSDPConfig>(recipe_.strategy_config).sequence_parallel) {
      return Conflict("megatron_fsdp does not yet support sequence_parallel", entries,
                      "sequence_parallel");
    }
  }
  if (kind == StrategyKind::kDdp) {
    constexpr std::pair<std::string_view, std::string_view> kUnsupported[] = {
        {"tp_size", "tensor"},
        {"pp_size", "pipeline"},
        {"cp_size", "context"},
        {"ep_size", "expert"}};
    for (const auto& [key, what] : kUnsupported) {
      if (SizeOf(key).value_or(1) > 1) {
        return Conflict(absl::StrFormat("ddp does not support %s parallelism", what), entries, key);
      }
    }
  }
  return absl::OkStatus();
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
  std::string_view best_key = SectionName(section);
  size_t best_at = std::string_view::npos;
  for (const SizeKey& size : kSizeKeys) {
    const size_t at = status.message().find(std::string(size.name));
    if (at != std::string_view::npos && at < best_at && PositionOf(size.name).has_value()) {
      best_at = at;
      best_key = size.name;
    }
  }
  return Annotate(status, best_key);
}

absl::StatusOr<Recipe> ParseRecipe(std::string_view yaml_text, std::string_view filename,
                                   Section section, const RecipeOverrides& overrides) {
  // yaml-cpp reports errors by throwing, also from node accessors; nothing may escape.
  try {
    Parser parser(filename, section, overrides);
    return parser.Parse(yaml_text);
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
