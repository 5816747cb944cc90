#include "nmesh/tools/run_command.h"

#include <cstdint>
#include <limits>
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
#include "nmesh/base/abbreviate.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/config/strategy.h"
#include "nmesh/job/launch.h"
#include "nmesh/job/verify.h"
#include "nmesh/job/verify_job.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/mesh_job.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {
namespace {

using mesh::MeshPlan;
using nlohmann::ordered_json;

ordered_json GroupsJson(const std::vector<job::GroupCheck>& checks) {
  ordered_json observed = ordered_json::object();
  for (const job::GroupCheck& check : checks) observed[check.name] = check.observed;
  return observed;
}

// One member's per_rank entry.
ordered_json RankJson(const job::RankVerification& v, const MeshPlan& plan) {
  ordered_json coordinate = ordered_json::object();
  const mesh::Layout& layout = plan.device_mesh();
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    coordinate[layout.axis_names()[axis]] = v.coordinate[static_cast<size_t>(axis)];
  }
  ordered_json entry = {
      {"rank", v.rank},
      {"host", v.host},
      {"local_rank", v.local_rank},
      {"coordinate", coordinate},
      {"groups", GroupsJson(v.groups)},
      {"moe_groups", v.moe_groups.has_value() ? GroupsJson(*v.moe_groups) : ordered_json(nullptr)},
      {"verified", v.verified}};
  if (!v.mismatches.empty()) entry["mismatches"] = v.mismatches;
  return entry;
}

// ---- Reporting ---------------------------------------------------------------------------------

struct MeshResult {
  const JobMesh* run = nullptr;
  const job::MeshVerification* verification = nullptr;
};

ordered_json NcclSettingsJson(const comm::NcclSettingsMap& settings, const std::string& status) {
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
  return {{"status", status}, {"groups", std::move(groups)}};
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
  object["verified"] = result.verification->verified;
  object["communicators_created"] = run.mesh->communicators_created();
  // Every communicator the mesh holds, as the names it serves: names in one list share it.
  object["communicators"] = run.mesh->CommunicatorNames();
  object["build_seconds"] = result.verification->build_seconds;
  ordered_json axes = ordered_json::array();
  for (const job::GroupPlacement& row : result.verification->placement) {
    axes.push_back({{"name", row.name},
                    {"size", row.size},
                    {"groups", row.count},
                    {"intra_node", row.intra_host}});
  }
  object["axes"] = std::move(axes);
  object["nccl_settings"] = NcclSettingsJson(run.spec.nccl, run.nccl_status);
  ordered_json per_rank = ordered_json::array();
  for (const job::RankVerification& v : result.verification->ranks) {
    per_rank.push_back(RankJson(v, *run.plan));
  }
  object["per_rank"] = std::move(per_rank);
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
    out << absl::StrFormat("nccl         %s: %s\n", run.nccl_status, nccl);
  }
  out << absl::StrFormat("\n%-14s %10s %10s  %s\n", "group", "size", "groups", "placement");
  const job::MeshVerification& verification = *result.verification;
  for (const job::GroupPlacement& row : verification.placement) {
    out << absl::StrFormat("%-14s %10d %10d  %s\n", row.name, row.size, row.count,
                           row.intra_host ? "intra-node" : "cross-node");
  }
  int64_t groups_checked = 0;
  for (const job::RankVerification& v : verification.ranks) {
    groups_checked += static_cast<int64_t>(v.groups.size());
    if (v.moe_groups.has_value()) groups_checked += static_cast<int64_t>(v.moe_groups->size());
  }
  out << absl::StrFormat(
      "\ncommunicators created  %d (one split per %s)\n", run.mesh->communicators_created(),
      run.spec.comm_sharing == config::CommSharing::kName ? "axis or group name"
                                                          : "distinct group kind");
  // Which names one communicator serves (an engine overlapping them on two streams or threads
  // must order them, or ask for --comm-sharing name).
  std::vector<std::string> sharing;
  for (const std::vector<std::string>& names : run.mesh->CommunicatorNames()) {
    if (names.size() > 1) sharing.push_back(absl::StrJoin(names, "/"));
  }
  out << absl::StrFormat("shared communicators   %s\n",
                         sharing.empty() ? "none" : absl::StrJoin(sharing, ", "));
  out << absl::StrFormat("build seconds          %.6f (slowest rank)\n",
                         verification.build_seconds);
  if (verification.verified) {
    out << absl::StrFormat(
        "verified               yes: %d groups on %d ranks match the layout (all_gather of the "
        "ranks, all_reduce of their sum)\n",
        groups_checked, verification.ranks.size());
  } else {
    out << "verified               NO\n";
    for (const job::RankVerification& v : verification.ranks) {
      for (const std::string& mismatch : v.mismatches) {
        out << absl::StrFormat("  rank %d: %s\n", v.rank, mismatch);
      }
    }
  }
}

}  // namespace

