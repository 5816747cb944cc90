#include "nmesh/tools/cli.h"

#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/version.h"
#include "nmesh/job/launch.h"
#include "nmesh/tests/cli/run_cli.h"

namespace nmesh::tools {
namespace {

using ::testing::HasSubstr;

using Result = testing::CliResult;
using testing::RunNmesh;

TEST(CliTest, VersionPrintsTheLibraryVersion) {
  Result r = RunNmesh({"--version"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("nmesh " + VersionString()));
}

TEST(CliTest, HelpExitsZero) {
  Result r = RunNmesh({"--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("Usage"));
}

TEST(CliTest, UnknownFlagIsAUsageError) {
  Result r = RunNmesh({"--no-such-flag"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("nmesh: error:"));
  EXPECT_THAT(r.err, HasSubstr("--no-such-flag"));
}

// Issue 14: bare `nmesh` printed only the usage, with no line saying what was wrong.
TEST(CliTest, NoVerbIsAUsageErrorWithAnErrorLine) {
  Result r = RunNmesh({});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("nmesh: error: no verb given: use nmesh plan, run, bench or soak"));
  EXPECT_THAT(r.err, HasSubstr("Usage"));
}

// Issue 14: `nmesh plann` listed the remaining words in reverse instead of naming the verb.
TEST(CliTest, UnknownVerbIsNamed) {
  Result r = RunNmesh({"plann", "--world", "8"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err,
              HasSubstr("nmesh: error: unknown verb 'plann': expected plan, run, bench or soak"));
  Result json = RunNmesh({"plann", "--format", "json"});
  EXPECT_THAT(json.out, HasSubstr("{\"error\":\"unknown verb 'plann'"));
}

// Issue 14: an empty value was taken silently, or (`--tp=`) the next word became the value and the
// error blamed that option ("'--world' is not an integer").
TEST(CliTest, EmptyValuesNameTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"plan", "--tp=", "--world", "8"}, "--tp needs a value, got an empty string"},
      {{"plan", "--world", "8", "--tp", ""}, "--tp needs a value, got an empty string"},
      {{"run", "--timeout-s", ""}, "--timeout-s needs a value, got an empty string"},
      {{"run", "--timeout-s="}, "--timeout-s needs a value, got an empty string"},
      {{"bench", "--axes", ""}, "--axes needs a value, got an empty string"},
      {{"plan", "--world", "8", "--ranks", ""}, "--ranks needs a value, got an empty string"},
      {{"plan", "--ranks", "0,,1"}, "empty rank at position 2 in '0,,1'"},
      {{"plan", "--ranks", "0,1,"}, "empty rank at position 3 in '0,1,'"},
      {{"plan", "--ranks", ",0"}, "empty rank at position 1 in ',0'"},
      {{"plan", "--ranks", "0,1", "--ranks", "2,3"}, "--ranks"},
  };
  for (const auto& [args, message] : cases) {
    Result r = RunNmesh(args);
    EXPECT_EQ(r.code, kExitUsage) << args[1];
    EXPECT_THAT(r.err, HasSubstr("nmesh: error:")) << args[1];
    EXPECT_THAT(r.err, HasSubstr(message)) << args[1];
  }
  // Repeated --ranks used to concatenate into one list (0,1,2,3).
  Result twice = RunNmesh({"plan", "--ranks", "0,1", "--ranks", "2,3", "--format", "json"});
  EXPECT_THAT(twice.err, HasSubstr("given 2 times"));
  EXPECT_EQ(twice.out.find("\"ranks\":[0,1,2,3]"), std::string::npos);
}

// Issue 14: under mpirun every rank parses the same flags; each printed the error (four
// {"error": ...} objects at np 4). Only the launcher's rank 0 prints; the others exit 2 quietly.
TEST(CliTest, FlagErrorsPrintOnlyOnLauncherRankZero) {
  ASSERT_EQ(setenv("OMPI_COMM_WORLD_RANK", "3", 1), 0);
  EXPECT_EQ(job::LauncherRank(), 3);
  Result other = RunNmesh({"plan", "--tp", "x", "--format", "json"});
  Result run = RunNmesh({"run", "--timeout-s", "-1", "--format", "json"});
  ASSERT_EQ(setenv("OMPI_COMM_WORLD_RANK", "0", 1), 0);
  Result first = RunNmesh({"plan", "--tp", "x", "--format", "json"});
  ASSERT_EQ(unsetenv("OMPI_COMM_WORLD_RANK"), 0);
  EXPECT_EQ(other.code, kExitUsage);
  EXPECT_EQ(other.out, "");
  EXPECT_EQ(other.err, "");
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "");
  EXPECT_EQ(first.code, kExitUsage);
  EXPECT_THAT(first.err, HasSubstr("nmesh: error:"));
  EXPECT_THAT(first.out, HasSubstr("{\"error\":"));
  ASSERT_EQ(setenv("PMI_RANK", "1", 1), 0);
  EXPECT_EQ(job::LauncherRank(), 1);
  ASSERT_EQ(unsetenv("PMI_RANK"), 0);
  EXPECT_EQ(job::LauncherRank(), 0);
}

// Issue 14: `plan --world 2147483647 --all-ranks` streamed entries for hours.
TEST(CliTest, AllRanksOutputIsBounded) {
  Result huge = RunNmesh({"plan", "--world", "2147483647", "--all-ranks"});
  EXPECT_EQ(huge.code, kExitUsage);
  EXPECT_THAT(huge.err, HasSubstr("--all-ranks prints at most 65536 ranks, and this mesh has "
                                  "2147483647; ask for one with --rank R"));
  EXPECT_EQ(huge.out, "");
  // JSON lists every group whole: 65536 ranks each in a dp group of 65536 is too much.
  Result wide = RunNmesh({"plan", "--world", "65536", "--all-ranks", "--format", "json"});
  EXPECT_EQ(wide.code, kExitUsage);
  EXPECT_THAT(wide.err, HasSubstr("--all-ranks --format json would list"));
  Result fine = RunNmesh({"plan", "--world", "16", "--tp", "2", "--all-ranks"});
  EXPECT_EQ(fine.code, kExitOk) << fine.err;
}

}  // namespace
}  // namespace nmesh::tools
