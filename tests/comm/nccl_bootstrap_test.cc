#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/comm/nccl/bootstrap.h"

namespace nmesh::comm::nccl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kNccl2289 = 22809;

TEST(PlanBootstrapTest, OneRootPerKRanksFromRankZero) {
  const BootstrapPlan plan = PlanBootstrap(1000, {.ranks_per_root = 128}, kNccl2289);
  EXPECT_TRUE(plan.scalable);
  // ceil(1000 / 128) = 8 roots at multiples of 128, computed by hand.
  EXPECT_THAT(plan.roots, ElementsAre(0, 128, 256, 384, 512, 640, 768, 896));
  EXPECT_THAT(plan.reason, HasSubstr("8 roots, one per 128 ranks"));
}

TEST(PlanBootstrapTest, EveryRankHasOneRootWithinKBelowIt) {
  for (int size : {1, 2, 7, 128, 129, 255, 256, 257, 1 << 12}) {
    for (int k : {1, 3, 64, 128, 4096}) {
      const BootstrapPlan plan = PlanBootstrap(size, {.ranks_per_root = k}, kNccl2289);
      ASSERT_FALSE(plan.roots.empty());
      EXPECT_EQ(plan.roots.front(), 0);
      EXPECT_EQ(plan.scalable, size > k) << size << " " << k;
      if (!plan.scalable) continue;
      EXPECT_EQ(static_cast<int>(plan.roots.size()), (size + k - 1) / k) << size << " " << k;
      for (int rank = 0; rank < size; ++rank) {
        int owners = 0;
        for (int root : plan.roots) owners += root <= rank && rank < root + k ? 1 : 0;
        ASSERT_EQ(owners, 1) << "rank " << rank << " size " << size << " k " << k;
      }
    }
  }
}

TEST(PlanBootstrapTest, SmallJobsUseOneRoot) {
  const BootstrapPlan plan = PlanBootstrap(128, {.ranks_per_root = 128}, kNccl2289);
  EXPECT_FALSE(plan.scalable);
  EXPECT_THAT(plan.roots, ElementsAre(0));
  EXPECT_THAT(plan.reason, HasSubstr("128 ranks <= 128 per root"));
  EXPECT_FALSE(PlanBootstrap(1 << 16, {.ranks_per_root = 0}, kNccl2289).scalable);
}

TEST(PlanBootstrapTest, NcclWithoutScalableInitUsesOneRoot) {
  const BootstrapPlan old = PlanBootstrap(4096, {.ranks_per_root = 128}, 22203);
  EXPECT_FALSE(old.scalable);
  EXPECT_THAT(old.roots, ElementsAre(0));
  EXPECT_THAT(old.reason, HasSubstr("NCCL 2.22.3 predates ncclCommInitRankScalable"));
  EXPECT_TRUE(PlanBootstrap(4096, {.ranks_per_root = 128}, kScalableInitVersion).scalable);
}

}  // namespace
}  // namespace nmesh::comm::nccl
