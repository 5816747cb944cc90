#include "nmesh/config/strategy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"

namespace nmesh::config {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

TEST(StrategyTest, NamesAndAliasesMatchCaseInsensitively) {
  EXPECT_EQ(*ParseStrategy("fsdp2"), StrategyKind::kFsdp2);
  EXPECT_EQ(*ParseStrategy("FSDP2"), StrategyKind::kFsdp2);
  EXPECT_EQ(*ParseStrategy("megatron_fsdp"), StrategyKind::kMegatronFsdp);
  EXPECT_EQ(*ParseStrategy("Megatron-FSDP"), StrategyKind::kMegatronFsdp);
  EXPECT_EQ(*ParseStrategy("mfsdp"), StrategyKind::kMegatronFsdp);
  EXPECT_EQ(*ParseStrategy("DDP"), StrategyKind::kDdp);
  EXPECT_EQ(kDefaultStrategy, StrategyKind::kFsdp2);
}

TEST(StrategyTest, UnknownNameListsTheSortedValidNames) {
  EXPECT_THAT(ParseStrategy("zero3"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Unknown strategy: zero3. Valid strategies: ['ddp', 'fsdp2', "
                                 "'megatron-fsdp', 'megatron_fsdp', 'mfsdp']")));
}

TEST(StrategyTest, CanonicalNames) {
  EXPECT_EQ(StrategyName(StrategyKind::kFsdp2), "fsdp2");
  EXPECT_EQ(StrategyName(StrategyKind::kMegatronFsdp), "megatron_fsdp");
  EXPECT_EQ(StrategyName(StrategyKind::kDdp), "ddp");
}

}  // namespace
}  // namespace nmesh::config
