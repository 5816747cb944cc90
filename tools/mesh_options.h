// The mesh flags shared by `nmesh plan`, `run` and `bench` (contract §9):
//   [--config FILE [--section distributed|teacher_distributed]] [--strategy S] [--world N]
//   [--dp N] [--dp-replicate N] [--tp N] [--pp N] [--cp N] [--ep N] [--ranks r0,r1,...]
//
// Every flag is optional, so that a recipe (--config) fills the mesh first and the flags given on
// the command line override it:
//
//   MeshOptions options;
//   AddMeshOptions(*plan_command, options);
//   ... parse ...
//   NMESH_ASSIGN_OR_RETURN(std::vector<MeshSpec> specs,
//                          ResolveMeshSpecs(options, /*job_world=*/std::nullopt,
//                                           /*all_sections=*/false));
//   NMESH_ASSIGN_OR_RETURN(mesh::MeshPlan plan, PlanMeshSpec(specs[0]));
//
// Rank assignment for a recipe with a `teacher_distributed:` section (a student and a teacher
// model in one job, each on its own mesh): the student (`distributed`) takes the first S ranks
// and the teacher the T ranks that follow, [S, S+T). A section's size is the product of its sizes
// when it gives dp_size (FSDP2: dp·cp·tp·pp; MegatronFSDP: dp·cp·tp; DDP: dp); a section that
// leaves dp to inference gets the ranks the other leaves over in the job's world (--world, or the
// MPI world for `run`, or S+T when both are explicit). --ranks overrides the assignment of the
// section it applies to. Flags override the selected section (--section, default distributed);
// the other section is read as written.
#ifndef NMESH_TOOLS_MESH_OPTIONS_H_
#define NMESH_TOOLS_MESH_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/config/parallelizer_config.h"
#include "nmesh/config/recipe.h"
#include "nmesh/config/sizes.h"
#include "nmesh/config/strategy_config.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::tools {

// The mesh flags as given; std::nullopt when absent. sizes.world_size holds --world, whose meaning
// depends on --ranks (see ApplyMeshOptions).
struct MeshOptions {
  std::optional<std::string> config_path;
  std::optional<std::string> section;
  std::optional<std::string> strategy;
  config::ParallelSizes sizes;
  std::optional<std::vector<int64_t>> ranks;
};

// One mesh to build: the request for the mesh builders and the typed configs a MeshContext holds.
struct MeshSpec {
  // "distributed" or "teacher_distributed" for a recipe section, "flags" without --config.
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
  // Size keys the command line set over the recipe, with their flags ({"tp_size", "--tp"}), so
  // that errors about them point at the flag rather than the file.
  std::vector<std::pair<std::string, std::string>> flag_overrides;
};

// Registers the mesh flags on `app`, writing into `options` (which must outlive the parse).
// A non-integer value is a CLI11 parse error naming the flag.
void AddMeshOptions(CLI::App& app, MeshOptions& options);

// Registers an optional integer flag (such as --tp or --rank), parsed exactly: a non-integer or
// out-of-range value is a CLI11 parse error naming the flag and the value.
CLI::Option* AddInt64Option(CLI::App& app, const std::string& flag, std::optional<int64_t>& value,
                            const std::string& help);

// Overrides `request` with every flag given: the strategy (parsed case-insensitively, with its
// aliases; an unknown name is InvalidArgument), the sizes and the rank list. --world is the mesh's
// world_size without a rank list, and the job's world (job_world_size) with one.
absl::Status ApplyMeshOptions(const MeshOptions& options, config::MeshRequest& request);

// Resolves the flags and the recipe (if --config) into the meshes to build. `job_world` is the
// number of ranks of the running job (`run`: the MPI world size), used when --world is absent.
// With `all_sections`, a recipe with a teacher section and no --section yields both meshes,
// student first; otherwise exactly one spec. Fails with InvalidArgument on a bad flag value, a
// recipe error (naming file:line:col), --section without --config, or ranks that cannot be
// assigned. Does not check sizes: PlanMeshSpec does. Thread-safe; reads the recipe file.
absl::StatusOr<std::vector<MeshSpec>> ResolveMeshSpecs(const MeshOptions& options,
                                                       std::optional<int64_t> job_world,
                                                       bool all_sections);

// mesh::PlanMesh on spec.request; a size error is annotated with the recipe's file:line:col.
absl::StatusOr<mesh::MeshPlan> PlanMeshSpec(const MeshSpec& spec);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_MESH_OPTIONS_H_
