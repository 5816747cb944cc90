#include "nmesh/tools/run_command.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/comm/topology.h"
#include "nmesh/config/strategy.h"
#include "nmesh/job/verify.h"
#include "nmesh/mesh/context.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/mesh_job.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {
namespace {

using comm::Communicator;
using mesh::DeviceMesh;
using mesh::MeshPlan;
using nlohmann::ordered_json;

// ---- Verification ------------------------------------------------------------------------------

// What one rank observed of one mesh, as its per_rank entry.
struct RankReport {
  ordered_json entry;
  bool verified = true;
};

ordered_json GroupsJson(const std::vector<job::GroupCheck>& checks) {
  ordered_json observed = ordered_json::object();
  for (const job::GroupCheck& check : checks) observed[check.name] = check.observed;
  return observed;
}

// job::VerifyRank as a per_rank entry.
absl::StatusOr<RankReport> VerifyRank(const MeshPlan& plan, const DeviceMesh& device_mesh,
                                      int64_t rank, const comm::Topology& topo,
                                      const FaultSkip* skip, std::ostream& err) {
  job::VerifyOptions options;
  if (skip != nullptr) {
    options.skip_group = skip->group;
    err << absl::StrFormat(
        "nmesh: fault injection: rank %d skips its all_gather and all_reduce on '%s' "
        "(--fault-skip %d:%s)\n",
        rank, skip->group, skip->rank, skip->group);
    err.flush();
  }
  NMESH_ASSIGN_OR_RETURN(job::RankVerification verification,
                         job::VerifyRank(plan, device_mesh, rank, options));
  ordered_json coordinate = ordered_json::object();
  const mesh::Layout& layout = plan.device_mesh();
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    coordinate[layout.axis_names()[axis]] = verification.coordinate[static_cast<size_t>(axis)];
  }
  RankReport report;
  report.verified = verification.verified;
  report.entry = {
      {"rank", rank},
      {"host", topo.host_names[static_cast<size_t>(rank)]},
      {"local_rank", topo.local_rank},
      {"coordinate", coordinate},
      {"groups", GroupsJson(verification.groups)},
      {"moe_groups", verification.moe_groups.has_value() ? GroupsJson(*verification.moe_groups)
                                                         : ordered_json(nullptr)},
      {"verified", report.verified}};
  if (!verification.mismatches.empty()) report.entry["mismatches"] = verification.mismatches;
  return report;
}

// ---- Gathering and reporting --------------------------------------------------------------------

// Rank 0 receives every rank's text (its per-mesh entries as JSON); other ranks send theirs.
// Returns every rank's text on rank 0, and nothing elsewhere.
absl::StatusOr<std::vector<std::string>> GatherToRankZero(Communicator& world,
                                                          const std::string& mine) {
  std::vector<std::string> all;
  if (world.rank() != 0) {
    const uint64_t bytes = mine.size();
    NMESH_RETURN_IF_ERROR(world.Send<uint64_t>(absl::MakeConstSpan(&bytes, 1), 0));
    NMESH_RETURN_IF_ERROR(world.Send(mine.data(), mine.size(), comm::DataType::kUint8, 0));
    return all;
  }
  all.push_back(mine);
  for (int peer = 1; peer < world.size(); ++peer) {
    uint64_t bytes = 0;
    NMESH_RETURN_IF_ERROR(world.Recv<uint64_t>(absl::MakeSpan(&bytes, 1), peer));
    std::string text(bytes, '\0');
    NMESH_RETURN_IF_ERROR(world.Recv(text.data(), bytes, comm::DataType::kUint8, peer));
    all.push_back(std::move(text));
  }
  return all;
}

// Every group kind of a plan in report order, placed on the hosts (job::PlacementOf).
std::vector<job::GroupPlacement> GroupRows(const MeshPlan& plan,
                                           const std::vector<std::string>& hosts) {
  absl::StatusOr<std::vector<job::GroupPlacement>> rows = job::PlacementOf(plan, hosts);
  NMESH_CHECK(rows.ok()) << rows.status();  // every mesh rank is a rank of the job
  return *std::move(rows);
}

struct MeshResult {
  const JobMesh* run = nullptr;
  std::vector<ordered_json> entries;  // members, in rank order
  bool verified = true;
  // Every group kind placed on the hosts, computed once for the report.
  std::vector<job::GroupPlacement> placement;
};

// Whether a mesh's NCCL settings were applied: "none" without settings, "applied" on NCCL,
// "not applicable (mpi backend)" on MPI (accepted, checked, and agreed on, but MPI has no
// ncclConfig_t).
std::string NcclSettingsStatus(const comm::NcclSettingsMap& settings, const job::Backend& backend) {
  if (comm::NcclSettingsMapText(settings).empty()) return "none";
  if (backend.name == "nccl") return "applied";
  return absl::StrFormat("not applicable (%s backend)", backend.name);
}

