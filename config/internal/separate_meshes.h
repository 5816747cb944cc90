// Internal: a recipe with separate knowledge-distillation meshes (`separate_meshes: true`, a
// student in `distributed:` and a teacher in `teacher_distributed:` over disjoint ranks).
//
//   NMESH_ASSIGN_OR_RETURN(Recipe teacher,
//                          ParseSeparateMeshes(text, "kd.yaml", Section::kTeacherDistributed, {}));
//   // teacher.request.ranks: S..W-1, after the student's S ranks
//
// yaml-cpp may throw; the public API catches. Thread-safe.
#ifndef NMESH_CONFIG_INTERNAL_SEPARATE_MESHES_H_
#define NMESH_CONFIG_INTERNAL_SEPARATE_MESHES_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "nmesh/config/recipe.h"

namespace nmesh::config::internal {

// Reads both sections of `text` (student first; `overrides` apply to `section` only), then checks
// them together: each must set dp_size, their mesh sizes must fill the job's world
// (overrides.job_world_size, else their sum), the strategy-support checks run on both, and
// neither may be DDP. Returns `section`'s recipe with request.ranks and request.job_world_size
// set: the student gets ranks 0..S-1, the teacher S..W-1.
absl::StatusOr<Recipe> ParseSeparateMeshes(std::string_view text, std::string_view filename,
                                           Section section, const RecipeOverrides& overrides);

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_SEPARATE_MESHES_H_
