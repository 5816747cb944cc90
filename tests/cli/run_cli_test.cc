// `nmesh run` flag errors, in-process: they are reported before MPI starts, so no launcher is
// needed. (The verb itself runs under mpirun: see run_json_check and tests/cli/CMakeLists.txt.)
#include "tests/cli/run_cli.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/cli.h"

namespace nmesh::tools {
namespace {

using ::testing::HasSubstr;
using testing::RunNmesh;

TEST(RunCliTest, HelpListsTheRunFlags) {
  testing::CliResult r = RunNmesh({"run", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  for (const char* flag : {"--backend", "--timeout-s", "--format", "--tp", "--config"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
}

TEST(RunCliTest, BadBackendIsAUsageError) {
  testing::CliResult r = RunNmesh({"run", "--backend", "gloo", "--format", "json"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("nmesh: error:"));
  EXPECT_THAT(r.err, HasSubstr("gloo"));
  EXPECT_THAT(r.out, HasSubstr("{\"error\":"));
}

TEST(RunCliTest, TimeoutMustBeAPositiveNumber) {
  for (const char* bad : {"0", "-3", "nan", "inf"}) {
    testing::CliResult r = RunNmesh({"run", "--timeout-s", bad, "--format", "json"});
    EXPECT_EQ(r.code, kExitUsage) << bad;
    EXPECT_THAT(r.err, HasSubstr("--timeout-s must be a positive number of seconds")) << bad;
    EXPECT_THAT(r.out, HasSubstr("{\"error\":")) << bad;
  }
  testing::CliResult r = RunNmesh({"run", "--timeout-s", "soon"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--timeout-s"));
}

TEST(RunCliTest, BadMeshFlagIsAUsageError) {
  testing::CliResult r = RunNmesh({"run", "--tp", "two"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--tp"));
}

}  // namespace
}  // namespace nmesh::tools
