#include "nmesh/tools/cli.h"

#include <sstream>

#include "nmesh/base/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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

}  // namespace
}  // namespace nmesh::tools
