// The mesh flags shared by `nmesh plan`, `run` and `bench` (contract §9):
//   [--strategy S] [--world N] [--dp N] [--dp-replicate N] [--tp N] [--pp N] [--cp N] [--ep N]
//   [--ranks r0,r1,...]
//
// Every flag is optional, so that a config file can fill a MeshRequest first and the flags given
// on the command line override it:
//
//   MeshOptions options;
//   AddMeshOptions(*plan_command, options);
//   ... parse ...
//   config::MeshRequest request;                        // or loaded from --config
//   NMESH_RETURN_IF_ERROR(ApplyMeshOptions(options, request));
#ifndef NMESH_TOOLS_MESH_OPTIONS_H_
#define NMESH_TOOLS_MESH_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "config/sizes.h"

namespace nmesh::tools {

// The mesh flags as given; std::nullopt when absent. sizes.world_size holds --world, whose meaning
// depends on --ranks (see ApplyMeshOptions).
struct MeshOptions {
  std::optional<std::string> strategy;
  config::ParallelSizes sizes;
  std::optional<std::vector<int64_t>> ranks;
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

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_MESH_OPTIONS_H_