ordered_json NcclSettingsJson(const comm::NcclSettingsMap& settings, const job::Backend& backend) {
  ordered_json groups = ordered_json::object();
  for (const auto& [name, group] : settings) {
    if (group.empty()) continue;
    ordered_json fields = ordered_json::object();
    for (const auto& [field, value] : comm::NcclSettingsItems(group)) {
      std::visit([&fields, field = std::string(field)](const auto& v) { fields[field] = v; },
                 value);
    }
    groups[name] = std::move(fields);
  }
  return {{"status", NcclSettingsStatus(settings, backend)}, {"groups", std::move(groups)}};
}

ordered_json MeshJson(const MeshResult& result, const job::Backend& backend,
                      job::Placement placement, bool with_label) {
  const JobMesh& run = *result.run;
  ordered_json object;
  if (with_label) object["label"] = run.spec.label;
  const ordered_json summary = PlanSummaryJson(*run.plan);
  for (const auto& [key, value] : summary.items()) object[key] = value;
  if (run.context.has_value()) {
    // Rank 0's live context: sizes read from its communicators (a member's view; the plan's
    // otherwise, by the same rules).
    object["context"] =
        ContextJson({.sizes = run.context->sizes(),
                     .parallelize_axis_kwargs = run.context->parallelize_axis_kwargs(),
                     .pipeline_axis_kwargs = run.context->pipeline_axis_kwargs()});
  }
  object["backend"] = backend.name;
  object["backend_reason"] = backend.reason;
  object["placement"] = job::PlacementName(placement);
  object["verified"] = result.verified;
  object["communicators_created"] = run.mesh->communicators_created();
  object["build_seconds"] = run.build_seconds;
  ordered_json axes = ordered_json::array();
  for (const job::GroupPlacement& row : result.placement) {
    axes.push_back({{"name", row.name},
                    {"size", row.size},
                    {"groups", row.count},
                    {"intra_node", row.intra_host}});
  }
  object["axes"] = std::move(axes);
  object["nccl_settings"] = NcclSettingsJson(run.spec.nccl, backend);
  object["per_rank"] = result.entries;
  return object;
}

void WriteMeshText(const MeshResult& result, const job::Backend& backend,
                   const std::vector<std::string>& hosts, job::Placement placement,
                   std::ostream& out) {
  const JobMesh& run = *result.run;
  const MeshPlan& plan = *run.plan;
  const std::set<std::string> distinct_hosts(hosts.begin(), hosts.end());
  out << absl::StrFormat("mesh         %s: %s %s, %d ranks of %d on %d host(s)\n", run.spec.label,
                         config::StrategyName(plan.strategy()), plan.device_mesh().DebugString(),
                         plan.device_mesh().size(), hosts.size(), distinct_hosts.size());
  if (plan.moe_mesh().has_value()) {
    out << absl::StrFormat("moe mesh     (ep_shard=%d, ep=%d) per stage, %d stage(s)\n",
                           plan.moe_mesh()->ep_shard, plan.moe_mesh()->ep, plan.moe_mesh()->stages);
  }
  out << absl::StrFormat("backend      %s (%s)\n", backend.name, backend.reason);
  out << absl::StrFormat("placement    %s\n", placement == job::Placement::kPack
                                                  ? "pack (ranks ordered by host, then local rank)"
                                                  : "as-launched (the launcher's rank order)");
  if (const std::string nccl = comm::NcclSettingsMapText(run.spec.nccl); !nccl.empty()) {
    out << absl::StrFormat("nccl         %s: %s\n", NcclSettingsStatus(run.spec.nccl, backend),
                           nccl);
  }
  out << absl::StrFormat("\n%-14s %10s %10s  %s\n", "group", "size", "groups", "placement");
  for (const job::GroupPlacement& row : result.placement) {
    out << absl::StrFormat("%-14s %10d %10d  %s\n", row.name, row.size, row.count,
                           row.intra_host ? "intra-node" : "cross-node");
  }
  int64_t groups_checked = 0;
  for (const ordered_json& entry : result.entries) {
    groups_checked += static_cast<int64_t>(entry["groups"].size());
    if (!entry["moe_groups"].is_null()) {
      groups_checked += static_cast<int64_t>(entry["moe_groups"].size());
    }
  }
  out << absl::StrFormat("\ncommunicators created  %d (one split per distinct group kind)\n",
                         run.mesh->communicators_created());
  out << absl::StrFormat("build seconds          %.6f (slowest rank)\n", run.build_seconds);
  if (result.verified) {
    out << absl::StrFormat(
        "verified               yes: %d groups on %d ranks match the layout (all_gather of the "
        "ranks, all_reduce of their sum)\n",
        groups_checked, result.entries.size());
  } else {
    out << "verified               NO\n";
    for (const ordered_json& entry : result.entries) {
      if (!entry.contains("mismatches")) continue;
      for (const auto& mismatch : entry["mismatches"]) {
        out << absl::StrFormat("  rank %d: %s\n", entry["rank"].get<int64_t>(),
                               mismatch.get<std::string>());
      }
    }
  }
}

