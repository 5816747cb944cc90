#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nmesh/base/build_config.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/base/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nmesh {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  NMESH_ASSIGN_OR_RETURN(int half, Half(x));
  NMESH_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int x) {
  NMESH_RETURN_IF_ERROR(Half(x));
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesTheFirstError) {
  EXPECT_THAT(Quarter(8), IsOk());
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd: 3")));
  EXPECT_THAT(Quarter(5), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd: 5")));
}

TEST(StatusMacrosTest, ReturnIfErrorAcceptsStatusOr) {
  EXPECT_THAT(CheckEven(4), IsOk());
  EXPECT_THAT(CheckEven(3), Not(IsOk()));
}

TEST(StatusMacrosDeathTest, CheckAbortsWithTheCondition) {
  EXPECT_DEATH({ NMESH_CHECK(1 + 1 == 3) << "arithmetic"; }, "1 \\+ 1 == 3 arithmetic");
}

TEST(VersionTest, MatchesTheBuildConfig) {
  EXPECT_EQ(VersionString(), NMESH_VERSION_STRING);
  EXPECT_EQ(VersionString(), std::to_string(NMESH_VERSION_MAJOR) + "." +
                                 std::to_string(NMESH_VERSION_MINOR) + "." +
                                 std::to_string(NMESH_VERSION_PATCH));
  EXPECT_EQ(HaveNccl(), NMESH_HAVE_NCCL != 0);
}

}  // namespace
}  // namespace nmesh
