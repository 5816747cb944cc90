#include "nmesh/tools/cli.h"

#include <exception>
#include <sstream>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "nmesh/base/build_config.h"
#include "nmesh/base/version.h"
#include "nlohmann/json.hpp"
#include "nmesh/tools/bench_command.h"
#include "nmesh/tools/plan_command.h"
#include "nmesh/tools/run_command.h"
#if NMESH_HAVE_NCCL
#include "nmesh/comm/nccl/runtime.h"
#endif

namespace nmesh::tools {
namespace {

std::string VersionText() {
  std::ostringstream text;
  text << "nmesh " << VersionString() << "\n";
#if NMESH_HAVE_NCCL
  text << "backends: mpi, nccl (NCCL " << comm::nccl::LinkedNcclVersion() << ")\n";
#else
  text << "backends: mpi\n";
#endif
  return text.str();
}

// Whether the command line asks for --format json. Read from the raw arguments, so that errors
// CLI11 raises before it has parsed --format are reported as JSON too.
bool WantsJson(const std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--format=json") return true;
    if (args[i] == "--format" && i + 1 < args.size() && args[i + 1] == "json") return true;
  }
  return false;
}

int UsageError(std::string_view message, bool json, std::ostream& out, std::ostream& err) {
  // One write, so that the launcher cannot interleave it with other output.
  err << absl::StrFormat("nmesh: error: %s\n", message);
  if (json) {
    nlohmann::ordered_json error{{"error", std::string(message)}};
    out << error.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  }
  return kExitUsage;
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"nmesh: n-dimensional device meshes over NCCL and MPI communicators", "nmesh"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and the backends built, then exit");
  PlanOptions plan_options;
  CLI::App* plan = AddPlanCommand(app, plan_options);
  RunOptions run_options;
  CLI::App* run = AddRunCommand(app, run_options);
  BenchOptions bench_options;
  CLI::App* bench = AddBenchCommand(app, bench_options);

  std::vector<std::string> rest(args.rbegin(), args.rend() - (args.empty() ? 0 : 1));
  try {
    app.parse(rest);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    return UsageError(e.what(), WantsJson(args), out, err);
  }
  if (show_version) {
    out << VersionText();
    return kExitOk;
  }
  if (plan->parsed()) {
    absl::Status status = RunPlan(plan_options, out, err);
    if (!status.ok())
      return UsageError(std::string(status.message()), plan_options.format == "json", out, err);
    return kExitOk;
  }
  if (run->parsed()) return RunMeshes(run_options, out, err);
  if (bench->parsed()) return RunBenchCommand(bench_options, out, err);
  out << app.help();
  return kExitUsage;
}

}  // namespace nmesh::tools
