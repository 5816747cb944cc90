#include "nmesh/tools/plan_command.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/printable.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/strategy.h"
#include "nmesh/job/placement.h"
#include "nmesh/mesh/axis_name.h"
#include "nmesh/mesh/planned_context.h"

namespace nmesh::tools {
namespace {

using mesh::GroupView;
using mesh::MeshPlan;
using mesh::RankPlan;
using nlohmann::ordered_json;

// Text output shows at most this many ranks of a group: the first ones, "...", the last ones.
constexpr int64_t kTextHead = 8;
constexpr int64_t kTextTail = 4;

void WriteRanksJson(const GroupView& group, std::ostream& out) {
  out << '[';
  bool first = true;
  group.ForEach([&](int64_t rank) {
    if (!first) out << ',';
    first = false;
    out << rank;
  });
  out << ']';
}

ordered_json SizesJson(const validate::ResolvedSizes& s) {
  ordered_json sizes = ordered_json::object();
  const std::pair<const char*, const std::optional<int64_t>*> fields[] = {
      {"pp", &s.pp},
      {"dp", &s.dp},
      {"dp_replicate", &s.dp_replicate},
      {"dp_shard", &s.dp_shard},
      {"cp", &s.cp},
      {"tp", &s.tp},
      {"ep", &s.ep},
      {"ep_shard", &s.ep_shard},
      {"dp_shard_cp", &s.dp_shard_cp},
      {"dp_cp", &s.dp_cp}};
  for (const auto& [name, value] : fields) {
    if (value->has_value()) sizes[name] = **value;
  }
  return sizes;
}

ordered_json OptionalJson(const std::optional<int64_t>& value) {
  return value.has_value() ? ordered_json(*value) : ordered_json(nullptr);
}

ordered_json AxisNamesJson(const std::vector<mesh::MeshAxisName>& names) {
  ordered_json list = ordered_json::array();
  for (mesh::MeshAxisName name : names) list.push_back(mesh::MeshAxisNameString(name));
  return list;
}

// The ranks to print per_rank entries for, in rank order.
std::vector<int64_t> SortedMembers(const MeshPlan& plan) {
  std::vector<int64_t> members;
  const mesh::Layout& layout = plan.device_mesh();
  members.reserve(layout.size());
  for (int64_t i = 0; i < layout.size(); ++i) members.push_back(layout.RankAtPosition(i));
  std::sort(members.begin(), members.end());
  return members;
}

// Calls `visit` with each selected rank's plan: none, --rank R, or every member in rank order.
absl::Status ForEachSelectedRank(const MeshPlan& plan, const PlanOptions& options,
                                 absl::FunctionRef<void(const RankPlan&)> visit) {
  if (options.rank.has_value()) {
    NMESH_ASSIGN_OR_RETURN(RankPlan me, plan.QueryRank(*options.rank));
    visit(me);
  } else if (options.all_ranks) {
    auto visit_rank = [&](int64_t rank) {
      absl::StatusOr<RankPlan> me = plan.QueryRank(rank);
      NMESH_CHECK(me.ok()) << me.status();  // every listed rank is a member
      visit(*me);
    };
    if (plan.has_explicit_ranks()) {
      for (int64_t rank : SortedMembers(plan)) visit_rank(rank);
    } else {
      for (int64_t rank = 0; rank < plan.device_mesh().size(); ++rank) visit_rank(rank);
    }
  }
  return absl::OkStatus();
}

// JSON lists every member of each group of a per_rank entry; at most this many in all (about
// 300 MB of output).
constexpr int64_t kMaxListedRanks = int64_t{1} << 25;

// The members a per_rank entry lists: the sizes of its groups and moe groups.
int64_t ListedRanks(const RankPlan& rank) {
  int64_t listed = 0;
  for (const mesh::NamedGroup& g : rank.groups) listed += g.group.size();
  if (rank.moe_groups.has_value()) {
    for (const mesh::NamedGroup& g : *rank.moe_groups) listed += g.group.size();
  }
  return listed;
}

// --rank R --format json lists the rank's groups whole: at world 2^31 - 1 that is gigabytes.
// Refused above kMaxListedRanks (JSON never holds a cut list); text output shows each group's
// first and last members.
absl::Status CheckOneRankOutput(const MeshPlan& plan, const PlanOptions& options) {
  if (options.format != "json" || !options.rank.has_value()) return absl::OkStatus();
  NMESH_ASSIGN_OR_RETURN(RankPlan rank, plan.QueryRank(*options.rank));
  const int64_t listed = ListedRanks(rank);
  if (listed <= kMaxListedRanks) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "--rank %d --format json would list %d ranks in the rank's groups, more than the %d it "
      "prints; --format text shows each group's size and its first and last members (and the "
      "library's MeshPlan::QueryRank gives any member without listing them)",
      *options.rank, listed, kMaxListedRanks));
}

