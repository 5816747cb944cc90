// `nmesh plan`: a dry run of a mesh at any world size, with no MPI and no GPU (contract §9).
//
//   nmesh plan --world 16 --tp 2 --cp 2 --rank 0 --format json
//
// prints the plan object of §9: strategy, world_size, ranks, sizes, device_mesh (axes, shape,
// flattened groups), moe_mesh, context, and with --rank R or --all-ranks a per_rank array with each
// rank's coordinate, groups and moe groups. --format text prints the same as readable tables.
//
//   nmesh plan --world 16 --tp 2 --cp 2 --hosts 2 --ranks-per-host 8 --map-by node --placement pack
//
// adds a "placement" object: the hosts, the launch order, the placement, and for every group
// kind (native axes, flattened groups, moe axes) whether its groups stay inside one host (and,
// with --ranks-per-domain, inside one domain).
//
// The JSON writers are shared with `nmesh run`, whose object adds keys to the same summary and to
// each per_rank entry.
#ifndef NMESH_TOOLS_PLAN_COMMAND_H_
#define NMESH_TOOLS_PLAN_COMMAND_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "nmesh/mesh/plan.h"
#include "nmesh/mesh/planned_context.h"
#include "nmesh/tools/mesh_options.h"

namespace nmesh::tools {

struct PlanOptions {
  MeshOptions mesh;
  std::optional<int64_t> rank;
  bool all_ranks = false;
  std::string format = "text";
  // --hosts H --ranks-per-host R [--map-by slot|node] [--ranks-per-domain D]: the job's hosts as
  // the launcher lays them out, to report which groups stay inside a host (and a domain).
  std::optional<int64_t> hosts;
  std::optional<int64_t> ranks_per_host;
  std::string map_by = "slot";
  std::optional<int64_t> ranks_per_domain;
};

// Registers the `plan` subcommand and its flags on `app`; `options` must outlive the parse.
CLI::App* AddPlanCommand(CLI::App& app, PlanOptions& options);

// Plans the mesh the flags (and --config recipe) describe, placed on --hosts x --ranks-per-host
// when given (with --placement pack: its ranks ordered by host, the plan then lists them), and
// writes it to `out` in options.format; recipe warnings go to `err` as "nmesh: warning: ...".
// Returns InvalidArgument (a usage or config error, exit code 2) before writing anything when the
// flags, the sizes or --rank are invalid. --all-ranks streams one entry at a time: memory stays
// bounded by the largest group (plus the rank list, when one is given).
absl::Status RunPlan(const PlanOptions& options, std::ostream& out, std::ostream& err);

// The §9 plan object without per_rank: strategy, world_size, ranks, sizes, device_mesh, moe_mesh
// and context, in that order.
nlohmann::ordered_json PlanSummaryJson(const mesh::MeshPlan& plan);

// The "context" object of §9 (sizes and dp_axis_names), from a plan's or a live context's values.
nlohmann::ordered_json ContextJson(const mesh::PlannedContext& context);

// `value` as compact JSON; strings that are not UTF-8 (user input quoted in a message) are
// replaced rather than thrown on. Shared by every verb's JSON output.
std::string DumpJson(const nlohmann::ordered_json& value);

// Writes one per_rank entry ({"rank", "coordinate", "groups", "moe_groups"}) as compact JSON,
// streaming each group's ranks without materialising them.
void WriteRankEntryJson(const mesh::RankPlan& rank, std::ostream& out);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_PLAN_COMMAND_H_
