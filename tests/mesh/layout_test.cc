#include "nmesh/mesh/layout.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/tests/mesh/brute_force.h"
#include "nmesh/validate/checked_math.h"

namespace nmesh::mesh {

using validate::CheckedMul;
using validate::CheckedProduct;
using validate::kMaxMeshSize;
namespace {

using ::nmesh::mesh::testing::BruteGroup;
using ::nmesh::mesh::testing::BruteGroupOf;
using ::nmesh::mesh::testing::BruteMesh;
using ::nmesh::mesh::testing::BrutePartition;
using ::nmesh::mesh::testing::SortedByResidue;
using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<std::string> Names(size_t n) {
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.push_back(std::string(1, static_cast<char>('a' + i)));
  return names;
}

std::vector<bool> Flags(AxisSet axes, int ndim) {
  std::vector<bool> flags(ndim);
  for (int i = 0; i < ndim; ++i) flags[i] = axes.Contains(i);
  return flags;
}

AxisSet FromMask(uint64_t mask) {
  AxisSet set;
  for (int i = 0; i < 64; ++i) {
    if ((mask >> i) & 1u) set = set.With(i);
  }
  return set;
}

std::vector<int64_t> Shuffled(int64_t n, uint32_t seed, int64_t offset = 0) {
  std::vector<int64_t> ranks(n);
  std::iota(ranks.begin(), ranks.end(), offset);
  std::mt19937 rng(seed);
  std::shuffle(ranks.begin(), ranks.end(), rng);
  return ranks;
}

// Checks every group of every rank of `layout` over every subset of axes against `brute`.
void ExpectGroupsMatchBruteForce(const Layout& layout, const BruteMesh& brute) {
  const int ndim = static_cast<int>(brute.shape.size());
  ASSERT_EQ(layout.size(), static_cast<int64_t>(brute.coords.size()));
  for (size_t i = 0; i < brute.coords.size(); ++i) {
    const int64_t rank = brute.RankOf(i);
    ASSERT_OK_AND_ASSIGN(std::vector<int64_t> coordinate, layout.CoordinateOf(rank));
    EXPECT_EQ(coordinate, brute.coords[i]);
    ASSERT_OK_AND_ASSIGN(int64_t back, layout.RankAt(brute.coords[i]));
    EXPECT_EQ(back, rank);
    for (uint64_t mask = 0; mask < (uint64_t{1} << ndim); ++mask) {
      const AxisSet axes = FromMask(mask);
      const BruteGroup expected = BruteGroupOf(brute, rank, Flags(axes, ndim));
      ASSERT_OK_AND_ASSIGN(Group group, layout.GroupOf(rank, axes));
      EXPECT_EQ(group.ranks, expected.ranks) << "rank " << rank << " mask " << mask;
      EXPECT_EQ(group.local_rank, expected.local_rank) << "rank " << rank << " mask " << mask;
      EXPECT_EQ(group.index, expected.index) << "rank " << rank << " mask " << mask;
      EXPECT_EQ(group.count, expected.count) << "rank " << rank << " mask " << mask;
      ASSERT_OK_AND_ASSIGN(GroupView view, layout.ViewGroup(rank, axes));
      for (int64_t local = 0; local < view.size(); ++local) {
        EXPECT_EQ(view.RankAt(local), expected.ranks[local]);
      }
      EXPECT_EQ(layout.GroupSize(axes), static_cast<int64_t>(expected.ranks.size()));
      EXPECT_EQ(layout.GroupCount(axes), expected.count);
    }
  }
}

// Checks every group of every rank over every subset of axes against brute force.
void ExpectAllGroupsMatchBruteForce(const std::vector<int64_t>& shape,
                                    const std::vector<int64_t>& ranks) {
  SCOPED_TRACE(::testing::PrintToString(shape) + " ranks " + ::testing::PrintToString(ranks));
  std::optional<std::vector<int64_t>> list;
  if (!ranks.empty()) list = ranks;
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::Create(shape, Names(shape.size()), list));
  ExpectGroupsMatchBruteForce(layout, BruteMesh{shape, ranks});
}

TEST(LayoutTest, GroupsMatchBruteForceOnManyShapes) {
  const std::vector<std::vector<int64_t>> shapes = {
      {1}, {5}, {2, 3}, {2, 2, 2}, {3, 1, 4, 2}, {2, 3, 2, 2}, {1, 2, 1, 3, 1}, {2, 2, 3, 1, 2}};
  for (const auto& shape : shapes) ExpectAllGroupsMatchBruteForce(shape, {});
}

TEST(LayoutTest, GroupsMatchBruteForceWithShuffledRankLists) {
  uint32_t seed = 1;
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{4}, {2, 3}, {2, 2, 2}, {3, 1, 4, 2}, {2, 3, 2, 2}}) {
    const int64_t n =
        std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
    ExpectAllGroupsMatchBruteForce(shape, Shuffled(n, seed++, /*offset=*/7));
  }
}

