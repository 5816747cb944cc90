// The §7 checks on plain data: every message, and the order in which they fire.
#include "nmesh/validate/validate.h"

#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/config/strategy_config.h"

namespace nmesh::validate {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

using config::StrategyKind;

const std::vector<std::string_view> kAllowed = {
    "pp", "dp", "dp_replicate", "dp_shard", "dp_shard_cp", "dp_cp", "cp", "tp", "ep", "ep_shard"};
constexpr std::string_view kAllowedText =
    "allowed names are ['cp', 'dp', 'dp_cp', 'dp_replicate', 'dp_shard', 'dp_shard_cp', 'ep', "
    "'ep_shard', 'pp', 'tp']";

TEST(ValidateAxisNamesTest, KnownNamesPass) {
  EXPECT_OK(
      ValidateAxisNames("device_mesh", {"pp", "dp_replicate", "dp_shard", "cp", "tp"}, kAllowed));
  EXPECT_OK(ValidateAxisNames("moe_mesh", {"ep_shard", "ep"}, kAllowed));
  EXPECT_OK(ValidateAxisNames("device_mesh", {}, kAllowed));
}

TEST(ValidateAxisNamesTest, UnknownNamesAreListedOnceAndSorted) {
  EXPECT_THAT(ValidateAxisNames("device_mesh", {"tp", "ulysses", "ring", "ring"}, kAllowed),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       std::string("device_mesh contains unknown axis names {'ring', "
                                   "'ulysses'}; ") +
                           std::string(kAllowedText)));
  EXPECT_THAT(ValidateAxisNames("moe_mesh", {"experts"}, kAllowed),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("moe_mesh contains unknown axis names {'experts'}")));
  // Names are exact: case matters.
  EXPECT_THAT(ValidateAxisNames("device_mesh", {"TP"}, kAllowed),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("{'TP'}")));
}

absl::Status Check(const config::StrategyConfig* strategy, SetupSizes sizes, bool pipeline = false,
                   bool moe = false) {
  return ValidateDistributedSetup(
      {.strategy = strategy, .sizes = sizes, .has_pipeline = pipeline, .has_moe = moe});
}

// Contract §7, distributed-setup checks (changed in 0.7.0): pipeline, moe, then the three checks
// of §4; megatron_fsdp's sequence_parallel check and ddp's HSDP check are gone.
TEST(ValidateDistributedSetupTest, MegatronFsdpChecksInOrder) {
  const config::StrategyConfig megatron =
      config::DefaultStrategyConfig(StrategyKind::kMegatronFsdp);
  EXPECT_THAT(Check(&megatron, {.pp = 2, .ep = 4, .dp_replicate = 2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dp_replicate_size is only supported with FSDP2Config")));
  EXPECT_THAT(Check(&megatron, {.pp = 2, .ep = 4}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("megatron_fsdp does not support pipeline parallelism")));
  EXPECT_THAT(Check(&megatron, {.ep = 4}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("megatron_fsdp does not support expert parallelism")));
  EXPECT_OK(Check(&megatron, {.tp = 2, .cp = 2}));
}

TEST(ValidateDistributedSetupTest, DdpChecksInOrder) {
  const config::StrategyConfig ddp = config::DefaultStrategyConfig(StrategyKind::kDdp);
  const SetupSizes all = {.pp = 2, .tp = 2, .cp = 2, .ep = 2, .dp_replicate = 2};
  // DDP with dp_replicate gets the dp_replicate_size message first (no "HSDP" message now).
  EXPECT_THAT(Check(&ddp, all),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dp_replicate_size is only supported with FSDP2Config")));
  SetupSizes s = all;
  s.dp_replicate = 1;
  EXPECT_THAT(Check(&ddp, s), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("ddp does not support tensor parallelism")));
  s.tp = 1;
  EXPECT_THAT(Check(&ddp, s), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("ddp does not support pipeline parallelism")));
  s.pp = 1;
  EXPECT_THAT(Check(&ddp, s), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("ddp does not support context parallelism")));
  s.cp = 1;
  EXPECT_THAT(Check(&ddp, s), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("ddp does not support expert parallelism")));
  s.ep = 1;
  EXPECT_OK(Check(&ddp, s));
  s.dp_replicate = std::nullopt;
  EXPECT_OK(Check(&ddp, s));
}

TEST(ValidateDistributedSetupTest, PipelineAndMoeConfigsComeFirst) {
  const config::StrategyConfig fsdp2 = config::DefaultStrategyConfig(StrategyKind::kFsdp2);
  EXPECT_OK(Check(&fsdp2, {.pp = 2, .tp = 2, .cp = 2, .ep = 2, .dp_replicate = 2}, true, true));
  EXPECT_THAT(Check(&fsdp2, {.pp = 1}, /*pipeline=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pipeline_config requires pp_size > 1")));
  EXPECT_THAT(Check(&fsdp2, {.pp = 2, .ep = 1}, true, /*moe=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("moe_parallel_config requires ep_size > 1")));
  // The config checks come before the strategy checks of §4.
  const config::StrategyConfig ddp = config::DefaultStrategyConfig(StrategyKind::kDdp);
  EXPECT_THAT(Check(&ddp, {.tp = 2}, /*pipeline=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pipeline_config requires pp_size > 1")));
  EXPECT_OK(Check(nullptr, {.tp = 2, .dp_replicate = 4}));
  EXPECT_THAT(Check(nullptr, {}, false, /*moe=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("moe_parallel_config requires ep_size > 1")));
}

}  // namespace
}  // namespace nmesh::validate
