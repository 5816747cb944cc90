#include "nmesh/job/spec.h"

#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/strategy.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/validate/error_fields.h"
#include "nmesh/validate/sizes.h"
#include "nmesh/validate/validate.h"

namespace nmesh::job {

absl::StatusOr<Placement> ParsePlacement(std::string_view name) {
  if (std::optional<Placement> placement = ValueNamed<Placement>(kPlacementNames, name)) {
    return *placement;
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown placement '%s': expected %s",
                                                    std::string(name),
                                                    NameList<Placement>(kPlacementNames)));
}

std::string_view PlacementName(Placement placement) {
  return NameOf<Placement>(kPlacementNames, placement, "as-launched");
}

std::string MeshName(const MeshSpec& spec) {
  return spec.label == "flags" ? "device_mesh" : spec.label;
}

absl::Status ApplyMeshOptions(const MeshOptions& options, config::MeshRequest& request) {
  if (options.strategy.has_value()) {
    NMESH_ASSIGN_OR_RETURN(request.strategy, config::ParseStrategy(*options.strategy));
  }
  const validate::RequestedSizes& flags = options.sizes;
  validate::RequestedSizes& sizes = request.sizes;
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

// Typed defaults for a mesh given by flags alone, as a recipe without those blocks would get.
MeshSpec SpecFromFlags(config::MeshRequest request) {
  MeshSpec spec;
  spec.label = "flags";
  spec.strategy_config = config::DefaultStrategyConfig(request.strategy);
  if (validate::HasPipeline(request.sizes)) spec.pipeline.emplace();
  if (validate::HasMoe(request.sizes)) spec.moe.emplace();
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
  spec.nccl = recipe.nccl;
  spec.comm_sharing = recipe.comm_sharing.value_or(config::CommSharing::kPartition);
  spec.recipe = std::move(recipe);
  return spec;
}

// The --nccl settings over the spec's, field by field.
void ApplyNcclFlags(const comm::NcclSettingsMap& flags, MeshSpec& spec) {
  for (const auto& [name, settings] : flags) {
    spec.nccl[name] = comm::MergeNcclSettings(spec.nccl[name], settings);
    spec.nccl_from_flags.push_back(name);
  }
}

void ApplySharingFlag(const MeshOptions& options, std::vector<MeshSpec>& specs) {
  if (!options.comm_sharing.has_value()) return;
  for (MeshSpec& spec : specs) spec.comm_sharing = *options.comm_sharing;
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
    ApplyNcclFlags(options.nccl, specs.back());
    ApplySharingFlag(options, specs);
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
  const validate::RequestedSizes& flags = options.sizes;
  for (auto [value, key, flag] :
       {std::tuple{&flags.dp, "dp_size", "--dp"},
        std::tuple{&flags.dp_replicate, "dp_replicate_size", "--dp-replicate"},
        std::tuple{&flags.tp, "tp_size", "--tp"}, std::tuple{&flags.pp, "pp_size", "--pp"},
        std::tuple{&flags.cp, "cp_size", "--cp"}, std::tuple{&flags.ep, "ep_size", "--ep"}}) {
    if (value->has_value()) chosen.flag_overrides.emplace_back(key, flag);
  }
  if (options.ranks.has_value()) chosen.request.ranks = options.ranks;
  ApplyNcclFlags(options.nccl, chosen);

  if (!has_teacher) {
    if (chosen.request.ranks.has_value()) {
      chosen.request.job_world_size = job_world;
    } else {
      chosen.request.sizes.world_size = job_world;
    }
    std::vector<MeshSpec> specs;
    specs.push_back(std::move(chosen));
    ApplySharingFlag(options, specs);
    return specs;
  }

  // A student/teacher recipe: the recipe layer placed both meshes; read the other section too.
  const config::Section other_section = selected == config::Section::kDistributed
                                            ? config::Section::kTeacherDistributed
                                            : config::Section::kDistributed;
  config::RecipeOverrides other_overrides;
  other_overrides.job_world_size = job_world;
  NMESH_ASSIGN_OR_RETURN(
      config::Recipe other_recipe,
      config::LoadRecipeFile(*options.config_path, other_section, other_overrides));
  MeshSpec other = SpecFromRecipe(std::move(other_recipe));
  std::vector<MeshSpec> specs;
  specs.push_back(std::move(chosen));
  // Without a section, the chosen one is the student (distributed).
  if (all_sections && !options.section.has_value()) specs.push_back(std::move(other));
  ApplySharingFlag(options, specs);
  return specs;
}

namespace {

// A size error of `plan`, naming the flag or the recipe's file:line:col that set the size; for a
// plan that is fine, an error of its NCCL settings (an unknown name, a conflict), named likewise.
absl::StatusOr<mesh::MeshPlan> CheckPlanOfSpec(const MeshSpec& spec,
                                               absl::StatusOr<mesh::MeshPlan> plan) {
  if (plan.ok()) {
    if (spec.nccl.empty()) return plan;
    absl::Status nccl =
        mesh::PlanMeshCommunicators(*plan, spec.nccl, spec.comm_sharing, MeshName(spec)).status();
    if (nccl.ok()) return plan;
    const std::string subject = validate::FieldsOf(nccl).subject;  // "nccl.<name>"
    for (const std::string& name : spec.nccl_from_flags) {
      if (subject == absl::StrCat("nccl.", name)) {
        return absl::Status(nccl.code(), absl::StrFormat("%s (from --nccl)", nccl.message()));
      }
    }
    if (spec.recipe.has_value()) return spec.recipe->Annotate(nccl, subject);
    return nccl;
  }
  if (!spec.recipe.has_value()) return plan;
  const std::string subject = validate::FieldsOf(plan.status()).subject;
  for (const auto& [key, flag] : spec.flag_overrides) {
    if (!subject.empty() && subject == key) {
      return absl::Status(plan.status().code(),
                          absl::StrFormat("%s (from %s)", plan.status().message(), flag));
    }
  }
  return spec.recipe->AnnotateSizeError(plan.status());
}

}  // namespace

absl::StatusOr<mesh::MeshPlan> PlanMeshSpec(const MeshSpec& spec) {
  return CheckPlanOfSpec(spec, mesh::PlanMesh(spec.request));
}

absl::StatusOr<mesh::MeshPlan> PlanMeshSpecOver(const MeshSpec& spec, const mesh::Layout& members) {
  return CheckPlanOfSpec(spec, mesh::PlanMeshOver(spec.request, members));
}

}  // namespace nmesh::job
