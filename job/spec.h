// The meshes of a job, from a recipe and/or explicit sizes: what `nmesh plan`, `nmesh run` and an
// engine's start-up resolve before any communication.
//
//   job::MeshOptions options;
//   options.config_path = "examples/fsdp2_tp2_cp2.yaml";
//   options.sizes.tp = 2;                                 // overrides the recipe's tp_size
//   NMESH_ASSIGN_OR_RETURN(std::vector<job::MeshSpec> specs,
//                          job::ResolveMeshSpecs(options, /*job_world=*/8, /*all_sections=*/true));
//   NMESH_ASSIGN_OR_RETURN(mesh::MeshPlan plan, job::PlanMeshSpec(specs[0]));
//
// Student and teacher (a recipe with `separate_meshes: true` and `teacher_distributed:`, each model
// on its own mesh): both sections give dp_size, and the recipe layer places the student
// (`distributed`) on the first S ranks of the job and the teacher on the T ranks that follow,
// [S, S+T), where S and T are the sections' mesh sizes (validate::RequestedMeshSize) and S + T must
// be the job's world. An explicit rank list overrides the placement of the section it applies to.
// Explicit sizes override the selected section (default `distributed`); the other section is read
// as written.
#ifndef NMESH_JOB_SPEC_H_
#define NMESH_JOB_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/base/enum_names.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/config/parallelizer_config.h"
#include "nmesh/config/recipe.h"
#include "nmesh/config/sizes.h"
#include "nmesh/config/strategy_config.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/validate/sizes.h"

