// Runs the nmesh CLI in-process for tests.
#ifndef NMESH_TESTS_CLI_RUN_CLI_H_
#define NMESH_TESTS_CLI_RUN_CLI_H_

#include <sstream>
#include <string>
#include <vector>

#include "nmesh/tools/cli.h"

namespace nmesh::tools::testing {

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

// RunCli with "nmesh" prepended to `args`, capturing both streams.
inline CliResult RunNmesh(std::vector<std::string> args) {
  args.insert(args.begin(), "nmesh");
  std::ostringstream out, err;
  const int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace nmesh::tools::testing

#endif  // NMESH_TESTS_CLI_RUN_CLI_H_
