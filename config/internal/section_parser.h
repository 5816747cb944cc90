// Internal: reads one mesh section (`distributed:` or `teacher_distributed:`) of a recipe, with
// the top-level `dist_env:` and `separate_meshes`, applying the recipe rules in NeMo AutoModel
// 0.7.0's order (config/recipe.h lists them).
//
//   SectionParser parser("recipe.yaml", Section::kDistributed, overrides);
//   NMESH_ASSIGN_OR_RETURN(Recipe recipe, parser.Parse(text));
//
// For separate knowledge-distillation meshes the strategy-support checks wait until both sections
// are read (DeferConflicts, then CheckStrategyConflicts). yaml-cpp may throw from Parse; the public
// API catches. Thread-compatible (one parser per thread).
#ifndef NMESH_CONFIG_INTERNAL_SECTION_PARSER_H_
#define NMESH_CONFIG_INTERNAL_SECTION_PARSER_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nmesh/config/internal/field_binding.h"
#include "nmesh/config/internal/yaml_value.h"
#include "nmesh/config/recipe.h"

namespace nmesh::config::internal {

class SectionParser {
 public:
  SectionParser(std::string_view filename, Section section, const RecipeOverrides& overrides);

  // Reads the section of `text`. Fails on the first broken rule.
  absl::StatusOr<Recipe> Parse(std::string_view text);

  // Leaves the strategy-support checks to CheckStrategyConflicts (separate KD meshes).
  void DeferConflicts() { defer_conflicts_ = true; }
  // The strategy-support checks (validate::FindUnsupportedSize) on what Parse read: "<rule>
  // (<key>=<value> at file:line:col)", or the rule alone when a flag set the size.
  absl::Status CheckStrategyConflicts();

  // What Parse read so far.
  Recipe& recipe() { return recipe_; }

 private:
  const std::string& file() const { return recipe_.filename; }
  std::string section_name() const { return std::string(SectionName(recipe_.section)); }
  void Record(const std::string& key, Position position);
  void RecordEntries(const std::vector<Entry>& entries);

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
  absl::Status Conflict(std::string_view message, std::string_view key);

  bool defer_conflicts_ = false;
  absl::Status strategy_error_;
  std::vector<Entry> section_entries_;
  RecipeOverrides overrides_;
  Recipe recipe_;
  // The strategy as the recipe wrote it (lower-cased), for messages.
  std::string strategy_label_;
};

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_SECTION_PARSER_H_
