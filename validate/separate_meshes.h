// The rules for separate knowledge-distillation meshes (NeMo AutoModel's
// `create_kd_distributed_setups`): a student mesh and a teacher mesh over disjoint ranks of one
// job, on plain data. The recipe layer reads the two sections and calls these in this order:
//
//   NMESH_RETURN_IF_ERROR(CheckSeparateMeshesSwitch(separate_meshes, has_teacher_section));
//   // Both sections read (student first), CheckRequestedSizes on each, then:
//   NMESH_ASSIGN_OR_RETURN(int64_t student, SeparateMeshSize("distributed", student_sizes));
//   NMESH_ASSIGN_OR_RETURN(int64_t teacher,
//                          SeparateMeshSize("teacher_distributed", teacher_sizes));
//   NMESH_ASSIGN_OR_RETURN(int64_t world, SeparateMeshWorld(student, teacher, job_world_size));
//   // FindUnsupportedSize on each, then:
//   NMESH_RETURN_IF_ERROR(CheckSeparateMeshStrategy("distributed", student_strategy));
//   NMESH_RETURN_IF_ERROR(CheckSeparateMeshStrategy("teacher_distributed", teacher_strategy));
//   std::vector<int64_t> ranks = SeparateMeshRanks(MeshRole::kTeacher, student, teacher);
//
// Errors are InvalidArgument with the reference's messages. Every function here is pure and
// thread-safe.
#ifndef NMESH_VALIDATE_SEPARATE_MESHES_H_
#define NMESH_VALIDATE_SEPARATE_MESHES_H_

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nmesh/validate/sizes.h"
#include "nmesh/validate/strategy.h"

namespace nmesh::validate {

// Which of the two meshes.
enum class MeshRole { kStudent, kTeacher };

// The switch (`separate_meshes`) and the teacher section go together: a teacher section without
// the switch fails with "teacher_distributed requires separate_meshes=true" (about the field
// "teacher_distributed"), the switch without a teacher section with "separate_meshes=true requires
// a teacher_distributed section" (about "separate_meshes"). The messages carry no position; the
// caller adds where the field is (validate/error_fields.h).
absl::Status CheckSeparateMeshesSwitch(bool separate_meshes, bool has_teacher_section);

// The size of the mesh of `section` (dp·tp·pp·cp; ep does not count). The sizes must have passed
// CheckRequestedSizes. Fails when dp is not given (absent or kInferDp): "<section>.dp_size must be
// set when separate_meshes=true so the non-overlapping rank split is explicit" (about the field
// "dp_size"), or when the product overflows: "<section>: the mesh size overflows".
absl::StatusOr<int64_t> SeparateMeshSize(std::string_view section, const RequestedSizes& sizes);

// The job's world: `job_world_size`, or the sum of the two mesh sizes when unset. Fails unless
// the two meshes use every rank exactly once: "Separate KD mesh sizes must use every rank exactly
// once: student=S + teacher=T != world_size=W", or "Separate KD mesh sizes overflow".
absl::StatusOr<int64_t> SeparateMeshWorld(int64_t student_size, int64_t teacher_size,
                                          std::optional<int64_t> job_world_size);

// Separate meshes need mesh-backed strategies: DDP fails with "Separate KD meshes currently
// require mesh-backed strategies; DDP is not supported (<section>)".
absl::Status CheckSeparateMeshStrategy(std::string_view section, StrategyKind strategy);

// The global ranks of `role`'s mesh, in order: the student gets 0..S-1, the teacher S..S+T-1.
std::vector<int64_t> SeparateMeshRanks(MeshRole role, int64_t student_size, int64_t teacher_size);

}  // namespace nmesh::validate

#endif  // NMESH_VALIDATE_SEPARATE_MESHES_H_