// Warns when tensor- or context-parallel groups cross hosts (their traffic is the heaviest).
void WarnOnCrossNodeGroups(const MeshResult& result, const std::vector<std::string>& hosts,
                           JobReporter& reporter) {
  for (const job::GroupPlacement& row : result.placement) {
    if ((row.name == "tp" || row.name == "cp") && !row.intra_host) {
      reporter.Note(absl::StrFormat(
          "warning: mesh '%s': %s groups span hosts; keep %s within a node (--placement pack "
          "orders the ranks by host, so that each host holds whole %s groups when its ranks "
          "allow)",
          result.run->spec.label, row.name, row.name, row.name));
    }
  }
}

// Checks a --fault-skip against the job: the rank must be in the world and a member of a mesh
// that has the group. Every rank reaches the same answer.
absl::Status CheckFaultSkip(const FaultSkip& skip, int64_t world_size,
                            const std::vector<JobMesh>& meshes) {
  if (skip.rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--fault-skip %d:%s: rank %d is outside the world (%d ranks)", skip.rank,
                        skip.group, skip.rank, world_size));
  }
  for (const JobMesh& run : meshes) {
    if (run.plan->Contains(skip.rank) && run.plan->ResolveGroup(skip.group).ok()) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("--fault-skip %d:%s: no mesh with rank %d as a member has a group '%s'",
                      skip.rank, skip.group, skip.rank, skip.group));
}

}  // namespace

CLI::App* AddRunCommand(CLI::App& app, RunOptions& options) {
  CLI::App* run = app.add_subcommand(
      "run", "Build the mesh on every rank of an MPI job and verify every group (mpirun -np N)");
  AddMeshOptions(*run, options.mesh);
  run->add_option("--backend", options.backend,
                  "auto (NCCL when every rank has a GPU, else MPI), mpi or nccl")
      ->check(CLI::IsMember({"auto", "mpi", "nccl"}));
  run->add_option("--timeout-s", options.timeout_s,
                  "Timeout of every communicator, in seconds (overrides dist_env.timeout_minutes)")
      ->type_name("T");
  AddStartupTimeoutFlag(*run, options.startup_timeout_s);
  run->add_option("--flight-recorder", options.flight_recorder,
                  "On a timeout, write each reporting rank's flight records as JSON into DIR")
      ->type_name("DIR");
  run->add_option("--format", options.format, "Output format: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  run->add_option("--nccl-ranks-per-root", options.nccl_ranks_per_root,
                  "NCCL backend: one bootstrap root per K ranks (ncclCommInitRankScalable when the "
                  "job has more; default 128)")
      ->type_name("K")
      ->check(CLI::PositiveNumber);
  // Hidden (no group): for the fault tests only.
  run->add_option("--fault-skip", options.fault_skip,
                  "Fault injection: rank RANK skips its collectives on group GROUP")
      ->type_name("RANK:GROUP")
      ->group("");
  run->add_option("--fault-late-s", options.fault_late_s,
                  "Fault injection: this rank starts the job S seconds late (after MPI_Init)")
      ->type_name("S")
      ->group("");
  return run;
}

absl::StatusOr<FaultSkip> ParseFaultSkip(std::string_view value) {
  const size_t colon = value.find(':');
  FaultSkip skip;
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == value.size() ||
      !absl::SimpleAtoi(std::string(value.substr(0, colon)), &skip.rank) || skip.rank < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--fault-skip must be RANK:GROUP (a non-negative rank and a group name), got '%s'",
        std::string(value)));
  }
  skip.group = std::string(value.substr(colon + 1));
  return skip;
}

