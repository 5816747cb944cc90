#include "nmesh/config/internal/section_parser.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/config/internal/parallelizer_config_fields.h"
#include "nmesh/config/internal/strategy_config_fields.h"
#include "nmesh/validate/error_fields.h"
#include "nmesh/validate/separate_meshes.h"
#include "nmesh/validate/validate.h"
#include "yaml-cpp/yaml.h"

// yaml-cpp >= 0.7 bounds parser recursion (YAML::DeepRecursion); older versions overflow the stack
// on deeply nested input, which recipes must survive.
#if __has_include("yaml-cpp/depthguard.h")
#include "yaml-cpp/depthguard.h"
#else
#error "nmesh needs yaml-cpp >= 0.7 (YAML::DeepRecursion guards deeply nested recipes)"
#endif

namespace nmesh::config::internal {
namespace {

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
    "strategy", "dp_size",     "dp_replicate_size", "tp_size", "pp_size",
    "cp_size",  "ep_size",     "pipeline",          "moe",     "activation_checkpointing",
    "nccl",     "comm_sharing"};

}  // namespace

SectionParser::SectionParser(std::string_view filename, Section section,
                             const RecipeOverrides& overrides)
    : overrides_(overrides) {
  recipe_.filename = std::string(filename);
  recipe_.section = section;
}

void SectionParser::Record(const std::string& key, Position position) {
  if (position.line > 0) recipe_.positions[key] = {position.line, position.column};
}

void SectionParser::RecordEntries(const std::vector<Entry>& entries) {
  for (const Entry& entry : entries) Record(entry.value.key(), entry.value.position());
}

absl::StatusOr<Recipe> SectionParser::Parse(std::string_view text) {
  DocNode root;
  try {
    // One document only; sections nmesh ignores are not built (a large one costs no memory).
    NMESH_ASSIGN_OR_RETURN(
        root, LoadDocument(text, file(),
                           {"distributed", "teacher_distributed", "dist_env", "separate_meshes"}));
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe YAML nests deeper than %d levels (%s)", e.depth(),
                        FormatWhere(file(), ToPosition(e.mark))));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat("malformed YAML in recipe: %s (%s)",
                                                      Printable(e.msg),
                                                      FormatWhere(file(), ToPosition(e.mark))));
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
      const Position key_position = ToPosition(it->first.Mark());
      if (auto [previous, inserted] = seen.emplace(name, key_position); !inserted) {
        return absl::InvalidArgumentError(
            absl::StrFormat("duplicate key %s (%s); first defined at line %d", name,
                            FormatWhere(file(), key_position), previous->second.line));
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
  if (absl::Status kd =
          validate::CheckSeparateMeshesSwitch(recipe_.separate_meshes, recipe_.has_teacher_section);
      !kd.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s (%s)", kd.message(), recipe_.Where(validate::FieldsOf(kd).subject)));
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

absl::Status SectionParser::ParseDistEnv(const Value& value) {
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

absl::Status SectionParser::ParseSection(const Value& section) {
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
        NMESH_RETURN_IF_ERROR(FindField(Fsdp2FieldTable(), name)->read(e->value, scratch));
      }
    }
  }

  // 6. Selective checkpointing, on the name as written.
  if (recipe_.activation_checkpointing == ActivationCheckpointing::kSelective) {
    if (absl::Status selective = validate::CheckSelectiveCheckpointing(strategy_label_);
        !selective.ok()) {
      return Find(entries, "activation_checkpointing")
          ->value.Error(std::string(selective.message()));
    }
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
        pipeline->value.key(), pp, FormatWhere(file(), pipeline->key_position)));
  }

  // 8. The strategy is resolved; every other key must be one of its fields.
  if (!strategy_error_.ok()) return strategy_error_;
  NMESH_RETURN_IF_ERROR(ParseStrategyFields(entries));

  // nmesh: per-axis NCCL settings (names are checked against the mesh by the job layer).
  NMESH_RETURN_IF_ERROR(ParseNccl(Find(entries, "nccl")));
  // nmesh: whether names that split the ranks alike share a communicator.
  if (const Entry* sharing = Find(entries, "comm_sharing");
      sharing != nullptr && !sharing->value.IsNull()) {
    absl::StatusOr<std::string> text = sharing->value.String();
    std::optional<CommSharing> value;
    if (text.ok()) value = ValueNamed<CommSharing>(kCommSharingNames, *text);
    if (!value.has_value()) {
      return sharing->value.Invalid(NameList<CommSharing>(kCommSharingNames));
    }
    recipe_.comm_sharing = *value;
  }

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
    NMESH_RETURN_IF_ERROR(ParseSubsection(pipeline, PipelineFieldTable(), recipe_.pipeline));
    DefaultPipelineDtype(pipeline);
  }

  // 11. The MoE config.
  if (validate::HasMoe(sizes)) {
    if (moe == nullptr || moe->value.IsNull()) {
      recipe_.moe.emplace();
    } else {
      NMESH_RETURN_IF_ERROR(ParseSubsection(moe, MoeFieldTable(), recipe_.moe));
    }
  }

  if (defer_conflicts_) return absl::OkStatus();
  return CheckStrategyConflicts();
}