TEST(LayoutTest, NonContiguousFlatteningFromTheContract) {
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::Create({2, 2, 2}, {"a", "b", "c"}));
  ASSERT_OK_AND_ASSIGN(AxisSet ac, layout.AxesOf({"c", "a"}));
  EXPECT_EQ(ac, AxisSet::Of({0, 2}));
  std::set<std::vector<int64_t>> groups;
  for (int64_t rank = 0; rank < 8; ++rank) {
    ASSERT_OK_AND_ASSIGN(Group group, layout.GroupOf(rank, ac));
    EXPECT_EQ(group.ranks[group.local_rank], rank);
    EXPECT_EQ(group.count, 2);
    groups.insert(group.ranks);
  }
  EXPECT_EQ(groups, (std::set<std::vector<int64_t>>{{0, 1, 4, 5}, {2, 3, 6, 7}}));
  ASSERT_OK_AND_ASSIGN(Group g6, layout.GroupOf(6, ac));
  EXPECT_EQ(g6.local_rank, 2);
  EXPECT_EQ(g6.index, 1);
}

TEST(LayoutTest, AccessorsAndStrides) {
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::Create({2, 3, 4}, {"pp", "dp", "tp"}));
  EXPECT_EQ(layout.ndim(), 3);
  EXPECT_EQ(layout.size(), 24);
  EXPECT_THAT(layout.strides(), ElementsAre(12, 4, 1));
  EXPECT_TRUE(layout.is_identity());
  EXPECT_EQ(layout.rank_list(), nullptr);
  EXPECT_EQ(*layout.AxisIndex("dp"), 1);
  EXPECT_THAT(layout.AxisIndex("cp"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("'cp'")));
  EXPECT_EQ(layout.DebugString(), "(pp=2, dp=3, tp=4)");
  EXPECT_TRUE(layout.IsTrivial(AxisSet()));
  EXPECT_TRUE(layout.IsWholeMesh(AxisSet::All(3)));
  EXPECT_FALSE(layout.IsWholeMesh(AxisSet::Of({0, 2})));
}

