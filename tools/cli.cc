#include "nmesh/tools/cli.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/build_config.h"
#include "nmesh/base/printable.h"
#include "nmesh/base/version.h"
#include "nmesh/job/launch.h"
#include "nmesh/tools/bench_command.h"
#include "nmesh/tools/mesh_job.h"
#include "nmesh/tools/plan_command.h"
#include "nmesh/tools/run_command.h"
#include "nmesh/tools/soak_command.h"
#if NMESH_HAVE_NCCL
#include "nmesh/comm/nccl/runtime.h"
#endif

namespace nmesh::tools {
namespace {

std::string VersionText() {
  std::ostringstream text;
  text << "nmesh " << VersionString() << "\n";
#if NMESH_HAVE_NCCL
  // NCCL is loaded at run time: say which one this process finds, or why it finds none.
  if (absl::Status loaded = comm::nccl::LoadRuntime(); loaded.ok()) {
    text << "backends: mpi, nccl (NCCL " << comm::nccl::LinkedNcclVersion() << ")\n";
  } else {
    text << "backends: mpi, nccl (not usable here: " << loaded.message() << ")\n";
  }
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
  // A flag error is the same on every rank of an mpirun job: only the first rank prints it.
  if (job::LauncherRank() != 0) return kExitUsage;
  // One write, so that the launcher cannot interleave it with other output. Flag values and
  // recipe text reach the message: what a terminal would act on is escaped.
  const std::string printable = PrintableLines(message);
  err << absl::StrFormat("nmesh: error: %s\n", printable);
  if (json) {
    nlohmann::ordered_json error{{"error", printable}};
    out << error.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  }
  return kExitUsage;
}

constexpr std::string_view kVerbs[] = {"plan", "run", "bench", "soak"};

bool IsOptionName(std::string_view word) {
  const size_t dashes = word.rfind("--", 0) == 0 ? 2 : word.rfind('-', 0) == 0 ? 1 : 0;
  return dashes > 0 && word.size() > dashes && absl::ascii_isalpha(word[dashes]);
}

// An option given an empty value ("--tp=", "--timeout-s ''"): CLI11 would read the next word as
// the value (and blame that option) or take the empty string as absent. Names the option.
std::optional<std::string> EmptyValueError(const std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (IsOptionName(word) && word.back() == '=' && word.find('=') == word.size() - 1) {
      return absl::StrFormat("%s needs a value, got an empty string",
                             Abbreviate(word.substr(0, word.size() - 1)));
    }
    if (word.empty() && IsOptionName(args[i - 1]) && args[i - 1].find('=') == std::string::npos) {
      return absl::StrFormat("%s needs a value, got an empty string", Abbreviate(args[i - 1]));
    }
  }
  return std::nullopt;
}

// The store a `run` or `bench` command line launches over (--store URL, --store=URL, else
// NMESH_STORE), read from the raw arguments: a flag error found before parsing is agreed on at
// that store rather than over MPI.
std::optional<std::string> StoreInArgs(const std::vector<std::string>& args) {
  std::optional<std::string> flag;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--store" && i + 1 < args.size()) flag = args[i + 1];
    if (args[i].rfind("--store=", 0) == 0) flag = args[i].substr(8);
  }
  return job::StoreUrlFrom(flag);
}

// Under a launcher, a rank that leaves without starting a job (--help, --version) tells the
// others first (job::AgreeOnLeaving), so that ranks of a multi-program launch that start a job do
// not wait for it in MPI's start. nullopt: go on and do what was asked; else the exit code.
std::optional<int> LeaveTogether(std::string_view command, std::ostream& out, std::ostream& err) {
  if (job::LauncherSize() <= 1) return std::nullopt;
  job::FlagErrorOutcome left = job::AgreeOnLeaving(command);
  if (left.status.ok()) return std::nullopt;
  JobReporter reporter(left.rank, false, out, err);
  if (left.end_job) reporter.Abort(left.status);
  return reporter.Fail(left.status);
}