int RunMeshes(const RunOptions& options, std::ostream& out, std::ostream& err) {
  const bool json = options.format == "json";
  // Flags first, before MPI: every rank finds the same error (and prints it).
  absl::StatusOr<std::optional<absl::Duration>> timeout = TimeoutFromFlag(options.timeout_s);
  if (!timeout.ok()) return ReportFlagError(timeout.status(), json, out, err);
  absl::StatusOr<std::optional<absl::Duration>> startup_timeout =
      StartupTimeoutFromFlag(options.startup_timeout_s);
  if (!startup_timeout.ok()) {
    return ReportFlagError(startup_timeout.status(), json, out, err);
  }
  std::optional<FaultSkip> fault_skip;
  if (options.fault_skip.has_value()) {
    absl::StatusOr<FaultSkip> parsed = ParseFaultSkip(*options.fault_skip);
    if (!parsed.ok()) return ReportFlagError(parsed.status(), json, out, err);
    fault_skip = *std::move(parsed);
  }
  JobReporter reporter(LauncherRank(), json, out, err);
  ReportTimeouts(options.flight_recorder, reporter);
  absl::StatusOr<job::BackendChoice> backend_choice = job::ParseBackendChoice(options.backend);
  if (!backend_choice.ok()) return ReportFlagError(backend_choice.status(), json, out, err);
  std::variant<CliJob, int> started =
      StartJob({.mesh = options.mesh,
                .command = "run",
                .startup_timeout = *startup_timeout,
                .backend = *backend_choice,
                .timeout = *timeout,
                .nccl_ranks_per_root = options.nccl_ranks_per_root},
               reporter, absl::Seconds(options.fault_late_s.value_or(0)));
  if (const int* code = std::get_if<int>(&started)) return *code;
  Job& job = *std::get<CliJob>(started).job;
  const int64_t rank = job.rank();
  Communicator& world = job.mpi_world();
  const comm::Topology& topo = job.topology();
  const job::Backend& backend = job.backend();
  std::vector<JobMesh>& meshes = job.meshes();
  if (fault_skip.has_value()) {
    if (absl::Status s = CheckFaultSkip(*fault_skip, world.size(), meshes); !s.ok()) {
      return reporter.Fail(s);
    }
  }

  // 4. Verification through the communicators.
  ordered_json mine = ordered_json::array();
  int64_t verified = 1;
  for (JobMesh& run : meshes) {
    double seconds = run.build_seconds;
    if (absl::Status s = comm::HostAllReduce(world, &seconds, &run.build_seconds, 1,
                                             comm::DataType::kFloat64, comm::ReduceOp::kMax);
        !s.ok()) {
      reporter.Abort(s);
    }
    if (!run.mesh->is_member()) {
      mine.push_back(nullptr);
      continue;
    }
    const FaultSkip* skip =
        fault_skip.has_value() && fault_skip->rank == rank ? &*fault_skip : nullptr;
    absl::StatusOr<RankReport> report = VerifyRank(*run.plan, *run.mesh, rank, topo, skip, err);
    if (!report.ok()) reporter.Abort(report.status());
    if (!report->verified) verified = 0;
    mine.push_back(std::move(report->entry));
  }

  // 5. Rank 0 gathers and reports; every rank exits with the job's verdict.
  absl::StatusOr<std::vector<std::string>> gathered = GatherToRankZero(world, DumpJson(mine));
  if (!gathered.ok()) reporter.Abort(gathered.status());
  if (absl::Status s = comm::HostAllReduce(world, &verified, &verified, 1, comm::DataType::kInt64,
                                           comm::ReduceOp::kMin);
      !s.ok()) {
    reporter.Abort(s);
  }
  if (rank == 0) {
    std::vector<MeshResult> results(meshes.size());
    for (size_t m = 0; m < meshes.size(); ++m) {
      results[m].run = &meshes[m];
      results[m].placement = GroupRows(*meshes[m].plan, topo.host_names);
    }
    for (const std::string& text : *gathered) {
      const ordered_json entries = ordered_json::parse(text);
      for (size_t m = 0; m < meshes.size(); ++m) {
        if (entries[m].is_null()) continue;
        results[m].verified = results[m].verified && entries[m]["verified"].get<bool>();
        results[m].entries.push_back(entries[m]);
      }
    }
    for (const MeshResult& result : results)
      WarnOnCrossNodeGroups(result, topo.host_names, reporter);
    if (options.format == "json") {
      if (results.size() == 1) {
        out << DumpJson(MeshJson(results[0], backend, job.placement(), false)) << "\n";
      } else {
        ordered_json all = ordered_json::array();
        for (const MeshResult& r : results)
          all.push_back(MeshJson(r, backend, job.placement(), true));
        out << DumpJson(ordered_json{
                   {"meshes", all}, {"backend", backend.name}, {"verified", verified == 1}})
            << "\n";
      }
    } else {
      for (size_t m = 0; m < results.size(); ++m) {
        if (m > 0) out << "\n";
        WriteMeshText(results[m], backend, topo.host_names, job.placement(), out);
      }
    }
    out.flush();
  }
  return verified == 1 ? kExitOk : kExitRuntimeFailure;
}

}  // namespace nmesh::tools
