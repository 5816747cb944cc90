#include "nmesh/tools/soak_command.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/file.h"
#include "nmesh/base/printable.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/config/strategy.h"
#include "nmesh/job/launch.h"
#include "nmesh/job/recovery.h"
#include "nmesh/job/soak.h"
#include "nmesh/perf/soak.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/mesh_job.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {
namespace {

using nlohmann::ordered_json;

// The longest --elements: 16 Mi floats (64 MiB) per operation and rank.
constexpr int64_t kMaxSoakElements = int64_t{1} << 24;

// What the flags of `nmesh soak` come to, checked before the job starts.
struct SoakFlags {
  std::optional<int64_t> steps;
  std::optional<absl::Duration> duration;
  job::FailurePolicy policy = job::FailurePolicy::kAbort;
  TimeoutFlag timeout;
  std::optional<absl::Duration> startup_timeout;
  job::BackendChoice backend = job::BackendChoice::kAuto;
  uint64_t elements = perf::SoakStepConfig{}.elements;
  absl::Duration recovery_quiet = job::JobOptions{}.recovery_quiet;
};

absl::Status CheckReportDir(const std::string& dir) {
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--report-dir '%s': %s", Abbreviate(dir, kMaxQuotedPathBytes), std::strerror(errno)));
  }
  if (!S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrFormat("--report-dir '%s' is not a directory",
                                                      Abbreviate(dir, kMaxQuotedPathBytes)));
  }
  return absl::OkStatus();
}

absl::StatusOr<SoakFlags> ParseSoakFlags(const SoakCommandOptions& options) {
  SoakFlags flags;
  if (!options.steps.has_value() && !options.seconds.has_value()) {
    return absl::InvalidArgumentError("nmesh soak needs --steps N, --seconds S or both");
  }
  if (options.steps.has_value()) {
    if (*options.steps < 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--steps must be at least 1, got %d", *options.steps));
    }
    flags.steps = options.steps;
  }
  if (options.seconds.has_value()) {
    NMESH_ASSIGN_OR_RETURN(flags.duration, TimeoutFromNumber(*options.seconds, absl::Seconds(1),
                                                             "seconds", "--seconds"));
  }
  absl::StatusOr<job::FailurePolicy> policy = job::ParseFailurePolicy(options.on_failure);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--on-failure: %s", policy.status().message()));
  }
  flags.policy = *policy;
  NMESH_ASSIGN_OR_RETURN(flags.timeout, TimeoutFromFlag(options.timeout_s));
  NMESH_ASSIGN_OR_RETURN(flags.startup_timeout, StartupTimeoutFromFlag(options.startup_timeout_s));
  NMESH_ASSIGN_OR_RETURN(flags.backend, job::ParseBackendChoice(options.backend));
  if (options.elements.has_value()) {
    if (*options.elements < 1 || *options.elements > kMaxSoakElements) {
      return absl::InvalidArgumentError(absl::StrFormat("--elements must be from 1 to %d, got %d",
                                                        kMaxSoakElements, *options.elements));
    }
    flags.elements = static_cast<uint64_t>(*options.elements);
  }
  if (options.recovery_quiet_s.has_value()) {
    NMESH_ASSIGN_OR_RETURN(flags.recovery_quiet,
                           TimeoutFromNumber(*options.recovery_quiet_s, absl::Seconds(1), "seconds",
                                             "--recovery-quiet-s"));
  }
  if (options.report_dir.has_value()) NMESH_RETURN_IF_ERROR(CheckReportDir(*options.report_dir));
  return flags;
}

// What every rank must agree on, beyond the mesh.
std::string SoakCommandWords(const SoakFlags& flags) {
  return absl::StrFormat("soak steps=%s seconds=%s on_failure=%s elements=%d recovery_quiet=%s",
                         flags.steps.has_value() ? absl::StrCat(*flags.steps) : "-",
                         flags.duration.has_value() ? absl::FormatDuration(*flags.duration) : "-",
                         job::FailurePolicyName(flags.policy), flags.elements,
                         absl::FormatDuration(flags.recovery_quiet));
}

double UnixSeconds(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return -1;
  return absl::ToDoubleSeconds(t - absl::UnixEpoch());
}

