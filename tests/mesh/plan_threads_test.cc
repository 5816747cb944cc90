// Thread safety of plans (mesh/plan.h: "every const method may be called concurrently"). Run under
// TSan by scripts/sanitize.sh; elsewhere it checks that concurrent answers equal serial ones.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/mesh/planned_context.h"

namespace nmesh::mesh {
namespace {

constexpr int kThreads = 8;

// Everything a rank sees, flattened to numbers: coordinate, then each group's name length, local
// rank and members, then the moe groups.
std::vector<int64_t> Fingerprint(const MeshPlan& plan, int64_t rank) {
  absl::StatusOr<RankPlan> me = plan.QueryRank(rank);
  EXPECT_OK(me.status());
  if (!me.ok()) return {};
  std::vector<int64_t> out = me->coordinate;
  auto add = [&](const std::vector<NamedGroup>& groups) {
    for (const NamedGroup& g : groups) {
      out.push_back(static_cast<int64_t>(g.name.size()));
      out.push_back(g.group.local_rank());
      for (int64_t member : g.group.Ranks()) out.push_back(member);
      EXPECT_OK(plan.ResolveGroup(g.name).status());
    }
  };
  add(me->groups);
  if (me->moe_groups.has_value()) add(*me->moe_groups);
  return out;
}

void ExpectConcurrentQueriesMatchSerial(const MeshPlan& plan, const std::vector<int64_t>& ranks) {
  std::vector<std::vector<int64_t>> serial;
  for (int64_t rank : ranks) serial.push_back(Fingerprint(plan, rank));
  const size_t kinds = DistinctGroupKinds(plan).size();
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the ranks from a different start, so threads query the same rank at
      // different times and different ranks at the same time.
      for (size_t k = 0; k < ranks.size(); ++k) {
        const size_t i = (k + t * ranks.size() / kThreads) % ranks.size();
        if (Fingerprint(plan, ranks[i]) != serial[i]) ++mismatches[t];
      }
      if (DistinctGroupKinds(plan).size() != kinds) ++mismatches[t];
      (void)PlanContext(plan);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(std::accumulate(mismatches.begin(), mismatches.end(), 0), 0);
}

TEST(PlanThreadsTest, ConcurrentQueriesOfAnImplicitPlan) {
  config::MeshRequest request;
  request.sizes.dp_replicate = 2;
  request.sizes.tp = 2;
  request.sizes.pp = 2;
  request.sizes.cp = 2;
  request.sizes.ep = 4;
  request.sizes.world_size = 64;
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(request));
  std::vector<int64_t> ranks(64);
  std::iota(ranks.begin(), ranks.end(), 0);
  ExpectConcurrentQueriesMatchSerial(plan, ranks);
}

TEST(PlanThreadsTest, ConcurrentQueriesOfARankListPlan) {
  // A shuffled rank list: queries go through the plan's rank -> position index.
  std::vector<int64_t> ranks(48);
  std::iota(ranks.begin(), ranks.end(), 100);
  std::shuffle(ranks.begin(), ranks.end(), std::mt19937(7));
  config::MeshRequest request;
  request.sizes.tp = 4;
  request.sizes.cp = 2;
  request.ranks = ranks;
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(request));
  ExpectConcurrentQueriesMatchSerial(plan, ranks);
}

}  // namespace
}  // namespace nmesh::mesh
