// The launch environment of a store launch (job/environment.h), read from scripted environments:
// torchrun/Kubernetes and srun variables, strict integers, bounds, and the store URL's sources.
#include "nmesh/job/environment.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"

namespace nmesh::job {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Optional;

// An environment that holds exactly `values`.
EnvironmentReader Env(std::map<std::string, std::string> values) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(values));
  return [held](const char* name) -> const char* {
    auto it = held->find(name);
    return it == held->end() ? nullptr : it->second.c_str();
  };
}

TEST(LaunchEnvironmentTest, TorchrunVariables) {
  absl::StatusOr<LaunchEnvironment> env = ReadLaunchEnvironment(
      Env({{"RANK", "5"},
           {"WORLD_SIZE", "8"},
           {"LOCAL_RANK", "1"},
           {"LOCAL_WORLD_SIZE", "4"},
           {"SLURM_PROCID", "0"}}));  // torchrun inside an allocation: RANK wins
  ASSERT_THAT(env.status(), IsOk());
  EXPECT_EQ(env->rank, 5);
  EXPECT_EQ(env->size, 8);
  EXPECT_THAT(env->local_rank, Optional(1));
  EXPECT_THAT(env->local_size, Optional(4));
  EXPECT_EQ(env->rank_variable, "RANK");
  EXPECT_EQ(env->size_variable, "WORLD_SIZE");
}

TEST(LaunchEnvironmentTest, KubernetesGivesNoLocalRank) {
  absl::StatusOr<LaunchEnvironment> env =
      ReadLaunchEnvironment(Env({{"RANK", "0"}, {"WORLD_SIZE", "1"}}));
  ASSERT_THAT(env.status(), IsOk());
  EXPECT_EQ(env->rank, 0);
  EXPECT_EQ(env->size, 1);
  EXPECT_EQ(env->local_rank, std::nullopt);
  EXPECT_EQ(env->local_size, std::nullopt);
}

TEST(LaunchEnvironmentTest, SrunVariables) {
  absl::StatusOr<LaunchEnvironment> env = ReadLaunchEnvironment(
      Env({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "1"}}));
  ASSERT_THAT(env.status(), IsOk());
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->size, 4);
  EXPECT_THAT(env->local_rank, Optional(1));
  EXPECT_EQ(env->rank_variable, "SLURM_PROCID");
  EXPECT_EQ(env->size_variable, "SLURM_NTASKS");
}

TEST(LaunchEnvironmentTest, NeitherLauncherNamesBoth) {
  EXPECT_THAT(ReadLaunchEnvironment(Env({})).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("RANK and WORLD_SIZE"),
                             HasSubstr("SLURM_PROCID and SLURM_NTASKS"))));
}

TEST(LaunchEnvironmentTest, MissingHalfNamesTheMissingVariable) {
  EXPECT_THAT(
      ReadLaunchEnvironment(Env({{"RANK", "1"}})).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("WORLD_SIZE is not set (RANK is)")));
  EXPECT_THAT(
      ReadLaunchEnvironment(Env({{"WORLD_SIZE", "4"}})).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RANK is not set (WORLD_SIZE is)")));
  EXPECT_THAT(ReadLaunchEnvironment(Env({{"SLURM_PROCID", "1"}})).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("SLURM_NTASKS is not set")));
}

TEST(LaunchEnvironmentTest, MalformedValuesAreNamedWithTheirValue) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string expected;
  };
  const Case cases[] = {
      {{{"RANK", "1"}, {"WORLD_SIZE", "four"}}, "WORLD_SIZE='four' is not an integer from 1 to"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "0"}}, "WORLD_SIZE='0'"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "-4"}}, "WORLD_SIZE='-4'"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "+4"}}, "WORLD_SIZE='+4'"},
      {{{"RANK", "1"}, {"WORLD_SIZE", " 4"}}, "WORLD_SIZE=' 4'"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "4 "}}, "WORLD_SIZE='4 '"},
      {{{"RANK", "1"}, {"WORLD_SIZE", ""}}, "WORLD_SIZE=''"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "99999999999999999999"}}, "WORLD_SIZE='9999"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "2000000"}},
       "WORLD_SIZE='2000000' is not an integer from "
       "1 to 1048576"},
      {{{"RANK", "4"}, {"WORLD_SIZE", "4"}},
       "RANK='4' is not an integer from 0 to 3 "
       "(WORLD_SIZE=4)"},
      {{{"RANK", "0x1"}, {"WORLD_SIZE", "4"}}, "RANK='0x1'"},
      {{{"RANK", "1\n"}, {"WORLD_SIZE", "4"}}, "RANK='1\\x0a'"},  // escaped, not a line break
      {{{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_WORLD_SIZE", "5"}},
       "LOCAL_WORLD_SIZE='5' is not an integer from 1 to 4"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_WORLD_SIZE", "2"}, {"LOCAL_RANK", "2"}},
       "LOCAL_RANK='2' is not an integer from 0 to 1 (LOCAL_WORLD_SIZE=2)"},
      {{{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "x"}}, "SLURM_LOCALID='x'"},
  };
  for (const Case& c : cases) {
    const absl::Status status = ReadLaunchEnvironment(Env(c.env)).status();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.expected)))
        << c.expected;
    // Each rank reports its own (the CLI asks IsEnvironmentError, not the message).
    EXPECT_TRUE(IsEnvironmentError(status)) << c.expected;
  }
  EXPECT_TRUE(IsEnvironmentError(ReadLaunchEnvironment(Env({})).status()));
  EXPECT_TRUE(IsEnvironmentError(ReadLaunchEnvironment(Env({{"RANK", "1"}})).status()));
}

TEST(LaunchEnvironmentTest, TheMarkIsAPayloadNotTheMessage) {
  EXPECT_FALSE(IsEnvironmentError(absl::InvalidArgumentError("environment variable X")));
  EXPECT_TRUE(IsEnvironmentError(MarkEnvironmentError(absl::InvalidArgumentError("bad"))));
  EXPECT_TRUE(MarkEnvironmentError(absl::OkStatus()).ok());
}

TEST(StoreUrlTest, FlagThenEnvironmentThenNone) {
  EXPECT_THAT(StoreUrlFrom(std::string("file:///a"), Env({{"NMESH_STORE", "redis://h:1"}})),
              Optional(std::string("file:///a")));
  EXPECT_THAT(StoreUrlFrom(std::nullopt, Env({{"NMESH_STORE", "redis://h:1"}})),
              Optional(std::string("redis://h:1")));
  EXPECT_EQ(StoreUrlFrom(std::nullopt, Env({{"NMESH_STORE", ""}})), std::nullopt);
  EXPECT_EQ(StoreUrlFrom(std::nullopt, Env({})), std::nullopt);
}

}  // namespace
}  // namespace nmesh::job
