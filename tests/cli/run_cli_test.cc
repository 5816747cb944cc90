// `nmesh run` flag errors, in-process: they are reported before MPI starts, so no launcher is
// needed. (The verb itself runs under mpirun: see run_json_check and tests/cli/CMakeLists.txt.)
#include "nmesh/tests/cli/run_cli.h"

#include <string>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/mesh_job.h"
#include "nmesh/tools/run_command.h"

namespace nmesh::tools {
namespace {

using ::nmesh::testing::StatusIs;
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
  // 1e-300 s rounds to a zero duration: every run then timed out at "0 s" (issue 14). 0 is the
  // opt-out (TimeoutFlagTest).
  for (const char* bad : {"-3", "nan", "inf", "1e-300", "-1e-300"}) {
    testing::CliResult r = RunNmesh({"run", "--timeout-s", bad, "--format", "json"});
    EXPECT_EQ(r.code, kExitUsage) << bad;
    EXPECT_THAT(r.err, HasSubstr("--timeout-s must be a positive number of seconds")) << bad;
    EXPECT_THAT(r.out, HasSubstr("{\"error\":")) << bad;
  }
  testing::CliResult r = RunNmesh({"run", "--timeout-s", "soon"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--timeout-s"));
}

TEST(RunCliTest, TimeoutFlagDefaultsAndTheOptOut) {
  ASSERT_OK_AND_ASSIGN(TimeoutFlag unset, TimeoutFromFlag(std::nullopt));
  EXPECT_EQ(unset.timeout, std::nullopt);
  EXPECT_FALSE(unset.none);
  for (const char* none : {"0", "none", "0.0", "-0"}) {
    ASSERT_OK_AND_ASSIGN(TimeoutFlag flag, TimeoutFromFlag(std::string(none)));
    EXPECT_TRUE(flag.none) << none;
    EXPECT_EQ(flag.timeout, std::nullopt) << none;
  }
  ASSERT_OK_AND_ASSIGN(TimeoutFlag five, TimeoutFromFlag(std::string("5")));
  EXPECT_EQ(five.timeout, absl::Seconds(5));
  EXPECT_FALSE(five.none);
  EXPECT_THAT(TimeoutFromFlag(std::string("soon")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--timeout-s must be a number of seconds or none, got 'soon'")));
  // The help says the default and what opting out costs, for both verbs.
  for (const char* verb : {"run", "bench"}) {
    testing::CliResult r = RunNmesh({verb, "--help"});
    EXPECT_THAT(r.out, HasSubstr("10 minutes")) << verb;
    EXPECT_THAT(r.out, HasSubstr("0 or none: no timeout, at a cost")) << verb;
  }
}

// A delay the start-up deadline cannot bound: NaN and 1e300 slept forever.
TEST(RunCliTest, FaultLateMustBeFiniteAndBounded) {
  for (const char* bad : {"nan", "1e300", "inf", "-1", "86401"}) {
    testing::CliResult r = RunNmesh({"run", "--fault-late-s", bad});
    EXPECT_EQ(r.code, kExitUsage) << bad;
    EXPECT_THAT(r.err, HasSubstr("--fault-late-s must be a number of seconds from 0 to 86400"))
        << bad;
  }
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