ordered_json ReportJson(int64_t launch_rank, const job::SoakReport& report) {
  ordered_json events = ordered_json::array();
  for (const job::SoakEvent& event : report.events) {
    const job::RecoveryEvent& r = event.recovery;
    events.push_back({{"step", event.step},
                      {"action", job::FailurePolicyName(r.action)},
                      {"dead", r.dead},
                      {"culprit", PrintableLines(r.culprit)},
                      {"world_before", r.world_before},
                      {"world_after", r.world_after},
                      {"resume_s", event.resume_seconds()},
                      {"agree_s", r.agree_seconds},
                      {"rebuild_s", r.rebuild_seconds},
                      {"epoch", r.epoch},
                      {"failed_unix_s", UnixSeconds(event.failed_at)},
                      {"resumed_unix_s", UnixSeconds(event.resumed_at)}});
  }
  ordered_json object = {{"rank", launch_rank},
                         {"status", job::SoakStatusName(report.status)},
                         {"steps", report.steps},
                         {"events", std::move(events)}};
  if (!report.error.ok()) object["error"] = PrintableLines(std::string(report.error.message()));
  return object;
}

std::string Ranks(const std::vector<int64_t>& ranks) {
  return ranks.empty() ? "none" : absl::StrJoin(ranks, ",");
}

// Whether this rank is the lowest rank of the job's first mesh (rank 0, or after a shrink that
// left rank 0 a spare, the lowest surviving member).
bool IsLowestMember(const job::Job& job) {
  const mesh::Layout& layout = job.model().plan->device_mesh();
  int64_t lowest = layout.RankAtPosition(0);
  for (int64_t p = 1; p < layout.size(); ++p) lowest = std::min(lowest, layout.RankAtPosition(p));
  return job.model().is_member() && job.rank() == lowest;
}

void WriteSummary(const job::Job& job, const job::SoakReport& report, const SoakFlags& flags,
                  std::ostream& out) {
  const mesh::MeshPlan& plan = *job.model().plan;
  std::string text = absl::StrFormat(
      "soak         %s: %d steps on %s %s, %d ranks (backend %s, on-failure %s)\n",
      job::SoakStatusName(report.status), report.steps, config::StrategyName(plan.strategy()),
      plan.device_mesh().DebugString(), plan.device_mesh().size(), job.backend().name,
      job::FailurePolicyName(flags.policy));
  text += absl::StrFormat("recoveries   %d\n", report.events.size());
  for (const job::SoakEvent& event : report.events) {
    const job::RecoveryEvent& r = event.recovery;
    const int64_t spares = r.world_before - r.world_after - static_cast<int64_t>(r.dead.size());
    text += absl::StrFormat(
        "  step %d: %s, dead [%s], world %d -> %d%s; resumed after %.3f s (agreement %.3f s, "
        "rebuild %.3f s)\n    cause: %s\n",
        event.step, job::FailurePolicyName(r.action), Ranks(r.dead), r.world_before, r.world_after,
        spares > 0 ? absl::StrFormat(" (%d spare)", spares) : "", event.resume_seconds(),
        r.agree_seconds, r.rebuild_seconds, PrintableLines(Abbreviate(r.culprit, 400)));
  }
  out << text;
  out.flush();
}

}  // namespace

CLI::App* AddSoakCommand(CLI::App& app, SoakCommandOptions& options) {
  CLI::App* soak = app.add_subcommand(
      "soak",
      "Burn the mesh in: one synthetic training step's communication per step, every result "
      "checked, recovering from failures by --on-failure (mpirun -np N, or --store)");
  AddMeshOptions(*soak, options.mesh);
  AddInt64Option(*soak, "--steps", options.steps,
                 "Run this many steps (with --seconds: whichever comes first)");
  soak->add_option("--seconds", options.seconds,
                   "Run for this many seconds (with --steps: whichever comes first)")
      ->type_name("S");
  soak->add_option("--on-failure", options.on_failure,
                   "What a failed step does: abort (end the job; default), rebuild (the same mesh "
                   "over the same ranks, for a late rank) or shrink (drop the data-parallel slices "
                   "of dead ranks; left-over ranks become spares)")
      ->type_name("abort|rebuild|shrink");
  soak->add_option(
          "--backend", options.backend,
          "auto (NCCL when every rank has a GPU, else MPI; gloo under --store), mpi, nccl or "
          "gloo (with --store)")
      ->check(CLI::IsMember(FlagValues<job::BackendChoice>(job::kBackendChoiceNames)));
  AddTimeoutFlag(*soak, options.timeout_s,
                 "the recipe's dist_env.timeout_minutes, else 600: 10 minutes; overrides the "
                 "recipe");
  AddStartupTimeoutFlag(*soak, options.startup_timeout_s);
  AddStoreFlag(*soak, options.store);
  soak->add_option("--report-dir", options.report_dir,
                   "Every rank writes DIR/rank<R>.json (R its rank as launched): status, steps "
                   "and recoveries")
      ->type_name("DIR");
  AddInt64Option(*soak, "--elements", options.elements,
                 "float32 elements per operation and rank (default 1024)");
  soak->add_option("--recovery-quiet-s", options.recovery_quiet_s,
                   "Shrink: how long the survivors' meeting waits after the last rank arrived "
                   "before it counts the ranks still missing as dead (default 1)")
      ->type_name("S");
  soak->add_flag("--progress", options.progress,
                 "The mesh's lowest rank prints each completed step on stderr");
  soak->add_option("--flight-recorder", options.flight_recorder,
                   "On a timeout, write each reporting rank's flight records as JSON into DIR")
      ->type_name("DIR");
  return soak;
}

