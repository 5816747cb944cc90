// The mesh flags shared by `nmesh plan`, `run` and `bench` (the job layer's job::MeshOptions):
//   [--config FILE [--section distributed|teacher_distributed]] [--strategy S] [--world N]
//   [--dp N] [--dp-replicate N] [--tp N] [--pp N] [--cp N] [--ep N] [--ranks r0,r1,...]
//   [--placement as-launched|pack] [--comm-sharing partition|name] [--nccl AXIS.FIELD=VALUE ...]
//
// Every flag is optional, so that a recipe (--config) fills the mesh first and the flags given on
// the command line override it (job/spec.h resolves them):
//
//   MeshOptions options;
//   AddMeshOptions(*plan_command, options);
//   ... parse ...
//   NMESH_ASSIGN_OR_RETURN(std::vector<MeshSpec> specs,
//                          ResolveMeshSpecs(options, /*job_world=*/std::nullopt,
//                                           /*all_sections=*/false));
#ifndef NMESH_TOOLS_MESH_OPTIONS_H_
#define NMESH_TOOLS_MESH_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "nmesh/base/enum_names.h"
#include "nmesh/job/spec.h"

namespace nmesh::tools {

using job::ApplyMeshOptions;
using job::MeshName;
using job::MeshOptions;
using job::MeshSpec;
using job::PlanMeshSpec;
using job::ResolveMeshSpecs;

// Registers the mesh flags on `app`, writing into `options` (which must outlive the parse).
// A non-integer value is a CLI11 parse error naming the flag.
void AddMeshOptions(CLI::App& app, MeshOptions& options);

// The names of an enum's table (base/enum_names.h), in table order: the values a flag accepts
// (CLI::IsMember).
template <typename E>
std::vector<std::string> FlagValues(std::span<const NamedValue<E>> table) {
  std::vector<std::string> names;
  for (const NamedValue<E>& entry : table) names.emplace_back(entry.name);
  return names;
}

// Registers an optional integer flag (such as --tp or --rank), parsed exactly: a non-integer or
// out-of-range value is a CLI11 parse error naming the flag and the value.
CLI::Option* AddInt64Option(CLI::App& app, const std::string& flag, std::optional<int64_t>& value,
                            const std::string& help);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_MESH_OPTIONS_H_