// --all-ranks streams an entry per rank, and under JSON every entry lists its groups whole: a
// world of 2^31 ranks would print for days. Bounds the ranks, and the ranks listed in all.
absl::Status CheckAllRanksOutput(const MeshPlan& plan, const PlanOptions& options) {
  constexpr int64_t kMaxAllRanks = 65536;
  const int64_t n = plan.device_mesh().size();
  if (n > kMaxAllRanks) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--all-ranks prints at most %d ranks, and this mesh has %d; ask for one with --rank R",
        kMaxAllRanks, n));
  }
  if (options.format != "json" || n == 0) return absl::OkStatus();
  NMESH_ASSIGN_OR_RETURN(RankPlan first, plan.QueryRank(plan.device_mesh().RankAtPosition(0)));
  const int64_t per_rank = ListedRanks(first);
  if (per_rank > kMaxListedRanks / n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--all-ranks --format json would list %d ranks in groups (%d ranks x %d), more than the "
        "%d it prints; ask for one rank with --rank R",
        per_rank * n, n, per_rank, kMaxListedRanks));
  }
  return absl::OkStatus();
}

ordered_json PlacementJson(const PlanOptions& options, const job::PlacedPlan& placed) {
  ordered_json groups = ordered_json::array();
  for (size_t g = 0; g < placed.groups.size(); ++g) {
    const job::GroupPlacement& row = placed.groups[g];
    ordered_json entry = {{"name", row.name},
                          {"size", row.size},
                          {"groups", row.count},
                          {"intra_host", row.intra_host}};
    if (!placed.intra_domain.empty()) entry["intra_domain"] = bool(placed.intra_domain[g]);
    groups.push_back(std::move(entry));
  }
  return ordered_json{{"placement", job::PlacementName(options.mesh.placement)},
                      {"hosts", *options.hosts},
                      {"ranks_per_host", *options.ranks_per_host},
                      {"map_by", options.map_by},
                      {"ranks_per_domain", OptionalJson(options.ranks_per_domain)},
                      {"groups", std::move(groups)}};
}

absl::Status WritePlanJson(const MeshPlan& plan, const PlanOptions& options,
                           const job::PlacedPlan* placed, std::ostream& out) {
  ordered_json summary_json = PlanSummaryJson(plan);
  if (placed != nullptr) summary_json["placement"] = PlacementJson(options, *placed);
  std::string summary = DumpJson(summary_json);
  if (!options.rank.has_value() && !options.all_ranks) {
    out << summary << "\n";
    return absl::OkStatus();
  }
  summary.pop_back();  // the closing brace: per_rank follows, streamed
  out << summary << ",\"per_rank\":[";
  bool first = true;
  NMESH_RETURN_IF_ERROR(ForEachSelectedRank(plan, options, [&](const RankPlan& me) {
    out << (first ? "\n" : ",\n");
    first = false;
    WriteRankEntryJson(me, out);
  }));
  out << "]}\n";
  return absl::OkStatus();
}

// ---- Text -------------------------------------------------------------------------------------

