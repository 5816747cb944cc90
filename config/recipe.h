// The recipe layer (NeMo AutoModel's `parse_distributed_section`): reads the `distributed:` (or
// `teacher_distributed:`) section and `dist_env:` of a training recipe YAML written for the
// reference system, and produces a MeshRequest plus the typed configs. Everything else in the
// recipe is ignored; nothing named by a `_target_` is ever instantiated.
//
//   NMESH_ASSIGN_OR_RETURN(Recipe recipe, LoadRecipeFile("examples/fsdp2_tp2_cp2.yaml"));
//   for (const std::string& warning : recipe.warnings) std::cerr << warning << "\n";
//   MeshRequest request = recipe.request;           // strategy + six sizes, world_size unset
//   request.sizes.world_size = world;
//   absl::Status built = BuildSomething(request);     // e.g. a mesh builder
//   if (!built.ok()) return recipe.AnnotateSizeError(built);  // "... (recipe.yaml:14:12)"
//
// Command-line flags override the file through RecipeOverrides, applied before the rules run, so a
// `--pp 1` drops the file's `pipeline:` block with a warning exactly as `pp_size: 1` would:
//
//   RecipeOverrides flags;
//   flags.sizes.pp = 1;
//   flags.sizes.world_size = 8;
//   auto recipe = LoadRecipeFile(path, Section::kDistributed, flags);
//
// Errors are InvalidArgument and name the key (`distributed.tp_size`,
// `teacher_distributed.pipeline.pp_schedule`), the value, and `file:line:col` (1-based):
//   distributed.tp_size must be a positive integer, got 'two' (recipe.yaml:14:12)
// Malformed YAML reports yaml-cpp's message and position. No exception escapes this API.
#ifndef NMESH_CONFIG_RECIPE_H_
#define NMESH_CONFIG_RECIPE_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/base/enum_names.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/config/parallelizer_config.h"
#include "nmesh/config/sizes.h"
#include "nmesh/config/strategy.h"
#include "nmesh/config/strategy_config.h"

namespace nmesh::config {

// Which mesh section of the recipe to read.
enum class Section { kDistributed, kTeacherDistributed };

inline constexpr NamedValue<Section> kSectionNames[] = {
    {Section::kDistributed, "distributed"},
    {Section::kTeacherDistributed, "teacher_distributed"},
};

// "distributed" or "teacher_distributed".
std::string_view SectionName(Section section);

// Parses "distributed" or "teacher_distributed" (e.g. a --section flag). Fails with
// InvalidArgument listing both. Thread-safe.
absl::StatusOr<Section> ParseSection(std::string_view name);

// A 1-based position in the recipe file.
struct SourcePosition {
  int line = 0;
  int column = 0;
  friend bool operator==(const SourcePosition&, const SourcePosition&) = default;
};

// The recipe's top-level `dist_env:` section.
struct DistEnv {
  std::optional<std::string> backend;
  // Minutes, as written (integer or fractional); always positive when set.
  std::optional<double> timeout_minutes;

  // timeout_minutes as a duration, when set.
  std::optional<absl::Duration> Timeout() const;
};

// Command-line values that replace the file's (flags override the file). Unset fields keep the
// file's value. Override values are not validated here; the mesh builders do that.
struct RecipeOverrides {
  std::optional<StrategyKind> strategy;
  // All six sizes plus world_size, which a recipe never sets.
  validate::RequestedSizes sizes;
  // The job's world for separate knowledge-distillation meshes: the student and teacher
  // mesh sizes must add up to it. Unset: their sum is the world.
  std::optional<int64_t> job_world_size;
};

struct Recipe {
  // The file name used in messages.
  std::string filename;
  Section section = Section::kDistributed;

  // The strategy and the six sizes after null handling (null / none / absent -> unset,
  // dp_size -1 -> unset, meaning infer); world_size and ranks come from overrides or the caller.
  MeshRequest request;
  // The alternative matches request.strategy.
  StrategyConfig strategy_config;
  // Present when pp > 1 (defaulted when the section has none).
  std::optional<PipelineConfig> pipeline;
  // Present when ep > 1 (defaulted when the section has none).
  std::optional<MoEParallelizerConfig> moe;
  ActivationCheckpointing activation_checkpointing = ActivationCheckpointing::kFalse;
  DistEnv dist_env;
  // Whether the recipe has a `teacher_distributed:` section (a second mesh over other ranks).
  bool has_teacher_section = false;
  // The top-level `separate_meshes` (knowledge distillation). When true, both sections were
  // read and checked, and request.ranks / request.job_world_size hold this section's ranks:
  // the student gets 0..S-1, the teacher S..W-1.
  bool separate_meshes = false;
  // nmesh's `nccl:` key of the section: NCCL settings per axis or group name
  // (comm/nccl_settings.h), e.g. `nccl: {tp: {max_ctas: 16}, dp_shard_cp: {net_name: IB}}`. Fields
  // and values are checked here; whether each name is an axis or group of the mesh is checked when
  // it is planned (the job layer, with the name's file:line:col from PositionOf("nccl.<name>")).
  comm::NcclSettingsMap nccl;
  // nmesh's `comm_sharing:` key of the section: `partition` (names that split the ranks alike
  // share one communicator) or `name` (one communicator per name); unset: the caller's choice.
  std::optional<CommSharing> comm_sharing;
  // Human-readable notes, e.g. a `pipeline:` block dropped because pp_size <= 1, or an ignored
  // `loss_fn`. Each names the key and file:line:col.
  std::vector<std::string> warnings;

