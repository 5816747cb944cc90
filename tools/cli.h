// The `nmesh` command line: verbs plan, run and bench (contract §9).
//
// RunCli is the whole program behind main(), taking its streams as arguments so that tests and
// fuzzers can drive it in-process.
#ifndef NMESH_TOOLS_CLI_H_
#define NMESH_TOOLS_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace nmesh::tools {

// Exit codes of contract §9.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntimeFailure = 1;
inline constexpr int kExitUsage = 2;

// Parses `args` (args[0] is the program name) and runs the chosen verb, writing results to `out`
// and diagnostics to `err`. Returns the process exit code. Usage and config errors return
// kExitUsage after writing "nmesh: error: <message>" to `err` (and {"error": ...} to `out` under
// --format json), from the launcher's rank 0 only (job::LauncherRank). Never throws.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_CLI_H_
