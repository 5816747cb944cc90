#include "nmesh/config/internal/separate_meshes.h"

#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/internal/section_parser.h"
#include "nmesh/validate/error_fields.h"
#include "nmesh/validate/separate_meshes.h"
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
    const std::string_view name = SectionName(recipe.section);
    absl::StatusOr<int64_t> size = validate::SeparateMeshSize(name, s);
    if (!size.ok()) {
      // A missing dp_size is pointed at by its section.
      if (validate::FieldsOf(size.status()).subject == "dp_size") {
        return recipe.Annotate(size.status(), name);
      }
      return size.status();
    }
    mesh_sizes[i] = *size;
  }
  NMESH_ASSIGN_OR_RETURN(
      const int64_t world,
      validate::SeparateMeshWorld(mesh_sizes[0], mesh_sizes[1], overrides.job_world_size));
  NMESH_RETURN_IF_ERROR(student.CheckStrategyConflicts());
  NMESH_RETURN_IF_ERROR(teacher.CheckStrategyConflicts());
  for (SectionParser* parser : {&student, &teacher}) {
    NMESH_RETURN_IF_ERROR(validate::CheckSeparateMeshStrategy(SectionName(parser->recipe().section),
                                                              parser->recipe().request.strategy));
  }
  const bool is_student = section == Section::kDistributed;
  Recipe& chosen = (is_student ? student : teacher).recipe();
  chosen.request.ranks = validate::SeparateMeshRanks(
      is_student ? validate::MeshRole::kStudent : validate::MeshRole::kTeacher, mesh_sizes[0],
      mesh_sizes[1]);
  chosen.request.job_world_size = world;
  return std::move(chosen);
}

}  // namespace nmesh::config::internal