  // Where each key's value is: "distributed" (the section), "distributed.tp_size",
  // "distributed.pipeline.pp_schedule", "dist_env.timeout_minutes", ... Keys replaced by an
  // override are absent.
  std::map<std::string, SourcePosition, std::less<>> positions;

  // The position of `key`, either fully dotted ("distributed.tp_size") or relative to the section
  // that was read ("tp_size", "pipeline.pp_schedule").
  std::optional<SourcePosition> PositionOf(std::string_view key) const;

  // "file:line:col" of `key` (as for PositionOf), or empty when unknown.
  std::string Where(std::string_view key) const;

  // `status` with " (file:line:col)" of `key` appended to its message, same code and payloads,
  // marked as annotated (validate::MarkAnnotated); OK and statuses for keys without a position are
  // returned unchanged.
  absl::Status Annotate(const absl::Status& status, std::string_view key) const;

  // Annotates an error from a mesh builder about sizes (e.g. "tp_size must be a positive integer,
  // got 0" or "dp_size must be a multiple of dp_replicate_size") with the position of the first
  // field the error names (validate::FieldsOf(status).named) that the file sets, else with the
  // section's position. A status already annotated (validate::IsAnnotated, e.g. a result of
  // Annotate) is returned unchanged, whatever its message says.
  absl::Status AnnotateSizeError(const absl::Status& status) const;
};

// Parses recipe text. `filename` is only used in messages. Applies the recipe rules in
// NeMo AutoModel 0.7.0's order:
//  1. `strategy` defaults to fsdp2 and is lower-cased (resolved in 8).
//  2. The six sizes: null/none/None/absent -> unset; dp_size -1 -> unset (infer); zero,
//     negative, non-integer, boolean, list, map or out-of-range -> "<key> must be a positive
//     integer, got ..".
//  3. `pipeline`, `moe` and `activation_checkpointing` are taken out; the latter is normalised.
//  4. `_target_`, `_recursive_`, `_convert_` are dropped silently.
//  5. `multimodal`, `mp_policy`, `offload_policy`, `autocast_dtype` are built for any strategy.
//  6. Selective activation checkpointing only with fsdp2 and ddp (on the name as written).
//  7. `pipeline` with pp <= 1 is dropped with a warning, `moe` with ep <= 1 silently; neither is
//     checked then.
//  8. The strategy is resolved; other keys must be its fields: "Unknown options for strategy
//     '<name>': [...]"; then activation_checkpointing_scope and multimodal's type.
//  9. pp > 1 needs a `pipeline` block (`pipeline: {}` selects the defaults).
// 10. pp > 1 without pipeline.dtype: the strategy's mp_policy output_dtype, else param_dtype.
// 11. ep > 1 without `moe` -> the default MoEParallelizerConfig.
// 12. Type errors name the key, the expected type and the position.
// Then the strategy-support checks (validate::FindUnsupportedSize): "<rule> (<key>=<value> at
// file:line:col)", or the rule alone when a flag set the size.
// Knowledge distillation (the rules of validate/separate_meshes.h): `teacher_distributed:` needs
// the top-level `separate_meshes: true` and vice versa; then both sections are read (student
// first; overrides apply to `section` only), both must set dp_size, their mesh sizes must add up to
// the job's world (overrides.job_world_size, else their sum), and neither may be DDP. Also fails
// on: a missing section, a section or dist_env that is not a map, duplicate keys, malformed YAML
// (yaml-cpp's message and position), nesting deeper than yaml-cpp's limit. Thread-safe.
absl::StatusOr<Recipe> ParseRecipe(std::string_view yaml_text, std::string_view filename,
                                   Section section = Section::kDistributed,
                                   const RecipeOverrides& overrides = {});

// Reads `path` and parses it as ParseRecipe does. A missing or unreadable file fails with
// InvalidArgument naming the path. Thread-safe.
absl::StatusOr<Recipe> LoadRecipeFile(const std::string& path,
                                      Section section = Section::kDistributed,
                                      const RecipeOverrides& overrides = {});

}  // namespace nmesh::config

#endif  // NMESH_CONFIG_RECIPE_H_
