#include "nmesh/validate/separate_meshes.h"

#include "absl/strings/str_format.h"
#include "nmesh/validate/error_fields.h"
#include "nmesh/validate/validate.h"

namespace nmesh::validate {

absl::Status CheckSeparateMeshesSwitch(bool separate_meshes, bool has_teacher_section) {
  if (has_teacher_section && !separate_meshes) {
    return FieldError("teacher_distributed", "teacher_distributed requires separate_meshes=true");
  }
  if (separate_meshes && !has_teacher_section) {
    return FieldError("separate_meshes",
                      "separate_meshes=true requires a teacher_distributed section");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SeparateMeshSize(std::string_view section, const RequestedSizes& sizes) {
  if (!sizes.dp.has_value() || *sizes.dp == kInferDp) {
    return FieldError("dp_size",
                      absl::StrFormat("%s.dp_size must be set when separate_meshes=true so "
                                      "the non-overlapping rank split is explicit",
                                      section));
  }
  const std::optional<int64_t> size = RequestedMeshSize(sizes);
  if (!size.has_value()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: the mesh size overflows", section));
  }
  return *size;
}

absl::StatusOr<int64_t> SeparateMeshWorld(int64_t student_size, int64_t teacher_size,
                                          std::optional<int64_t> job_world_size) {
  int64_t sum = 0;
  if (__builtin_add_overflow(student_size, teacher_size, &sum)) {
    return absl::InvalidArgumentError("Separate KD mesh sizes overflow");
  }
  const int64_t world = job_world_size.value_or(sum);
  if (sum != world) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Separate KD mesh sizes must use every rank exactly once: student=%d + teacher=%d != "
        "world_size=%d",
        student_size, teacher_size, world));
  }
  return world;
}

absl::Status CheckSeparateMeshStrategy(std::string_view section, StrategyKind strategy) {
  if (strategy != StrategyKind::kDdp) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "Separate KD meshes currently require mesh-backed strategies; DDP is not supported (%s)",
      section));
}

std::vector<int64_t> SeparateMeshRanks(MeshRole role, int64_t student_size, int64_t teacher_size) {
  const int64_t begin = role == MeshRole::kStudent ? 0 : student_size;
  const int64_t count = role == MeshRole::kStudent ? student_size : teacher_size;
  std::vector<int64_t> ranks(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) ranks[static_cast<size_t>(i)] = begin + i;
  return ranks;
}

}  // namespace nmesh::validate