// A CLI11 error message, with every word of the command line that is longer than
// kMaxQuotedBytes (or the value of a long "--name=value") cut as Abbreviate cuts it, so that a
// 100 KB flag value gives a short error line.
std::string CutLongWords(std::string message, const std::vector<std::string>& args) {
  std::vector<std::string_view> long_words;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view word = args[i];
    if (word.size() <= kMaxQuotedBytes) continue;
    long_words.push_back(word);
    if (const size_t equals = word.find('='); IsOptionName(word) && equals != word.npos) {
      long_words.push_back(word.substr(equals + 1));
    }
  }
  // Longest first, so that a value is not cut inside the "--name=value" word holding it.
  std::sort(long_words.begin(), long_words.end(),
            [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
  for (std::string_view word : long_words) {
    if (word.size() <= kMaxQuotedBytes) continue;
    const std::string cut = Abbreviate(word);
    for (size_t at = message.find(word); at != std::string::npos;
         at = message.find(word, at + cut.size())) {
      message.replace(at, word.size(), cut);
    }
  }
  return message;
}

// What CLI11 says about a command line it rejects. Its list of unexpected words comes out in
// reverse order (it parses a reversed copy): they are listed as given.
std::string ParseErrorMessage(const CLI::ParseError& error, const CLI::App& app,
                              const std::vector<std::string>& args) {
  std::string message = error.what();
  if (dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr) {
    const std::vector<std::string> extras = app.remaining(/*recurse=*/true);
    if (!extras.empty()) {
      message = absl::StrFormat("The following argument%s not expected: %s",
                                extras.size() > 1 ? "s were" : " was", absl::StrJoin(extras, " "));
    }
  }
  return CutLongWords(std::move(message), args);
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
  SoakCommandOptions soak_options;
  CLI::App* soak = AddSoakCommand(app, soak_options);

  // Without a verb CLI11 would print the usage and nothing about what is wrong; with an unknown
  // one it would list the remaining words (in reverse) instead of naming the verb.
  // Under a launcher these are agreed on like a flag error of `run` (ReportFlagError): printed
  // once, by rank 0, whichever ranks have them, and the ranks that start a job do not wait.
  const bool launched = job::LauncherSize() > 1;
  if (args.size() <= 1) {
    constexpr char kNoVerb[] =
        "no verb given: use nmesh plan, run, bench or soak (see nmesh --help)";
    if (launched) return ReportFlagError(absl::InvalidArgumentError(kNoVerb), false, out, err);
    const int code = UsageError(kNoVerb, false, out, err);
    if (job::LauncherRank() == 0) err << app.help();
    return code;
  }
  if (!args[1].empty() && args[1][0] != '-' &&
      std::find(std::begin(kVerbs), std::end(kVerbs), args[1]) == std::end(kVerbs)) {
    const std::string message = absl::StrFormat(
        "unknown verb '%s': expected plan, run, bench or soak", Abbreviate(args[1]));
    if (launched) {
      return ReportFlagError(absl::InvalidArgumentError(message), WantsJson(args), out, err);
    }
    return UsageError(message, WantsJson(args), out, err);
  }
  // A flag error of `run`, `bench` or `soak` under a launcher is agreed on by the ranks of the job,
  // so that one rank with a bad flag in a multi-program launch is reported too (ReportFlagError).
  const bool job_verb = args[1] == "run" || args[1] == "bench" || args[1] == "soak";
  auto usage = [&](const std::string& message) {
    return job_verb ? ReportFlagError(absl::InvalidArgumentError(message), WantsJson(args), out,
                                      err, StoreInArgs(args))
                    : UsageError(message, WantsJson(args), out, err);
  };
  if (std::optional<std::string> empty = EmptyValueError(args); empty.has_value()) {
    return usage(*empty);
  }
  std::vector<std::string> rest(args.rbegin(), args.rend() - (args.empty() ? 0 : 1));
  try {
    app.parse(rest);
  } catch (const CLI::CallForHelp&) {
    if (std::optional<int> code = LeaveTogether("--help", out, err)) return *code;
    out << app.help();
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    return usage(ParseErrorMessage(e, app, args));
  }
  if (show_version) {
    if (std::optional<int> code = LeaveTogether("--version", out, err)) return *code;
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
  if (soak->parsed()) return RunSoakCommand(soak_options, out, err);
  out << app.help();
  return kExitUsage;
}

}  // namespace nmesh::tools
