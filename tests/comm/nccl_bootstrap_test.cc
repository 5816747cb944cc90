#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/nccl/bootstrap.h"
#include "nmesh/tests/comm/memory_store.h"

namespace nmesh::comm::nccl {
namespace {

using ::testing::AllOf;
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

// ShareUniqueIds over an in-memory store, ranks as threads: every rank receives every root's id
// in root order (the ids are distinct bytes per root, so an id read from the wrong key shows).
constexpr size_t kIdBytes = 128;  // sizeof(ncclUniqueId)

std::string IdOf(int root) { return std::string(kIdBytes, static_cast<char>('A' + root % 26)); }

TEST(ShareUniqueIdsTest, EveryRankGetsEveryRootsIdInRootOrder) {
  for (int size : {1, 5, 12}) {
    const BootstrapPlan plan = PlanBootstrap(size, {.ranks_per_root = 4}, kNccl2289);
    testing::MemoryStore store;
    std::vector<absl::StatusOr<std::vector<std::string>>> got(static_cast<size_t>(size));
    std::vector<std::thread> threads;
    for (int rank = 0; rank < size; ++rank) {
      threads.emplace_back([&, rank] {
        const bool root = std::find(plan.roots.begin(), plan.roots.end(), rank) != plan.roots.end();
        got[static_cast<size_t>(rank)] =
            ShareUniqueIds(store, "nccl/world", plan, rank, root ? IdOf(rank) : "", kIdBytes,
                           absl::Now() + absl::Seconds(20));
      });
    }
    for (std::thread& t : threads) t.join();
    std::vector<std::string> expected;
    for (int root : plan.roots) expected.push_back(IdOf(root));
    for (int rank = 0; rank < size; ++rank) {
      ASSERT_TRUE(got[static_cast<size_t>(rank)].ok()) << got[static_cast<size_t>(rank)].status();
      EXPECT_EQ(*got[static_cast<size_t>(rank)], expected) << "size " << size << " rank " << rank;
    }
  }
}

TEST(ShareUniqueIdsTest, AMissingRootIsNamedWithItsRankAndTheStore) {
  const BootstrapPlan plan = PlanBootstrap(12, {.ranks_per_root = 4}, kNccl2289);  // 0, 4, 8
  testing::MemoryStore store("job2");
  // Rank 0 publishes; roots 4 and 8 never do.
  absl::StatusOr<std::vector<std::string>> got = ShareUniqueIds(
      store, "nccl/world", plan, 0, IdOf(0), kIdBytes, absl::Now() + absl::Milliseconds(300));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(
      got.status().message(),
      AllOf(HasSubstr("roots 1 (rank 4), 2 (rank 8) did not publish"), HasSubstr("memory://job2")));
}

TEST(ShareUniqueIdsTest, AnIdOfTheWrongSizeIsRefusedOnBothSides) {
  const BootstrapPlan plan = PlanBootstrap(2, {.ranks_per_root = 4}, kNccl2289);
  testing::MemoryStore store;
  EXPECT_EQ(ShareUniqueIds(store, "n", plan, 0, "short", kIdBytes, absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A store holding a corrupt id (untrusted contents): DataLoss naming the root.
  ASSERT_TRUE(store.Set("n/id/0", "corrupt").ok());
  absl::StatusOr<std::vector<std::string>> got =
      ShareUniqueIds(store, "n", plan, 1, "", kIdBytes, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("root 0 (rank 0) published an id of 7 bytes"));
}

}  // namespace
}  // namespace nmesh::comm::nccl