CLI::App* AddRunCommand(CLI::App& app, RunOptions& options) {
  CLI::App* run = app.add_subcommand(
      "run", "Build the mesh on every rank of an MPI job and verify every group (mpirun -np N)");
  AddMeshOptions(*run, options.mesh);
  run->add_option(
         "--backend", options.backend,
         "auto (NCCL when every rank has a GPU, else MPI; gloo under --store), mpi, nccl or "
         "gloo (with --store)")
      ->check(CLI::IsMember(FlagValues<job::BackendChoice>(job::kBackendChoiceNames)));
  AddTimeoutFlag(*run, options.timeout_s,
                 "the recipe's dist_env.timeout_minutes, else 600: 10 minutes; overrides the "
                 "recipe");
  AddStartupTimeoutFlag(*run, options.startup_timeout_s);
  AddStoreFlag(*run, options.store);
  run->add_option("--flight-recorder", options.flight_recorder,
                  "On a timeout, write each reporting rank's flight records as JSON into DIR")
      ->type_name("DIR");
  run->add_option("--format", options.format, "Output format: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  run->add_option("--nccl-ranks-per-root", options.nccl_ranks_per_root,
                  "NCCL backend: one bootstrap root per K ranks (ncclCommInitRankScalable when the "
                  "job has more; default 128)")
      ->type_name("K")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            int value = 0;
            if (absl::SimpleAtoi(text, &value) && value >= 1) return "";
            return absl::StrFormat("must be an integer from 1 to %d, got '%s'",
                                   std::numeric_limits<int>::max(), Abbreviate(text));
          },
          "", "POSITIVE"));
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
        Abbreviate(value)));
  }
  skip.group = std::string(value.substr(colon + 1));
  return skip;
}

int RunMeshes(const RunOptions& options, std::ostream& out, std::ostream& err) {
  const bool json = options.format == "json";
  const std::optional<std::string> store_url = job::StoreUrlFrom(options.store);
  // Flags first, before MPI: every rank finds the same error (and prints it).
  absl::StatusOr<TimeoutFlag> timeout = TimeoutFromFlag(options.timeout_s);
  if (!timeout.ok()) return ReportFlagError(timeout.status(), json, out, err, store_url);
  absl::StatusOr<std::optional<absl::Duration>> startup_timeout =
      StartupTimeoutFromFlag(options.startup_timeout_s);
  if (!startup_timeout.ok()) {
    return ReportFlagError(startup_timeout.status(), json, out, err, store_url);
  }
  std::optional<FaultSkip> fault_skip;
  if (options.fault_skip.has_value()) {
    absl::StatusOr<FaultSkip> parsed = ParseFaultSkip(*options.fault_skip);
    if (!parsed.ok()) return ReportFlagError(parsed.status(), json, out, err, store_url);
    fault_skip = *std::move(parsed);
  }
  // A delay the start-up deadline can bound: NaN or a huge value slept forever.
  const double late_s = options.fault_late_s.value_or(0);
  if (!(late_s >= 0 && late_s <= kMaxFaultLateSeconds)) {
    return ReportFlagError(absl::InvalidArgumentError(absl::StrFormat(
                               "--fault-late-s must be a number of seconds from 0 to %g, got %g",
                               kMaxFaultLateSeconds, late_s)),
                           json, out, err, store_url);
  }
  JobReporter reporter(job::LauncherRank(), json, out, err);
  ApplyFlightRecorderFlag(options.flight_recorder, reporter);
  absl::StatusOr<job::BackendChoice> backend_choice = job::ParseBackendChoice(options.backend);
  if (!backend_choice.ok())
    return ReportFlagError(backend_choice.status(), json, out, err, store_url);
  std::variant<CliJob, int> started = StartJob({.mesh = options.mesh,
                                                .command = "run",
                                                .startup_timeout = *startup_timeout,
                                                .backend = *backend_choice,
                                                .timeout = timeout->timeout,
                                                .no_timeout = timeout->none,
                                                .nccl_ranks_per_root = options.nccl_ranks_per_root},
                                               reporter, store_url, absl::Seconds(late_s));
  if (const int* code = std::get_if<int>(&started)) return *code;
  Job& job = *std::get<CliJob>(started).job;
  const int64_t rank = job.rank();
  const job::Backend& backend = job.backend();
  const std::vector<JobMesh>& meshes = job.meshes();
  job::VerifyJobOptions verify;
  if (fault_skip.has_value()) {
    if (absl::Status s = job::CheckFaultSkip(*fault_skip, job.world_size(), meshes); !s.ok()) {
      return reporter.Fail(s);
    }
    verify.fault_skip = *fault_skip;
    verify.on_fault_skip = [&err, rank, &skip = *fault_skip](const JobMesh&) {
      err << absl::StrFormat(
          "nmesh: fault injection: rank %d skips its all_gather and all_reduce on '%s' "
          "(--fault-skip %d:%s)\n",
          rank, skip.group, skip.rank, skip.group);
      err.flush();
    };
  }

  // 4 and 5. Verification through the communicators; rank 0 gathers the results and reports, and
  // every rank exits with the job's verdict.
  absl::StatusOr<job::JobVerification> verification = job::VerifyJob(job, verify);
  if (!verification.ok()) reporter.Abort(verification.status());
  if (rank == 0) {
    std::vector<MeshResult> results(meshes.size());
    for (size_t m = 0; m < meshes.size(); ++m) {
      results[m] = {.run = &meshes[m], .verification = &verification->meshes[m]};
      for (const std::string& warning : verification->meshes[m].warnings) {
        reporter.Note("warning: " + warning);
      }
    }
    if (json) {
      if (results.size() == 1) {
        out << DumpJson(MeshJson(results[0], backend, job.placement(), false)) << "\n";
      } else {
        ordered_json all = ordered_json::array();
        for (const MeshResult& r : results) {
          all.push_back(MeshJson(r, backend, job.placement(), true));
        }
        out << DumpJson(ordered_json{{"meshes", all},
                                     {"backend", backend.name},
                                     {"verified", verification->verified}})
            << "\n";
      }
    } else {
      for (size_t m = 0; m < results.size(); ++m) {
        if (m > 0) out << "\n";
        WriteMeshText(results[m], backend, job.topology().host_names, job.placement(), out);
      }
    }
    out.flush();
  }
  return verification->verified ? kExitOk : kExitRuntimeFailure;
}

}  // namespace nmesh::tools