TEST(LayoutTest, IdentityRankListIsDropped) {
  ASSERT_OK_AND_ASSIGN(Layout layout,
                       Layout::Create({2, 2}, {"a", "b"}, std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(layout.is_identity());
  ASSERT_OK_AND_ASSIGN(Layout listed,
                       Layout::Create({2, 2}, {"a", "b"}, std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_FALSE(listed.is_identity());
  ASSERT_NE(listed.rank_list(), nullptr);
  EXPECT_THAT(*listed.rank_list(), ElementsAre(4, 5, 6, 7));
}

TEST(LayoutTest, NonMembersHoldNoGroups) {
  ASSERT_OK_AND_ASSIGN(Layout listed,
                       Layout::Create({2, 2}, {"a", "b"}, std::vector<int64_t>{9, 3, 5, 7}));
  EXPECT_FALSE(listed.Contains(0));
  EXPECT_TRUE(listed.Contains(9));
  EXPECT_EQ(listed.PositionOf(5), 2);
  EXPECT_THAT(listed.GroupOf(0, "a"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("rank 0 is not a member")));
  EXPECT_THAT(listed.CoordinateOf(4), StatusIs(absl::StatusCode::kFailedPrecondition, _));
  ASSERT_OK_AND_ASSIGN(Layout plain, Layout::Create({4}, {"a"}));
  EXPECT_THAT(plain.GroupOf(4, "a"), StatusIs(absl::StatusCode::kFailedPrecondition, _));
  EXPECT_THAT(plain.GroupOf(-1, "a"), StatusIs(absl::StatusCode::kFailedPrecondition, _));
}

TEST(LayoutTest, BadQueriesAreErrors) {
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::Create({2, 2}, {"a", "b"}));
  EXPECT_THAT(layout.GroupOf(0, AxisSet::Of({2})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("axis index 2")));
  EXPECT_THAT(layout.GroupOf(0, "z"), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(layout.AxesOf({"a", "a"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("named twice")));
  EXPECT_THAT(layout.RankAt({1}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(layout.RankAt({0, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("axis 'b' has size 2")));
}

TEST(LayoutTest, CreateRejectsBadShapesNamesAndRanks) {
  EXPECT_THAT(Layout::Create({}, {}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(Layout::Create({2, 2}, {"a"}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(Layout::Create({2, 2}, {"tp", "tp"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("mesh axis names must be unique, got 'tp' twice")));
  EXPECT_THAT(Layout::Create({2, 0}, {"a", "b"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("axis 'b' must be a positive integer, got 0")));
  EXPECT_THAT(Layout::Create({2, 2}, {"a", "b"}, std::vector<int64_t>{0, 1, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("mesh ranks (3) must match mesh size (4)")));
  EXPECT_THAT(Layout::Create({2, 2}, {"a", "b"}, std::vector<int64_t>{0, 1, 2, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mesh ranks must be unique")));
  EXPECT_THAT(Layout::Create({2}, {"a"}, std::vector<int64_t>{0, -3}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-3")));
}

TEST(LayoutTest, SizesUpToTwoToTheThirtyOneMinusOneAreExact) {
  // 2^31 - 1 is prime, so the only shapes are 1 x (2^31 - 1) and the like.
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::Create({1, kMaxMeshSize, 1}, {"pp", "dp", "tp"}));
  EXPECT_EQ(layout.size(), kMaxMeshSize);
  ASSERT_OK_AND_ASSIGN(std::vector<int64_t> coordinate, layout.CoordinateOf(kMaxMeshSize - 1));
  EXPECT_THAT(coordinate, ElementsAre(0, kMaxMeshSize - 1, 0));
  ASSERT_OK_AND_ASSIGN(Group tp, layout.GroupOf(kMaxMeshSize - 1, "tp"));
  EXPECT_THAT(tp.ranks, ElementsAre(kMaxMeshSize - 1));
  EXPECT_EQ(tp.index, kMaxMeshSize - 1);
  EXPECT_EQ(tp.count, kMaxMeshSize);
  ASSERT_OK_AND_ASSIGN(GroupView dp, layout.ViewGroup(12345, AxisSet::Of({1})));
  EXPECT_EQ(dp.size(), kMaxMeshSize);
  EXPECT_EQ(dp.local_rank(), 12345);
  EXPECT_EQ(dp.RankAt(kMaxMeshSize - 2), kMaxMeshSize - 2);

  ASSERT_OK_AND_ASSIGN(Layout big, Layout::Create({1 << 15, (1 << 15) - 1, 2}, {"a", "b", "c"}));
  const int64_t last = big.size() - 1;
  ASSERT_OK_AND_ASSIGN(Group c, big.GroupOf(last, "c"));
  EXPECT_THAT(c.ranks, ElementsAre(last - 1, last));
  ASSERT_OK_AND_ASSIGN(GroupView a, big.ViewGroup(last, AxisSet::Of({0})));
  // The last rank is at (2^15 - 1, 2^15 - 2, 1); its a-group starts at (0, 2^15 - 2, 1).
  EXPECT_EQ(a.RankAt(0), (int64_t{1} << 16) - 3);
  EXPECT_EQ(a.local_rank(), (1 << 15) - 1);
}

TEST(LayoutTest, SizesBeyondTheLimitAreRejectedNamingTheValue) {
  EXPECT_THAT(Layout::Create({int64_t{1} << 31}, {"dp"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("2147483648) must be at most 2147483647")));
  EXPECT_THAT(Layout::Create({int64_t{1} << 40, int64_t{1} << 40}, {"a", "b"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("1099511627776 * 1099511627776) overflows int64")));
}

TEST(LayoutTest, CheckedMath) {
  EXPECT_EQ(CheckedMul(int64_t{1} << 31, int64_t{1} << 31), int64_t{1} << 62);
  EXPECT_EQ(CheckedMul(int64_t{1} << 32, int64_t{1} << 31), std::nullopt);
  EXPECT_EQ(CheckedProduct({}), 1);
  EXPECT_EQ(CheckedProduct({3, 5, 7}), 105);
  EXPECT_EQ(CheckedProduct({int64_t{1} << 21, int64_t{1} << 21, int64_t{1} << 21}), std::nullopt);
}

TEST(LayoutTest, UnflattenSplitsAnAxisIntoNamedSubAxes) {
  ASSERT_OK_AND_ASSIGN(Layout layout,
                       Layout::Create({2, 4, 2}, {"dp", "cp", "tp"}, Shuffled(16, 42)));
  ASSERT_OK_AND_ASSIGN(Layout split, layout.Unflatten("cp", {2, 2}, {"ring", "ulysses"}));
  EXPECT_THAT(split.shape(), ElementsAre(2, 2, 2, 2));
  EXPECT_THAT(split.axis_names(), ElementsAre("dp", "ring", "ulysses", "tp"));
  // The same ranks in the same order, so the old cp groups are the flattened (ring, ulysses).
  BruteMesh brute{{2, 2, 2, 2}, *layout.rank_list()};
  for (int64_t i = 0; i < 16; ++i) {
    const int64_t rank = layout.RankAtPosition(i);
    ASSERT_OK_AND_ASSIGN(Group cp, layout.GroupOf(rank, "cp"));
    ASSERT_OK_AND_ASSIGN(Group both, split.GroupOf(rank, AxisSet::Of({1, 2})));
    EXPECT_EQ(cp.ranks, both.ranks);
    ASSERT_OK_AND_ASSIGN(Group ring, split.GroupOf(rank, "ring"));
    EXPECT_EQ(ring.ranks, BruteGroupOf(brute, rank, {false, true, false, false}).ranks);
  }
  EXPECT_TRUE(SamePartition(layout, AxisSet::Of({1}), split, AxisSet::Of({1, 2})));
}

TEST(LayoutTest, UnflattenWithTheWrongProductNamesTheAxisSize) {
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::Create({2, 4}, {"dp", "cp"}));
  EXPECT_THAT(
      layout.Unflatten("cp", {2, 3}, {"ring", "ulysses"}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("ring_degree (2) * ulysses_degree (3) must equal the cp mesh size (4).")));
  EXPECT_THAT(layout.Unflatten("cp", {2}, {"ring", "ulysses"}),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(layout.Unflatten("cp", {4, 1}, {"dp", "x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'dp' twice")));
  EXPECT_THAT(layout.Unflatten("xx", {4}, {"y"}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(layout.Unflatten("cp", {0, 4}, {"y", "z"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got 0")));
}

TEST(LayoutTest, SubmeshAndFlattenFollowTheRanksGroup) {
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::Create({2, 3, 2}, {"a", "b", "c"}));
  ASSERT_OK_AND_ASSIGN(Layout sub, layout.Submesh(7, {"a", "c"}));
  EXPECT_THAT(sub.axis_names(), ElementsAre("a", "c"));
  EXPECT_THAT(sub.shape(), ElementsAre(2, 2));
  ASSERT_NE(sub.rank_list(), nullptr);
  // Rank 7 is at (1, 0, 1): its (a, c) group is every rank with b = 0.
  EXPECT_THAT(*sub.rank_list(), ElementsAre(0, 1, 6, 7));
  EXPECT_THAT(layout.Submesh(7, {"c", "a"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mesh order")));

  ASSERT_OK_AND_ASSIGN(Layout flat, layout.Flatten(7, {"a", "c"}, "ac"));
  EXPECT_THAT(flat.axis_names(), ElementsAre("ac"));
  EXPECT_THAT(*flat.rank_list(), ElementsAre(0, 1, 6, 7));
  ASSERT_OK_AND_ASSIGN(Group g, flat.GroupOf(6, "ac"));
  EXPECT_EQ(g.local_rank, 2);
  EXPECT_THAT(layout.Submesh(12, {"a"}), StatusIs(absl::StatusCode::kFailedPrecondition, _));
}

TEST(LayoutTest, ReshapeKeepsTheRanksAndChecksTheSize) {
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::Create({4, 2}, {"a", "b"}, Shuffled(8, 3)));
  ASSERT_OK_AND_ASSIGN(Layout reshaped, layout.Reshape({2, 2, 2}, {"x", "y", "z"}));
  EXPECT_EQ(reshaped.rank_list(), layout.rank_list());  // shared, not copied
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(reshaped.RankAtPosition(i), layout.RankAtPosition(i));
  EXPECT_THAT(layout.Reshape({3, 3}, {"x", "y"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keep the mesh size 8")));
}

// The ordered groups of every rank, as a set: the partition SamePartition compares.
std::set<std::vector<int64_t>> PartitionOf(const Layout& layout, AxisSet axes) {
  std::set<std::vector<int64_t>> groups;
  for (int64_t i = 0; i < layout.size(); ++i) {
    groups.insert(layout.GroupOf(layout.RankAtPosition(i), axes)->ranks);
  }
  return groups;
}

void ExpectSamePartitionMatchesBruteForce(const Layout& a, const Layout& b) {
  for (uint64_t ma = 0; ma < (uint64_t{1} << a.ndim()); ++ma) {
    for (uint64_t mb = 0; mb < (uint64_t{1} << b.ndim()); ++mb) {
      const bool expected = PartitionOf(a, FromMask(ma)) == PartitionOf(b, FromMask(mb));
      EXPECT_EQ(SamePartition(a, FromMask(ma), b, FromMask(mb)), expected)
          << a.DebugString() << " mask " << ma << " vs " << b.DebugString() << " mask " << mb;
    }
  }
}

TEST(LayoutTest, SamePartitionMatchesBruteForceOnOneRankArray) {
  ASSERT_OK_AND_ASSIGN(Layout a, Layout::Create({2, 1, 2, 3, 2}, Names(5)));
  ASSERT_OK_AND_ASSIGN(Layout b, a.Reshape({4, 6}, {"x", "y"}));
  ASSERT_OK_AND_ASSIGN(Layout c, a.Reshape({2, 2, 3, 2}, {"p", "q", "r", "s"}));
  ExpectSamePartitionMatchesBruteForce(a, a);
  ExpectSamePartitionMatchesBruteForce(a, b);
  ExpectSamePartitionMatchesBruteForce(b, c);
  ASSERT_OK_AND_ASSIGN(Layout listed, Layout::Create({2, 2, 3, 2}, Names(4), Shuffled(24, 5)));
  ASSERT_OK_AND_ASSIGN(Layout listed2, listed.Reshape({4, 3, 2}, {"x", "y", "z"}));
  ExpectSamePartitionMatchesBruteForce(listed, listed2);
}

TEST(LayoutTest, SamePartitionMatchesBruteForceAcrossRankArrays) {
  // The same members in other orders, and other members: compared rank by rank.
  ASSERT_OK_AND_ASSIGN(Layout plain, Layout::Create({2, 2, 2}, Names(3)));
  ASSERT_OK_AND_ASSIGN(
      Layout transposed,
      Layout::Create({2, 2, 2}, Names(3), std::vector<int64_t>{0, 4, 2, 6, 1, 5, 3, 7}));
  ASSERT_OK_AND_ASSIGN(
      Layout shifted,
      Layout::Create({2, 4}, Names(2), std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  ExpectSamePartitionMatchesBruteForce(plain, transposed);
  ExpectSamePartitionMatchesBruteForce(transposed, plain);
  ExpectSamePartitionMatchesBruteForce(plain, shifted);
  // Transposing swaps which axis is which: a of one is c of the other.
  EXPECT_TRUE(SamePartition(plain, AxisSet::Of({0}), transposed, AxisSet::Of({2})));
  EXPECT_FALSE(SamePartition(plain, AxisSet::Of({0, 2}), transposed, AxisSet::Of({0, 1})));
  ASSERT_OK_AND_ASSIGN(Layout smaller, Layout::Create({4}, {"a"}));
  EXPECT_FALSE(SamePartition(plain, AxisSet(), smaller, AxisSet()));
  EXPECT_FALSE(SamePartition(plain, AxisSet::Of({5}), plain, AxisSet::Of({5})));
}

TEST(LayoutTest, GatheredByResidueMatchesTheSortedList) {
  int checked = 0;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {1}, {5}, {7}, {2, 3}, {2, 5}, {2, 2, 2}, {3, 4}, {3, 1, 4, 2}}) {
    const int64_t n =
        std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
    for (int64_t period = 1; period <= n + 2; ++period) {
      SCOPED_TRACE(::testing::PrintToString(shape) + " period " + std::to_string(period));
      ASSERT_OK_AND_ASSIGN(Layout layout,
                           Layout::CreateGatheredByResidue(shape, Names(shape.size()), period));
      const std::vector<int64_t> sorted = SortedByResidue(n, period);
      std::vector<int64_t> identity(static_cast<size_t>(n));
      std::iota(identity.begin(), identity.end(), int64_t{0});
      EXPECT_EQ(layout.is_identity(), sorted == identity);
      EXPECT_EQ(layout.MaxRank(), n - 1);
      for (int64_t p = 0; p < n; ++p) {
        ASSERT_EQ(layout.RankAtPosition(p), sorted[static_cast<size_t>(p)]) << "position " << p;
      }
      for (int64_t rank = -2; rank < n + 2; ++rank) {
        const auto it = std::find(sorted.begin(), sorted.end(), rank);
        const std::optional<int64_t> want =
            it == sorted.end() ? std::nullopt : std::optional<int64_t>(it - sorted.begin());
        EXPECT_EQ(layout.PositionOf(rank), want) << "rank " << rank;
      }
      if (!layout.is_identity()) {
        ASSERT_NE(layout.rank_list(), nullptr);
        EXPECT_EQ(*layout.rank_list(), sorted);
        EXPECT_EQ(layout.rank_list(), layout.rank_list());  // listed once
      }
      ExpectGroupsMatchBruteForce(layout, BruteMesh{shape, sorted});
      // Against the same order given as a list (compared rank by rank) and reshaped (shared).
      ASSERT_OK_AND_ASSIGN(Layout listed, Layout::Create(shape, Names(shape.size()), sorted));
      ExpectSamePartitionMatchesBruteForce(layout, listed);
      ExpectSamePartitionMatchesBruteForce(listed, layout);
      ASSERT_OK_AND_ASSIGN(Layout flat, layout.Reshape({n}, {"ranks"}));
      ExpectSamePartitionMatchesBruteForce(layout, flat);
      ++checked;
    }
  }
  EXPECT_GT(checked, 60);
  EXPECT_THAT(Layout::CreateGatheredByResidue({4}, {"a"}, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got 0")));
  EXPECT_THAT(Layout::CreateGatheredByResidue({4}, {"a", "b"}, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2 axis names")));
}

TEST(LayoutTest, GatheredByResidueNeedsNoListAtAnySize) {
  // 2^31 - 1 ranks: a list and its index would take tens of GiB; the closed form answers each
  // lookup by arithmetic. The expected values are counted here from the definition.
  const int64_t n = kMaxMeshSize;
  const int64_t period = 131072;
  ASSERT_OK_AND_ASSIGN(Layout layout, Layout::CreateGatheredByResidue({n}, {"ranks"}, period));
  EXPECT_FALSE(layout.is_identity());
  EXPECT_EQ(layout.MaxRank(), n - 1);
  EXPECT_EQ(layout.RankAtPosition(0), 0);
  EXPECT_EQ(layout.RankAtPosition(1), period);
  // Residue 0 holds the multiples of period below n: ceil(n / period) of them.
  const int64_t zeros = (n + period - 1) / period;
  EXPECT_EQ(layout.RankAtPosition(zeros - 1), (zeros - 1) * period);
  EXPECT_EQ(layout.RankAtPosition(zeros), 1);
  EXPECT_EQ(layout.PositionOf(1), zeros);
  // The last position holds the largest rank of the last residue.
  int64_t last = n - 1;
  while (last % period != period - 1) --last;
  EXPECT_EQ(layout.RankAtPosition(n - 1), last);
  EXPECT_EQ(layout.PositionOf(last), n - 1);
  EXPECT_EQ(layout.PositionOf(n), std::nullopt);
  // Layouts derived from it share the closed form: compared arithmetically.
  ASSERT_OK_AND_ASSIGN(Layout other, Layout::CreateGatheredByResidue({n}, {"x"}, period));
  EXPECT_TRUE(SamePartition(layout, AxisSet::Of({0}), other, AxisSet::Of({0})));
}

TEST(LayoutTest, AxisSetBasics) {
  const AxisSet set = AxisSet::Of({4, 1});
  EXPECT_EQ(set.count(), 2);
  EXPECT_EQ(set.lowest(), 1);
  EXPECT_EQ(set.highest(), 4);
  EXPECT_TRUE(set.Contains(4));
  EXPECT_FALSE(set.Contains(2));
  EXPECT_FALSE(set.Contains(-1));
  EXPECT_EQ(AxisSet().highest(), -1);
  EXPECT_EQ(AxisSet::All(3), AxisSet::Of({0, 1, 2}));
  EXPECT_EQ(AxisSet::Of({1}) | AxisSet::Of({3}), AxisSet::Of({3, 1}));
}

}  // namespace
}  // namespace nmesh::mesh