int RunSoakCommand(const SoakCommandOptions& options, std::ostream& out, std::ostream& err) {
  const std::optional<std::string> store_url = job::StoreUrlFrom(options.store);
  // Flags first, before the job: every rank finds the same error, printed once.
  absl::StatusOr<SoakFlags> flags = ParseSoakFlags(options);
  if (!flags.ok()) return ReportFlagError(flags.status(), false, out, err, store_url);

  // A peer that dies leaves gloo writing to a closed socket, and SIGPIPE would end this survivor
  // too (Python, where gloo usually runs, ignores SIGPIPE): with a policy that recovers, the write
  // fails with EPIPE instead and the failure is recovered from.
  if (flags->policy != job::FailurePolicy::kAbort) std::signal(SIGPIPE, SIG_IGN);

  JobReporter reporter(job::LauncherRank(), false, out, err);
  ApplyFlightRecorderFlag(options.flight_recorder, reporter);
  std::variant<CliJob, int> started = StartJob({.mesh = options.mesh,
                                                .command = SoakCommandWords(*flags),
                                                .startup_timeout = flags->startup_timeout,
                                                .backend = flags->backend,
                                                .timeout = flags->timeout.timeout,
                                                .no_timeout = flags->timeout.none,
                                                .all_sections = false,
                                                .build_contexts = false,
                                                .on_failure = flags->policy,
                                                .recovery_quiet = flags->recovery_quiet},
                                               reporter, store_url);
  if (const int* code = std::get_if<int>(&started)) return *code;
  job::Job& job = *std::get<CliJob>(started).job;
  const int64_t launch_rank = job.launch_rank();
  reporter.Note(absl::StrFormat("soak: backend %s (%s), groups %s", job.backend().name,
                                job.backend().reason,
                                absl::StrJoin(perf::SoakGroups(*job.model().mesh), ",")));

  const perf::SoakStepConfig step_config{.elements = flags->elements};
  job::SoakOptions soak{.steps = flags->steps,
                        .duration = flags->duration,
                        .step = [&step_config](job::Job& job, int64_t step) {
                          return perf::RunSoakStep(*job.model().plan, *job.model().mesh, step,
                                                   step_config);
                        }};
  if (options.progress) {
    soak.on_step = [&job, &err](int64_t completed) {
      if (IsLowestMember(job)) {
        err << absl::StrFormat("nmesh: soak: step %d\n", completed) << std::flush;
      }
    };
  }
  const job::SoakReport report = job::RunSoak(job, soak);

  absl::Status written;
  if (options.report_dir.has_value()) {
    const std::string path = absl::StrFormat("%s/rank%d.json", *options.report_dir, launch_rank);
    written = WriteNewFile(path, DumpJson(ReportJson(launch_rank, report)) + "\n");
  }
  reporter.set_rank(static_cast<int>(launch_rank));
  if (report.status == job::SoakStatus::kFailed) {
    // A step failed with no way on: say why here (every failing rank, naming itself), then end
    // the job (under mpirun MPI_Abort, which takes the others with it).
    if (!written.ok()) {
      err << absl::StrFormat("nmesh: error: rank %d: %s\n", launch_rank,
                             PrintableLines(std::string(written.message())));
    }
    err << absl::StrFormat("nmesh: error: rank %d: soak failed at step %d: %s\n", launch_rank,
                           report.steps, PrintableLines(std::string(report.error.message())));
    out.flush();
    err.flush();
    job::EndJob(report.error, kExitRuntimeFailure);
  }
  if (report.status == job::SoakStatus::kCompleted && IsLowestMember(job)) {
    WriteSummary(job, report, *flags, out);
  }
  if (!written.ok()) {
    err << absl::StrFormat("nmesh: error: rank %d: %s\n", launch_rank,
                           PrintableLines(std::string(written.message())));
    return kExitRuntimeFailure;
  }
  return kExitOk;
}

}  // namespace nmesh::tools