// Rule 10: with pp > 1 and no pipeline.dtype, the dtype is the strategy's mp_policy output_dtype,
// else its param_dtype; an explicit dtype that differs is kept with a warning.
void SectionParser::DefaultPipelineDtype(const Entry* pipeline) {
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
        FormatWhere(file(), pipeline->key_position)));
  }
}

absl::Status SectionParser::ParseStrategy(const Entry* entry) {
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
    strategy_error_ =
        entry->value.Error(std::string(config::UnknownStrategyError("None").message()));
  }
  recipe_.request.strategy = kind;
  recipe_.strategy_config = DefaultStrategyConfig(kind);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> SectionParser::ReadSize(const Value& value,
                                                               std::string_view name) {
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

absl::Status SectionParser::ParseActivationCheckpointing(const Entry* entry) {
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

absl::Status SectionParser::ParseNccl(const Entry* entry) {
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
            field.name, comm::NcclFieldNames(), FormatWhere(file(), field.key_position)));
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
        } else if (absl::StatusOr<int64_t> i = field.value.Int(IntRule::kAny); i.ok()) {
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

absl::Status SectionParser::ParseStrategyFields(const std::vector<Entry>& entries) {
  return std::visit(
      [&](auto& config) -> absl::Status {
        const auto& fields = FieldTableFor(config);
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
absl::Status SectionParser::ParseSubsection(const Entry* entry, const Fields<C>& fields,
                                            std::optional<C>& out) {
  const Value& value = entry->value;
  if (!value.IsMap()) return value.Invalid("a map of options");
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, value.Entries());
  RecordEntries(entries);
  // The reference's pipeline takes a Python `loss_fn`, which no C++ config can hold.
  const Entry* loss_fn = std::is_same_v<C, PipelineConfig> ? Find(entries, "loss_fn") : nullptr;
  if (loss_fn != nullptr) {
    recipe_.warnings.push_back(
        absl::StrFormat("%s is a Python callable that nmesh cannot represent; it is ignored (%s)",
                        loss_fn->value.key(), FormatWhere(file(), loss_fn->key_position)));
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

absl::Status SectionParser::Conflict(std::string_view message, std::string_view key) {
  const Entry* entry = Find(section_entries_, key);
  const bool from_file = entry != nullptr && recipe_.PositionOf(key).has_value();
  if (!from_file) return absl::InvalidArgumentError(std::string(message));
  return absl::InvalidArgumentError(absl::StrFormat("%s (%s=%s at %s)", message, entry->value.key(),
                                                    entry->value.Describe(), entry->value.Where()));
}

// The strategy-support checks before any mesh (validate::FindUnsupportedSize), naming the key's
// file:line:col when the file set it.
absl::Status SectionParser::CheckStrategyConflicts() {
  const std::optional<validate::UnsupportedSize> unsupported =
      validate::FindUnsupportedSize(recipe_.request.strategy, recipe_.request.sizes);
  if (!unsupported.has_value()) return absl::OkStatus();
  return Conflict(unsupported->rule, unsupported->field);
}

}  // namespace nmesh::config::internal