namespace nmesh::job {

// How a mesh's ranks are ordered over the hosts.
enum class Placement {
  // In the order given (0..N-1, or the rank list): wherever the launcher put them.
  kAsLaunched,
  // By host (hosts in the order their first rank appears in the mesh), then by rank within a host
  // (the local rank order).
  kPack,
};

// The name of each placement, in the order messages list them (base/enum_names.h).
inline constexpr NamedValue<Placement> kPlacementNames[] = {{Placement::kAsLaunched, "as-launched"},
                                                            {Placement::kPack, "pack"}};

// "as-launched" or "pack"; InvalidArgument naming the value otherwise.
absl::StatusOr<Placement> ParsePlacement(std::string_view name);
std::string_view PlacementName(Placement placement);

// How a job's meshes are requested: a recipe file, explicit values, or both (explicit values win).
// std::nullopt means "not given". These are the mesh flags of the `nmesh` CLI.
struct MeshOptions {
  // A recipe YAML file: its `distributed:`, `teacher_distributed:` and `dist_env:` sections.
  std::optional<std::string> config_path = std::nullopt;
  // The recipe section the explicit values apply to: "distributed" (default) or
  // "teacher_distributed".
  std::optional<std::string> section = std::nullopt;
  // fsdp2, megatron_fsdp (megatron-fsdp, mfsdp) or ddp, case-insensitive.
  std::optional<std::string> strategy = std::nullopt;
  // sizes.world_size is the mesh's size without `ranks`, and the job's world with them.
  validate::RequestedSizes sizes = {};
  // The mesh's ordered global ranks, when it spans a subset of the job.
  std::optional<std::vector<int64_t>> ranks = std::nullopt;
  // How the mesh's ranks are ordered over the job's hosts (kPack: by host, then local rank). Only
  // a running job knows its hosts: the job layer applies it (Job::Start), not ResolveMeshSpecs.
  Placement placement = Placement::kAsLaunched;
  // NCCL settings per axis or group name (comm/nccl_settings.h; the CLI's repeatable
  // `--nccl NAME.FIELD=VALUE`), over the recipe's `nccl:` of the selected section field by field
  // (or for the mesh given by the flags). Names are checked when the mesh is planned
  // (PlanMeshSpec).
  comm::NcclSettingsMap nccl = {};
  // Whether names that split the ranks alike share a communicator (the CLI's `--comm-sharing`),
  // over the recipe's `comm_sharing:` of every section; unset: the recipe's, else kPartition.
  std::optional<config::CommSharing> comm_sharing = std::nullopt;
};

// One mesh to build: the request for the mesh builders and the typed configs a MeshContext holds.
struct MeshSpec {
  // "distributed" or "teacher_distributed" for a recipe section, "flags" without a recipe.
  std::string label;
  // Strategy, sizes (world_size filled in), and the rank list when the mesh spans a subset.
  config::MeshRequest request;
  config::StrategyConfig strategy_config;
  std::optional<config::PipelineConfig> pipeline;
  std::optional<config::MoEParallelizerConfig> moe;
  config::ActivationCheckpointing activation_checkpointing =
      config::ActivationCheckpointing::kFalse;
  // dist_env.timeout_minutes of the recipe (the mesh timeout), if set.
  std::optional<absl::Duration> timeout;
  // Notes for the user (e.g. a dropped `pipeline:` block), each naming file:line:col.
  std::vector<std::string> warnings;
  // The recipe the spec came from, to annotate later errors with file:line:col.
  std::optional<config::Recipe> recipe;
  // Size keys set explicitly over the recipe, with the flag that set them ({"tp_size", "--tp"}),
  // so that errors about them name the flag rather than the file.
  std::vector<std::pair<std::string, std::string>> flag_overrides;
  // NCCL settings per axis or group name: the recipe's `nccl:` with MeshOptions::nccl over it
  // (mesh::DeviceMeshOptions::nccl).
  comm::NcclSettingsMap nccl;
  // The names whose settings came from MeshOptions::nccl, so that errors about them name the flag.
  std::vector<std::string> nccl_from_flags;
  // One communicator per distinct partition or per name (mesh::DeviceMeshOptions::comm_sharing):
  // MeshOptions::comm_sharing, else the recipe section's `comm_sharing:`, else kPartition.
  config::CommSharing comm_sharing = config::CommSharing::kPartition;
};

// The name a mesh of this spec is given (communicator names, messages): "device_mesh" for a mesh
// given by explicit values alone, the recipe section's name otherwise.
std::string MeshName(const MeshSpec& spec);

// Overrides `request` with every value given in `options`: the strategy (InvalidArgument for an
// unknown name), the sizes and the rank list. sizes.world_size is the mesh's world_size without a
// rank list, and the job's world (job_world_size) with one.
absl::Status ApplyMeshOptions(const MeshOptions& options, config::MeshRequest& request);

// Resolves `options` (and the recipe, if config_path) into the meshes to build. `job_world` is the
// number of ranks of the running job, used when sizes.world_size is absent. With `all_sections`, a
// recipe with a teacher section and no `section` yields both meshes, student first; otherwise
// exactly one spec. InvalidArgument for a bad value, a recipe error (naming file:line:col), a
// section without a recipe, or student and teacher meshes that do not fill the job's world. Sizes
// are checked by PlanMeshSpec.
// Thread-safe; reads the recipe file.
absl::StatusOr<std::vector<MeshSpec>> ResolveMeshSpecs(const MeshOptions& options,
                                                       std::optional<int64_t> job_world,
                                                       bool all_sections);

// mesh::PlanMesh on spec.request; a size error names the flag that set the size it is about
// (" (from --tp)"), or else the recipe's file:line:col of the first size it names that the file
// sets (config::Recipe::AnnotateSizeError). Then the NCCL settings against the plan
// (mesh::PlanMeshCommunicators: unknown axis or group names, min_ctas > max_ctas), an
// error naming " (from --nccl)" or the name's file:line:col in the recipe.
absl::StatusOr<mesh::MeshPlan> PlanMeshSpec(const MeshSpec& spec);
// PlanMeshSpec over the ranks of `members` (mesh::PlanMeshOver; spec.request.ranks must be unset),
// with the same annotations of size errors.
absl::StatusOr<mesh::MeshPlan> PlanMeshSpecOver(const MeshSpec& spec, const mesh::Layout& members);

}  // namespace nmesh::job

#endif  // NMESH_JOB_SPEC_H_
