#include "nmesh/job/spec.h"

#include <numeric>
#include <tuple>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/strategy.h"
#include "nmesh/mesh/checked_math.h"

namespace nmesh::job {

absl::StatusOr<Placement> ParsePlacement(std::string_view name) {
  if (name == "as-launched") return Placement::kAsLaunched;
  if (name == "pack") return Placement::kPack;
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown placement '%s': expected as-launched or pack", std::string(name)));
}

std::string_view PlacementName(Placement placement) {
  return placement == Placement::kPack ? "pack" : "as-launched";
}

std::string MeshName(const MeshSpec& spec) {
  return spec.label == "flags" ? "device_mesh" : spec.label;
}

absl::Status ApplyMeshOptions(const MeshOptions& options, config::MeshRequest& request) {
  if (options.strategy.has_value()) {
    NMESH_ASSIGN_OR_RETURN(request.strategy, config::ParseStrategy(*options.strategy));
  }
  const config::ParallelSizes& flags = options.sizes;
  config::ParallelSizes& sizes = request.sizes;
  for (auto [flag, field] :
       {std::pair{&flags.dp, &sizes.dp}, std::pair{&flags.dp_replicate, &sizes.dp_replicate},
        std::pair{&flags.tp, &sizes.tp}, std::pair{&flags.pp, &sizes.pp},
        std::pair{&flags.cp, &sizes.cp}, std::pair{&flags.ep, &sizes.ep}}) {
    if (flag->has_value()) *field = *flag;
  }
  if (options.ranks.has_value()) request.ranks = options.ranks;
  if (flags.world_size.has_value()) {
    if (request.ranks.has_value()) {
      request.job_world_size = flags.world_size;
    } else {
      sizes.world_size = flags.world_size;
    }
  }
  return absl::OkStatus();
}

namespace {

// Typed defaults for a mesh given by flags alone, as a recipe without those blocks would get
// (contract §8 rule 8).
MeshSpec SpecFromFlags(config::MeshRequest request) {
  MeshSpec spec;
  spec.label = "flags";
  spec.strategy_config = config::DefaultStrategyConfig(request.strategy);
  if (request.sizes.pp.value_or(1) > 1) spec.pipeline.emplace();
  if (request.sizes.ep.value_or(1) > 1) spec.moe.emplace();
  spec.request = std::move(request);
  return spec;
}

MeshSpec SpecFromRecipe(config::Recipe recipe) {
  MeshSpec spec;
  spec.label = std::string(config::SectionName(recipe.section));
  spec.request = recipe.request;
  spec.strategy_config = recipe.strategy_config;
  spec.pipeline = recipe.pipeline;
  spec.moe = recipe.moe;
  spec.activation_checkpointing = recipe.activation_checkpointing;
  spec.timeout = recipe.dist_env.Timeout();
  spec.warnings = recipe.warnings;
  spec.recipe = std::move(recipe);
  return spec;
}

// The number of ranks a section's mesh spans when it says so itself (dp_size given), else
// nullopt (dp is inferred from the ranks it is given).
std::optional<int64_t> ExplicitMeshSize(const config::MeshRequest& request) {
  const config::ParallelSizes& s = request.sizes;
  if (!s.dp.has_value() || *s.dp <= 0) return std::nullopt;
  std::vector<int64_t> factors = {*s.dp};
  if (request.strategy != config::StrategyKind::kDdp) {
    factors.push_back(s.cp.value_or(1));
    factors.push_back(s.tp.value_or(1));
  }
  if (request.strategy == config::StrategyKind::kFsdp2) factors.push_back(s.pp.value_or(1));
  for (int64_t f : factors) {
    if (f <= 0) return std::nullopt;  // the builder reports the bad size
  }
  return mesh::CheckedProduct(factors);
}

std::vector<int64_t> RankRange(int64_t begin, int64_t count) {
  std::vector<int64_t> ranks(static_cast<size_t>(count));
  std::iota(ranks.begin(), ranks.end(), begin);
  return ranks;
}

// Gives the student [0, S) and the teacher [S, S+T) of the job's world (see the header).
absl::Status AssignStudentTeacherRanks(MeshSpec& student, MeshSpec& teacher,
                                       std::optional<int64_t> job_world, const std::string& file) {
  std::optional<int64_t> s = ExplicitMeshSize(student.request);
  std::optional<int64_t> t = ExplicitMeshSize(teacher.request);
  if (!job_world.has_value()) {
    if (!s.has_value() || !t.has_value()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: cannot place the student (distributed) and teacher (teacher_distributed) meshes: "
          "give dp_size in both sections, or --world, or --ranks",
          file));
    }
    if (*s > mesh::kMaxMeshSize - *t) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the student (%d ranks) and teacher (%d ranks) meshes exceed the largest world (%d)",
          file, *s, *t, mesh::kMaxMeshSize));
    }
    job_world = *s + *t;
  }
  const int64_t world = *job_world;
  if (!s.has_value() && !t.has_value()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: cannot place the student (distributed) and teacher (teacher_distributed) meshes in "
        "a world of %d: give dp_size in at least one section, or --ranks",
        file, world));
  }
  if (!s.has_value()) s = world - *t;
  if (!t.has_value()) t = world - *s;
  if (*s <= 0 || *t <= 0 || *s > world - *t) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: the student (distributed, %d ranks) and teacher (teacher_distributed, %d ranks) "
        "meshes do not fit in a world of %d",
        file, *s, *t, world));
  }
  for (auto [spec, begin, count] :
       {std::tuple{&student, int64_t{0}, *s}, std::tuple{&teacher, *s, *t}}) {
    if (spec->request.ranks.has_value()) continue;  // --ranks given for this section
    spec->request.ranks = RankRange(begin, count);
    spec->request.job_world_size = world;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<MeshSpec>> ResolveMeshSpecs(const MeshOptions& options,
                                                       std::optional<int64_t> job_world,
                                                       bool all_sections) {
  if (options.sizes.world_size.has_value()) job_world = options.sizes.world_size;
  if (!options.config_path.has_value()) {
    if (options.section.has_value()) {
      return absl::InvalidArgumentError("--section needs --config FILE");
    }
    config::MeshRequest request;
    NMESH_RETURN_IF_ERROR(ApplyMeshOptions(options, request));
    if (request.ranks.has_value()) {
      if (!request.job_world_size.has_value()) request.job_world_size = job_world;
    } else if (!request.sizes.world_size.has_value()) {
      request.sizes.world_size = job_world;
    }
    std::vector<MeshSpec> specs;
    specs.push_back(SpecFromFlags(std::move(request)));
    return specs;
  }

  config::Section selected = config::Section::kDistributed;
  if (options.section.has_value()) {
    NMESH_ASSIGN_OR_RETURN(selected, config::ParseSection(*options.section));
  }
  config::RecipeOverrides overrides;
  if (options.strategy.has_value()) {
    NMESH_ASSIGN_OR_RETURN(overrides.strategy, config::ParseStrategy(*options.strategy));
  }
  overrides.sizes = options.sizes;
  overrides.sizes.world_size.reset();    // placed below, with the ranks
  overrides.job_world_size = job_world;  // separate KD meshes must fill it
  NMESH_ASSIGN_OR_RETURN(config::Recipe recipe,
                         config::LoadRecipeFile(*options.config_path, selected, overrides));
  const bool has_teacher = recipe.has_teacher_section;
  MeshSpec chosen = SpecFromRecipe(std::move(recipe));
  const config::ParallelSizes& flags = options.sizes;
  for (auto [value, key, flag] :
       {std::tuple{&flags.dp, "dp_size", "--dp"},
        std::tuple{&flags.dp_replicate, "dp_replicate_size", "--dp-replicate"},
        std::tuple{&flags.tp, "tp_size", "--tp"}, std::tuple{&flags.pp, "pp_size", "--pp"},
        std::tuple{&flags.cp, "cp_size", "--cp"}, std::tuple{&flags.ep, "ep_size", "--ep"}}) {
    if (value->has_value()) chosen.flag_overrides.emplace_back(key, flag);
  }
  if (options.ranks.has_value()) chosen.request.ranks = options.ranks;

  if (!has_teacher) {
    if (chosen.request.ranks.has_value()) {
      chosen.request.job_world_size = job_world;
    } else {
      chosen.request.sizes.world_size = job_world;
    }
    std::vector<MeshSpec> specs;
    specs.push_back(std::move(chosen));
    return specs;
  }

  // A student/teacher recipe: read the other section as written to place both meshes.
  const config::Section other_section = selected == config::Section::kDistributed
                                            ? config::Section::kTeacherDistributed
                                            : config::Section::kDistributed;
  config::RecipeOverrides other_overrides;
  other_overrides.job_world_size = job_world;
  NMESH_ASSIGN_OR_RETURN(
      config::Recipe other_recipe,
      config::LoadRecipeFile(*options.config_path, other_section, other_overrides));
  MeshSpec other = SpecFromRecipe(std::move(other_recipe));
  MeshSpec& student = selected == config::Section::kDistributed ? chosen : other;
  MeshSpec& teacher = selected == config::Section::kDistributed ? other : chosen;
  NMESH_RETURN_IF_ERROR(
      AssignStudentTeacherRanks(student, teacher, job_world, *options.config_path));

  std::vector<MeshSpec> specs;
  if (all_sections && !options.section.has_value()) {
    specs.push_back(std::move(student));
    specs.push_back(std::move(teacher));
  } else {
    specs.push_back(std::move(chosen));
  }
  return specs;
}

absl::StatusOr<mesh::MeshPlan> PlanMeshSpec(const MeshSpec& spec) {
  absl::StatusOr<mesh::MeshPlan> plan = mesh::PlanMesh(spec.request);
  if (plan.ok() || !spec.recipe.has_value()) return plan;
  const std::string message(plan.status().message());
  for (const auto& [key, flag] : spec.flag_overrides) {
    if (message.rfind(key, 0) == 0) {
      return absl::Status(plan.status().code(), absl::StrFormat("%s (from %s)", message, flag));
    }
  }
  return spec.recipe->AnnotateSizeError(plan.status());
}

}  // namespace nmesh::job
