#include "nmesh/config/internal/separate_meshes.h"

#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/internal/section_parser.h"
#include "nmesh/validate/error_fields.h"
#include "nmesh/validate/validate.h"

namespace nmesh::config::internal {

using validate::RequestedSizes;

absl::StatusOr<Recipe> ParseSeparateMeshes(std::string_view text, std::string_view filename,
                                           Section section, const RecipeOverrides& overrides) {
  SectionParser student(filename, Section::kDistributed,
                        section == Section::kDistributed ? overrides : RecipeOverrides{});
  SectionParser teacher(filename, Section::kTeacherDistributed,
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
  for (SectionParser* parser : {&student, &teacher}) {
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

}  // namespace nmesh::config::internal