std::string RanksText(const GroupView& group) {
  std::vector<std::string> parts;
  const int64_t n = group.size();
  if (n <= kTextHead + kTextTail) {
    group.ForEach([&](int64_t rank) { parts.push_back(absl::StrCat(rank)); });
  } else {
    for (int64_t i = 0; i < kTextHead; ++i) parts.push_back(absl::StrCat(group.RankAt(i)));
    parts.push_back("...");
    for (int64_t i = n - kTextTail; i < n; ++i) parts.push_back(absl::StrCat(group.RankAt(i)));
  }
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

std::string NamesText(const std::vector<mesh::MeshAxisName>& names) {
  std::vector<std::string> parts;
  for (mesh::MeshAxisName name : names) parts.emplace_back(mesh::MeshAxisNameString(name));
  return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
}

std::string OptionalText(const std::optional<int64_t>& value) {
  return value.has_value() ? absl::StrCat(*value) : "none";
}

template <typename T>
std::string OptionalNameText(const std::optional<T>& value) {
  if (!value.has_value()) return "none";
  if constexpr (std::is_same_v<T, mesh::MeshAxisName>) {
    return std::string(mesh::MeshAxisNameString(*value));
  } else {
    return NamesText(*value);
  }
}

void WritePlanText(const MeshPlan& plan, const MeshSpec& spec, const PlanOptions& options,
                   const job::PlacedPlan* placed, std::ostream& out) {
  const mesh::Layout& layout = plan.device_mesh();
  out << absl::StrFormat("strategy     %s\n", config::StrategyName(plan.strategy()));
  out << absl::StrFormat("world_size   %d\n", plan.world_size());
  if (plan.has_explicit_ranks()) {
    std::vector<int64_t> ranks;
    for (int64_t i = 0; i < std::min<int64_t>(layout.size(), kTextHead); ++i) {
      ranks.push_back(layout.RankAtPosition(i));
    }
    out << absl::StrFormat("ranks        %d listed: [%s%s]\n", layout.size(),
                           absl::StrJoin(ranks, ", "), layout.size() > kTextHead ? ", ..." : "");
  } else {
    out << absl::StrFormat("ranks        0..%d\n", layout.size() - 1);
  }
  out << absl::StrFormat("device mesh  %s\n", layout.DebugString());
  if (plan.moe_mesh().has_value()) {
    out << absl::StrFormat("moe mesh     (ep_shard=%d, ep=%d) per stage, %d stage(s)\n",
                           plan.moe_mesh()->ep_shard, plan.moe_mesh()->ep, plan.moe_mesh()->stages);
  }

  // One row per group name; names that split the ranks alike share a communicator (unless the
  // spec asks for one per name, or their NCCL settings conflict).
  std::map<std::string, std::string> shared;
  std::vector<mesh::MeshCommunicatorPlan> comms;
  if (absl::StatusOr<std::vector<mesh::MeshCommunicatorPlan>> planned =
          mesh::PlanMeshCommunicators(plan, spec.nccl, spec.comm_sharing);
      planned.ok()) {
    comms = *std::move(planned);
  }
  int splits = 0;
  bool world_used = spec.comm_sharing != config::CommSharing::kPartition;
  for (const mesh::MeshCommunicatorPlan& comm : comms) {
    const mesh::GroupKind& kind = comm.kind;
    std::string what;
    if (kind.trivial) {
      what = "self";
    } else if (kind.whole_world && !world_used && comm.nccl.empty()) {
      what = "world";
      world_used = true;
    } else {
      what = absl::StrCat("split #", ++splits);
    }
    for (const std::string& name : kind.names) shared[name] = what;
  }
  out << absl::StrFormat("\n%-14s %-36s %10s %10s  %s\n", "group", "axes", "size", "groups",
                         "communicator");
  auto row = [&](const std::string& name, const std::string& axes, const mesh::Layout& on,
                 mesh::AxisSet set) {
    out << absl::StrFormat("%-14s %-36s %10d %10d  %s\n", name, axes, on.GroupSize(set),
                           on.GroupCount(set), shared[name]);
  };
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    row(layout.axis_names()[axis], layout.axis_names()[axis], layout, mesh::AxisSet::Of({axis}));
  }
  for (const mesh::FlattenedGroup& group : plan.flattened()) {
    row(group.name, absl::StrCat("(", absl::StrJoin(group.source_axes, ", "), ")"), layout,
        group.axes);
  }
  if (plan.moe_mesh().has_value()) {
    for (const char* name : {"ep_shard", "ep"}) {
      row(name, absl::StrCat("moe ", name), plan.moe_mesh()->layout, plan.ResolveGroup(name)->axes);
    }
  }

  if (placed != nullptr) {
    out << absl::StrFormat("\nplacement    %s on %d host(s) x %d ranks, launched by %s%s\n",
                           job::PlacementName(options.mesh.placement), *options.hosts,
                           *options.ranks_per_host, options.map_by,
                           options.ranks_per_domain.has_value()
                               ? absl::StrFormat(", %d ranks per domain", *options.ranks_per_domain)
                               : "");
    std::vector<std::string> inside;
    std::vector<std::string> across;
    for (size_t g = 0; g < placed->groups.size(); ++g) {
      const job::GroupPlacement& row = placed->groups[g];
      std::string where = row.intra_host ? "intra-host" : "cross-host";
      if (!placed->intra_domain.empty()) {
        where += placed->intra_domain[g] ? ", intra-domain" : ", cross-domain";
      }
      out << absl::StrFormat("  %-14s %10d %10d  %s\n", row.name, row.size, row.count, where);
      (row.intra_host ? inside : across).push_back(row.name);
    }
    out << absl::StrFormat("inside hosts %s\n",
                           inside.empty() ? "none" : absl::StrJoin(inside, ", "));
    out << absl::StrFormat("across hosts %s\n",
                           across.empty() ? "none" : absl::StrJoin(across, ", "));
  }

  const mesh::PlannedContext context = mesh::PlanContext(plan);
  const validate::ResolvedSizes& s = context.sizes;
  const mesh::ParallelizeAxisKwargs& kw = context.parallelize_axis_kwargs;
  out << absl::StrFormat(
      "\ncontext      pp_size=%d pp_enabled=%s tp_size=%d cp_size=%d ep_size=%d dp_size=%s "
      "dp_replicate_size=%s dp_shard_size=%d\n",
      s.pp_size(), s.pp_enabled() ? "true" : "false", s.tp_size(), s.cp_size(), s.ep_size(),
      OptionalText(s.dp_size()), OptionalText(s.dp_replicate_size()), s.dp_shard_size());
  out << absl::StrFormat(
      "axis kwargs  pp_axis_name=pp dp_axis_names=%s cp_axis_name=%s tp_axis_name=%s "
      "ep_axis_name=%s ep_shard_axis_names=%s\n",
      NamesText(kw.dp_axis_names), OptionalNameText(kw.cp_axis_name),
      OptionalNameText(kw.tp_axis_name), OptionalNameText(kw.ep_axis_name),
      OptionalNameText(kw.ep_shard_axis_names));

  absl::Status status = ForEachSelectedRank(plan, options, [&](const RankPlan& me) {
    std::vector<std::string> coordinate;
    for (int axis = 0; axis < layout.ndim(); ++axis) {
      coordinate.push_back(absl::StrCat(layout.axis_names()[axis], "=", me.coordinate[axis]));
    }
    out << absl::StrFormat("\nrank %d  (%s)\n", me.rank, absl::StrJoin(coordinate, ", "));
    auto group_row = [&](const mesh::NamedGroup& g) {
      out << absl::StrFormat("  %-14s local %d of %d  %s\n", g.name, g.group.local_rank(),
                             g.group.size(), RanksText(g.group));
    };
    for (const mesh::NamedGroup& g : me.groups) group_row(g);
    if (me.moe_groups.has_value()) {
      for (const mesh::NamedGroup& g : *me.moe_groups) group_row(g);
    }
  });
  NMESH_CHECK(status.ok()) << status;  // RunPlan validated --rank before writing
}

}  // namespace

