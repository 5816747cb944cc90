// `nmesh run` flag errors, in-process: they are reported before MPI starts, so no launcher is
// needed. (The verb itself runs under mpirun: see run_json_check and tests/cli/CMakeLists.txt.)
#include "nmesh/tests/cli/run_cli.h"

#include <string>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/run_command.h"

namespace nmesh::tools {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
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
  // 1e-300 s rounds to a zero duration: every run then timed out at "0 s" (issue 14).
  for (const char* bad : {"0", "-3", "nan", "inf", "1e-300", "-0"}) {
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

TEST(RunCliTest, FaultSkipIsHiddenFromHelp) {
  testing::CliResult r = RunNmesh({"run", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, Not(HasSubstr("--fault-skip")));
}

TEST(RunCliTest, ParseFaultSkipTakesRankColonGroup) {
  absl::StatusOr<FaultSkip> skip = ParseFaultSkip("7:dp_shard_cp");
  ASSERT_TRUE(skip.ok()) << skip.status();
  EXPECT_EQ(skip->rank, 7);
  EXPECT_EQ(skip->group, "dp_shard_cp");
  skip = ParseFaultSkip("0:tp:x");  // the group is everything after the first colon
  ASSERT_TRUE(skip.ok()) << skip.status();
  EXPECT_EQ(skip->group, "tp:x");
  for (const char* bad :
       {"", "tp", "3", "3:", ":tp", "-1:tp", "x:tp", "1.5:tp", "99999999999999999999:tp"}) {
    skip = ParseFaultSkip(bad);
    EXPECT_EQ(skip.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(skip.status().message(), HasSubstr(std::string("got '") + bad + "'"));
  }
}

TEST(RunCliTest, BadFaultSkipIsAUsageErrorBeforeMpi) {
  testing::CliResult r = RunNmesh({"run", "--fault-skip", "tp", "--format", "json"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--fault-skip must be RANK:GROUP"));
  EXPECT_THAT(r.err, HasSubstr("'tp'"));
  EXPECT_THAT(r.out, HasSubstr("{\"error\":"));
}

}  // namespace
}  // namespace nmesh::tools