std::string DumpJson(const ordered_json& value) {
  // Messages may quote user input that is not UTF-8; never throw on it.
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

CLI::App* AddPlanCommand(CLI::App& app, PlanOptions& options) {
  CLI::App* plan = app.add_subcommand(
      "plan", "Plan a mesh at any world size: sizes, axes, groups (no MPI, no GPU)");
  AddMeshOptions(*plan, options.mesh);
  CLI::Option* rank = AddInt64Option(*plan, "--rank", options.rank,
                                     "Also print this global rank's coordinate and groups")
                          ->type_name("R");
  CLI::Option* all = plan->add_flag("--all-ranks", options.all_ranks,
                                    "Also print every member rank's coordinate and groups");
  rank->excludes(all);
  plan->add_option("--format", options.format, "Output format: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  CLI::Option* hosts = AddInt64Option(*plan, "--hosts", options.hosts,
                                      "Place the mesh on H hosts: which groups stay inside one")
                           ->type_name("H");
  CLI::Option* per_host = AddInt64Option(*plan, "--ranks-per-host", options.ranks_per_host,
                                         "Ranks per host, with --hosts")
                              ->type_name("R");
  hosts->needs(per_host);
  per_host->needs(hosts);
  plan->add_option("--map-by", options.map_by,
                   "How the launcher deals ranks to hosts: slot (fill each host, the default) or "
                   "node (round-robin), as mpirun --map-by")
      ->check(CLI::IsMember(FlagValues<job::LaunchOrder>(job::kLaunchOrderNames)))
      ->needs(hosts);
  AddInt64Option(*plan, "--ranks-per-domain", options.ranks_per_domain,
                 "Ranks per NVLink domain (consecutive hosts), a multiple of --ranks-per-host")
      ->type_name("D")
      ->needs(hosts);
  return plan;
}

absl::Status RunPlan(const PlanOptions& options, std::ostream& out, std::ostream& err) {
  NMESH_ASSIGN_OR_RETURN(std::vector<MeshSpec> specs,
                         ResolveMeshSpecs(options.mesh, /*job_world=*/std::nullopt,
                                          /*all_sections=*/false));
  const MeshSpec& spec = specs.front();
  std::optional<job::HostLayout> host_layout;
  if (options.hosts.has_value()) {
    NMESH_ASSIGN_OR_RETURN(job::LaunchOrder order, job::ParseLaunchOrder(options.map_by));
    host_layout = job::HostLayout{.hosts = *options.hosts,
                                  .ranks_per_host = *options.ranks_per_host,
                                  .order = order,
                                  .ranks_per_domain = options.ranks_per_domain};
  }
  NMESH_ASSIGN_OR_RETURN(job::PlacedPlan planned,
                         job::PlanWithoutJob(spec, host_layout, options.mesh.placement));
  const MeshPlan& plan = planned.plan;
  // The placement, when the plan was placed on hosts.
  const job::PlacedPlan* placed = host_layout.has_value() ? &planned : nullptr;
  if (options.rank.has_value() && !plan.Contains(*options.rank)) {
    return plan.QueryRank(*options.rank).status();
  }
  if (options.all_ranks) NMESH_RETURN_IF_ERROR(CheckAllRanksOutput(plan, options));
  NMESH_RETURN_IF_ERROR(CheckOneRankOutput(plan, options));
  for (const std::string& warning : spec.warnings) {
    err << absl::StrFormat("nmesh: warning: %s\n", PrintableLines(warning));
  }
  if (options.format == "json") return WritePlanJson(plan, options, placed, out);
  WritePlanText(plan, spec, options, placed, out);
  return absl::OkStatus();
}

ordered_json ContextJson(const mesh::PlannedContext& context) {
  const validate::ResolvedSizes& s = context.sizes;
  return ordered_json{
      {"pp_size", s.pp_size()},
      {"pp_enabled", s.pp_enabled()},
      {"tp_size", s.tp_size()},
      {"cp_size", s.cp_size()},
      {"ep_size", s.ep_size()},
      {"dp_size", OptionalJson(s.dp_size())},
      {"dp_replicate_size", OptionalJson(s.dp_replicate_size())},
      {"dp_shard_size", s.dp_shard_size()},
      {"dp_axis_names", AxisNamesJson(context.parallelize_axis_kwargs.dp_axis_names)}};
}

ordered_json PlanSummaryJson(const MeshPlan& plan) {
  const mesh::Layout& layout = plan.device_mesh();
  ordered_json summary;
  summary["strategy"] = config::StrategyName(plan.strategy());
  summary["world_size"] = plan.world_size();
  if (plan.has_explicit_ranks()) {
    ordered_json ranks = ordered_json::array();
    for (int64_t i = 0; i < layout.size(); ++i) ranks.push_back(layout.RankAtPosition(i));
    summary["ranks"] = std::move(ranks);
  } else {
    summary["ranks"] = nullptr;
  }
  summary["sizes"] = SizesJson(plan.sizes());
  ordered_json flattened = ordered_json::object();
  for (const mesh::FlattenedGroup& group : plan.flattened()) {
    flattened[group.name] = group.source_axes;
  }
  summary["device_mesh"] = {
      {"axes", layout.axis_names()}, {"shape", layout.shape()}, {"flattened", flattened}};
  if (plan.moe_mesh().has_value()) {
    summary["moe_mesh"] = {{"axes", {"ep_shard", "ep"}},
                           {"shape", {plan.moe_mesh()->ep_shard, plan.moe_mesh()->ep}},
                           {"stages", plan.moe_mesh()->stages}};
  } else {
    summary["moe_mesh"] = nullptr;
  }
  summary["context"] = ContextJson(mesh::PlanContext(plan));
  return summary;
}

void WriteRankEntryJson(const RankPlan& rank, std::ostream& out) {
  out << "{\"rank\":" << rank.rank << ",\"coordinate\":{";
  for (size_t axis = 0; axis < rank.coordinate.size(); ++axis) {
    // Coordinates follow the groups' order: the native axes come first there.
    out << (axis == 0 ? "" : ",") << DumpJson(rank.groups[axis].name) << ':'
        << rank.coordinate[axis];
  }
  auto write_groups = [&out](const std::vector<mesh::NamedGroup>& groups) {
    out << '{';
    for (size_t g = 0; g < groups.size(); ++g) {
      out << (g == 0 ? "" : ",") << DumpJson(groups[g].name) << ':';
      WriteRanksJson(groups[g].group, out);
    }
    out << '}';
  };
  out << "},\"groups\":";
  write_groups(rank.groups);
  out << ",\"moe_groups\":";
  if (rank.moe_groups.has_value()) {
    write_groups(*rank.moe_groups);
  } else {
    out << "null";
  }
  out << '}';
}

}  // namespace nmesh::tools
