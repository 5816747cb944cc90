#include "nmesh/mesh/plan.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/config/strategy.h"
#include "nmesh/tests/mesh/brute_force.h"
#include "nmesh/validate/checked_math.h"

namespace nmesh::mesh {
namespace {

using ::nmesh::config::MeshRequest;
using ::nmesh::config::StrategyKind;
using ::nmesh::mesh::testing::BruteGroupOf;
using ::nmesh::mesh::testing::BruteMesh;
using ::nmesh::mesh::testing::BrutePartition;
using ::nmesh::mesh::testing::SortedByResidue;
using ::nmesh::testing::StatusIs;
using ::nmesh::validate::kMaxMeshSize;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;

// Sizes as the user gives them; designated initializers keep the cases short.
struct Sizes {
  std::optional<int64_t> world = std::nullopt;
  std::optional<int64_t> dp = std::nullopt;
  std::optional<int64_t> dp_replicate = std::nullopt;
  std::optional<int64_t> tp = std::nullopt;
  std::optional<int64_t> pp = std::nullopt;
  std::optional<int64_t> cp = std::nullopt;
  std::optional<int64_t> ep = std::nullopt;
};

MeshRequest Request(StrategyKind strategy, const Sizes& s,
                    std::optional<std::vector<int64_t>> ranks = std::nullopt) {
  MeshRequest request;
  request.strategy = strategy;
  request.sizes.world_size = s.world;
  request.sizes.dp = s.dp;
  request.sizes.dp_replicate = s.dp_replicate;
  request.sizes.tp = s.tp;
  request.sizes.pp = s.pp;
  request.sizes.cp = s.cp;
  request.sizes.ep = s.ep;
  request.ranks = std::move(ranks);
  return request;
}

MeshRequest Fsdp2(const Sizes& s, std::optional<std::vector<int64_t>> ranks = std::nullopt) {
  return Request(StrategyKind::kFsdp2, s, std::move(ranks));
}

std::vector<int64_t> Range(int64_t begin, int64_t end, int64_t step = 1) {
  std::vector<int64_t> v;
  for (int64_t i = begin; i < end; i += step) v.push_back(i);
  return v;
}

std::vector<int64_t> Ranks(const absl::StatusOr<GroupView>& view) {
  EXPECT_TRUE(view.ok()) << view.status();
  return view.ok() ? view->Ranks() : std::vector<int64_t>{};
}

// The expected axes of a group name, by axis name, per contract §4.
std::vector<bool> InSet(const std::vector<std::string>& axes,
                        const std::vector<std::string>& members) {
  std::vector<bool> flags;
  for (const std::string& axis : axes) {
    flags.push_back(std::find(members.begin(), members.end(), axis) != members.end());
  }
  return flags;
}

// Checks a plan's coordinates, native and flattened groups, and moe groups, rank by rank, against
// brute force over the expected shape.
void ExpectPlanMatchesBruteForce(const MeshPlan& plan, const std::vector<std::string>& axes,
                                 const std::vector<int64_t>& shape,
                                 const std::map<std::string, std::vector<std::string>>& flattened,
                                 const std::vector<int64_t>& ranks, int64_t ep = 1) {
  BruteMesh brute{shape, ranks};
  EXPECT_EQ(plan.device_mesh().axis_names(), axes);
  EXPECT_EQ(plan.device_mesh().shape(), shape);
  ASSERT_EQ(plan.flattened().size(), flattened.size());
  for (const FlattenedGroup& group : plan.flattened()) {
    ASSERT_TRUE(flattened.count(group.name)) << group.name;
    EXPECT_EQ(group.source_axes, flattened.at(group.name));
  }
  for (size_t i = 0; i < brute.coords.size(); ++i) {
    const int64_t rank = brute.RankOf(i);
    ASSERT_OK_AND_ASSIGN(RankPlan me, plan.QueryRank(rank));
    EXPECT_EQ(me.coordinate, brute.coords[i]);
    std::vector<std::string> expected_names = axes;
    for (const FlattenedGroup& group : plan.flattened()) expected_names.push_back(group.name);
    ASSERT_EQ(me.groups.size(), expected_names.size());
    for (size_t g = 0; g < me.groups.size(); ++g) {
      const std::string& name = expected_names[g];
      EXPECT_EQ(me.groups[g].name, name);
      const std::vector<std::string> members =
          flattened.count(name) ? flattened.at(name) : std::vector<std::string>{name};
      const auto expected = BruteGroupOf(brute, rank, InSet(axes, members));
      EXPECT_EQ(me.groups[g].group.Ranks(), expected.ranks) << "rank " << rank << " " << name;
      EXPECT_EQ(me.groups[g].group.local_rank(), expected.local_rank) << name;
      EXPECT_EQ(me.groups[g].group.index(), expected.index) << name;
      EXPECT_EQ(me.groups[g].group.count(), expected.count) << name;
    }
    if (ep == 1) {
      EXPECT_FALSE(me.moe_groups.has_value());
      continue;
    }
    // Stage s: the ranks with pp coordinate s, in order; ep groups are blocks of ep of them and
    // ep_shard groups the ranks with the same position modulo ep.
    std::vector<int64_t> stage;
    for (size_t j = 0; j < brute.coords.size(); ++j) {
      if (brute.coords[j][0] == brute.coords[i][0]) stage.push_back(brute.RankOf(j));
    }
    const auto k = std::find(stage.begin(), stage.end(), rank) - stage.begin();
    std::vector<int64_t> ep_group, ep_shard_group;
    for (size_t j = 0; j < stage.size(); ++j) {
      if (static_cast<int64_t>(j) / ep == k / ep) ep_group.push_back(stage[j]);
      if (static_cast<int64_t>(j) % ep == k % ep) ep_shard_group.push_back(stage[j]);
    }
    ASSERT_TRUE(me.moe_groups.has_value());
    ASSERT_EQ(me.moe_groups->size(), 2u);
    EXPECT_EQ((*me.moe_groups)[0].name, "ep_shard");
    EXPECT_EQ((*me.moe_groups)[0].group.Ranks(), ep_shard_group) << "rank " << rank;
    EXPECT_EQ((*me.moe_groups)[0].group.local_rank(), k / ep);
    EXPECT_EQ((*me.moe_groups)[1].name, "ep");
    EXPECT_EQ((*me.moe_groups)[1].group.Ranks(), ep_group) << "rank " << rank;
    EXPECT_EQ((*me.moe_groups)[1].group.local_rank(), k % ep);
  }
}

const std::vector<std::string> kFsdp2Axes = {"pp", "dp_replicate", "dp_shard", "cp", "tp"};
const std::map<std::string, std::vector<std::string>> kFsdp2Flattened = {
    {"dp", {"dp_replicate", "dp_shard"}},
    {"dp_shard_cp", {"dp_shard", "cp"}},
    {"dp_cp", {"dp_replicate", "dp_shard", "cp"}}};

TEST(PlanTest, ContractExampleFsdp2World16Tp2Cp2) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Fsdp2({.world = 16, .tp = 2, .cp = 2})));
  EXPECT_EQ(plan.strategy(), StrategyKind::kFsdp2);
  EXPECT_EQ(plan.world_size(), 16);
  EXPECT_FALSE(plan.has_explicit_ranks());
  EXPECT_EQ(plan.device_mesh().axis_names(), kFsdp2Axes);
  EXPECT_THAT(plan.device_mesh().shape(), ElementsAre(1, 1, 4, 2, 2));
  const validate::ResolvedSizes& s = plan.sizes();
  EXPECT_EQ(s.pp, 1);
  EXPECT_EQ(s.dp, 4);
  EXPECT_EQ(s.dp_replicate, 1);
  EXPECT_EQ(s.dp_shard, 4);
  EXPECT_EQ(s.cp, 2);
  EXPECT_EQ(s.tp, 2);
  EXPECT_EQ(s.ep, 1);
  EXPECT_EQ(s.ep_shard, 1);
  EXPECT_EQ(s.dp_shard_cp, 8);
  EXPECT_EQ(s.dp_cp, 8);
  EXPECT_FALSE(plan.moe_mesh().has_value());
  EXPECT_THAT(Ranks(plan.ViewGroup(0, "tp")), ElementsAre(0, 1));
  EXPECT_THAT(Ranks(plan.ViewGroup(0, "cp")), ElementsAre(0, 2));
  EXPECT_THAT(Ranks(plan.ViewGroup(0, "dp_shard")), ElementsAre(0, 4, 8, 12));
  EXPECT_THAT(Ranks(plan.ViewGroup(0, "dp")), ElementsAre(0, 4, 8, 12));
  EXPECT_EQ(Ranks(plan.ViewGroup(0, "dp_shard_cp")), Range(0, 16, 2));
  EXPECT_EQ(Ranks(plan.ViewGroup(0, "dp_cp")), Range(0, 16, 2));
  EXPECT_THAT(plan.ViewGroup(0, "ep"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("'ep'")));
  ExpectPlanMatchesBruteForce(plan, kFsdp2Axes, {1, 1, 4, 2, 2}, kFsdp2Flattened, {});
}

TEST(PlanTest, ContractExampleMoeWorld8Tp2Ep4) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Fsdp2({.world = 8, .tp = 2, .ep = 4})));
  ASSERT_TRUE(plan.moe_mesh().has_value());
  EXPECT_EQ(plan.moe_mesh()->ep_shard, 2);
  EXPECT_EQ(plan.moe_mesh()->ep, 4);
  EXPECT_EQ(plan.moe_mesh()->stages, 1);
  EXPECT_EQ(plan.sizes().ep_shard, 2);
  ASSERT_OK_AND_ASSIGN(RankPlan me, plan.QueryRank(0));
  ASSERT_TRUE(me.moe_groups.has_value());
  EXPECT_THAT((*me.moe_groups)[1].group.Ranks(), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT((*me.moe_groups)[0].group.Ranks(), ElementsAre(0, 4));
  ASSERT_OK_AND_ASSIGN(Layout own, plan.moe_mesh()->layout.Submesh(5, {"ep_shard", "ep"}));
  EXPECT_THAT(own.shape(), ElementsAre(2, 4));
  EXPECT_TRUE(own.is_identity());
}

struct Fsdp2Case {
  Sizes sizes;
  std::vector<int64_t> shape;  // expected (pp, dp_replicate, dp_shard, cp, tp)
  bool shuffle_ranks = false;
};

TEST(PlanTest, Fsdp2GroupsMatchBruteForce) {
  const std::vector<Fsdp2Case> cases = {
      {{.world = 8}, {1, 1, 8, 1, 1}},
      {{.world = 8, .dp_replicate = 2}, {1, 2, 4, 1, 1}},
      {{.world = 24, .dp_replicate = 2, .tp = 2, .pp = 2}, {2, 2, 3, 1, 2}},
      {{.world = 32, .dp_replicate = 2, .tp = 2, .pp = 2, .cp = 2}, {2, 2, 2, 2, 2}},
      {{.world = 16, .tp = 2, .pp = 2, .ep = 4}, {2, 1, 4, 1, 2}},
      {{.world = 48, .dp_replicate = 2, .tp = 2, .pp = 2, .cp = 2, .ep = 6}, {2, 2, 3, 2, 2}},
      {{.world = 24, .dp = 6, .tp = 2, .pp = 2, .ep = 4}, {2, 1, 6, 1, 2}, true},
      {{.world = 36, .dp_replicate = 3, .pp = 3, .cp = 2, .ep = 3}, {3, 3, 2, 2, 1}, true},
  };
  uint32_t seed = 11;
  for (const Fsdp2Case& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.shape));
    std::vector<int64_t> ranks;
    std::optional<std::vector<int64_t>> listed;
    Sizes sizes = c.sizes;
    if (c.shuffle_ranks) {
      ranks = Range(100, 100 + *sizes.world);
      std::shuffle(ranks.begin(), ranks.end(), std::mt19937(seed++));
      listed = ranks;
      sizes.world.reset();  // inferred from the list
    }
    ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Fsdp2(sizes, listed)));
    EXPECT_EQ(plan.has_explicit_ranks(), c.shuffle_ranks);
    ExpectPlanMatchesBruteForce(plan, kFsdp2Axes, c.shape, kFsdp2Flattened, ranks,
                                c.sizes.ep.value_or(1));
    EXPECT_EQ(plan.moe_mesh().has_value(), c.sizes.ep.value_or(1) > 1);
    if (plan.moe_mesh().has_value()) {
      EXPECT_EQ(plan.moe_mesh()->stages, c.shape[0]);
    }
  }
}

TEST(PlanTest, RankSubsetInNonSortedOrderWithMoeStages) {
  // Stage s takes ranks[s*R : (s+1)*R] with R = ep_shard * ep = 4.
  const std::vector<int64_t> ranks = {9, 2, 14, 7, 0, 11, 5, 3};
  MeshRequest request = Fsdp2({.pp = 2, .ep = 2}, ranks);
  request.job_world_size = 16;
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(request));
  EXPECT_EQ(plan.world_size(), 16);
  EXPECT_TRUE(plan.has_explicit_ranks());
  EXPECT_THAT(plan.device_mesh().shape(), ElementsAre(2, 1, 4, 1, 1));
  // Stage 0 is {9, 2, 14, 7}, stage 1 is {0, 11, 5, 3}.
  EXPECT_THAT(Ranks(plan.ViewGroup(0, "ep")), ElementsAre(0, 11));
  EXPECT_THAT(Ranks(plan.ViewGroup(0, "ep_shard")), ElementsAre(0, 5));
  EXPECT_THAT(Ranks(plan.ViewGroup(14, "ep")), ElementsAre(14, 7));
  EXPECT_THAT(Ranks(plan.ViewGroup(14, "ep_shard")), ElementsAre(9, 14));
  EXPECT_THAT(Ranks(plan.ViewGroup(14, "pp")), ElementsAre(14, 5));
  EXPECT_THAT(plan.QueryRank(1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("rank 1 is not a member")));
  EXPECT_FALSE(plan.Contains(15));
  EXPECT_TRUE(plan.Contains(3));
}

TEST(PlanTest, TeacherMeshOnOtherRanks) {
  MeshRequest request = Fsdp2({.dp = 1, .tp = 2}, std::vector<int64_t>{2, 3});
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(request));
  EXPECT_EQ(plan.world_size(), 4);  // max(rank) + 1
  EXPECT_THAT(Ranks(plan.ViewGroup(3, "tp")), ElementsAre(2, 3));
  EXPECT_THAT(Ranks(plan.ViewGroup(3, "dp_shard_cp")), ElementsAre(3));
  EXPECT_FALSE(plan.Contains(0));
}

TEST(PlanTest, MegatronFsdpWithContextParallel) {
  ASSERT_OK_AND_ASSIGN(config::StrategyKind kind, config::ParseStrategy("Megatron-FSDP"));
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Request(kind, {.world = 16, .tp = 2, .cp = 2})));
  EXPECT_EQ(plan.strategy(), StrategyKind::kMegatronFsdp);
  const validate::ResolvedSizes& s = plan.sizes();
  EXPECT_EQ(s.dp, 4);
  EXPECT_EQ(s.cp, 2);
  EXPECT_EQ(s.tp, 2);
  EXPECT_EQ(s.dp_cp, 8);
  for (const auto& absent : {s.pp, s.dp_replicate, s.dp_shard, s.ep, s.ep_shard, s.dp_shard_cp}) {
    EXPECT_FALSE(absent.has_value());
  }
  ExpectPlanMatchesBruteForce(plan, {"dp", "cp", "tp"}, {4, 2, 2}, {{"dp_cp", {"dp", "cp"}}}, {});
}

TEST(PlanTest, MegatronFsdpWithoutContextParallelHasNoDpCp) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan,
                       PlanMesh(Request(StrategyKind::kMegatronFsdp, {.world = 8, .tp = 4})));
  EXPECT_FALSE(plan.sizes().dp_cp.has_value());
  EXPECT_THAT(plan.ViewGroup(0, "dp_cp"), StatusIs(absl::StatusCode::kNotFound, _));
  ExpectPlanMatchesBruteForce(plan, {"dp", "cp", "tp"}, {2, 1, 4}, {}, {});
}

TEST(PlanTest, DdpIsOneAxisOverEveryRank) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Request(StrategyKind::kDdp, {.world = 6})));
  EXPECT_EQ(plan.sizes().dp, 6);
  EXPECT_FALSE(plan.sizes().tp.has_value());
  ExpectPlanMatchesBruteForce(plan, {"dp"}, {6}, {}, {});
  const std::vector<GroupKind> kinds = DistinctGroupKinds(plan);
  ASSERT_EQ(kinds.size(), 1u);
  EXPECT_THAT(kinds[0].names, ElementsAre("dp"));
  EXPECT_TRUE(kinds[0].whole_world);
  EXPECT_FALSE(kinds[0].trivial);
  ASSERT_OK_AND_ASSIGN(MeshPlan explicit_dp,
                       PlanMesh(Request(StrategyKind::kDdp, {.world = 6, .dp = 6})));
  EXPECT_EQ(explicit_dp.sizes().dp, 6);
}

TEST(PlanTest, DpMinusOneMeansInfer) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Fsdp2({.world = 8, .dp = -1, .tp = 2})));
  EXPECT_EQ(plan.sizes().dp, 4);
}

// Every error of contract §3 and §4, in order, with its message.

void ExpectError(const MeshRequest& request, const std::string& message) {
  EXPECT_THAT(PlanMesh(request), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)));
}

TEST(PlanErrorTest, NonPositiveSizesNameTheField) {
  ExpectError(Fsdp2({.world = 8, .tp = 0}), "tp_size must be a positive integer, got 0");
  ExpectError(Fsdp2({.world = 8, .pp = -2}), "pp_size must be a positive integer, got -2");
  ExpectError(Fsdp2({.world = 8, .cp = 0}), "cp_size must be a positive integer, got 0");
  ExpectError(Fsdp2({.world = 8, .ep = -1}), "ep_size must be a positive integer, got -1");
  ExpectError(Fsdp2({.world = 8, .dp_replicate = 0}),
              "dp_replicate_size must be a positive integer, got 0");
  ExpectError(Fsdp2({.world = 8, .dp = 0}), "dp_size must be a positive integer, got 0");
  ExpectError(Fsdp2({.world = 8, .dp = -2}), "dp_size must be a positive integer, got -2");
  ExpectError(Fsdp2({.world = 0}), "world_size must be a positive integer, got 0");
}

TEST(PlanErrorTest, WorldSizeIsRequiredWithoutRanks) {
  ExpectError(Fsdp2({.tp = 2}), "world_size is required");
}

TEST(PlanErrorTest, DpReplicateOnlyWithFsdp2) {
  ExpectError(Request(StrategyKind::kMegatronFsdp, {.world = 8, .dp_replicate = 2, .pp = 2}),
              "dp_replicate_size is only supported with FSDP2Config");
  ExpectError(Request(StrategyKind::kDdp, {.world = 8, .dp_replicate = 2, .tp = 2}),
              "dp_replicate_size is only supported with FSDP2Config");
}

TEST(PlanErrorTest, MegatronFsdpDoesNotSupportPipelineParallelism) {
  ExpectError(Request(StrategyKind::kMegatronFsdp, {.world = 8, .pp = 2, .ep = 2}),
              "megatron_fsdp does not support pipeline parallelism");
}

TEST(PlanErrorTest, MegatronFsdpDoesNotSupportExpertParallelism) {
  ExpectError(Request(StrategyKind::kMegatronFsdp, {.world = 8, .ep = 2}),
              "megatron_fsdp does not support expert parallelism");
}

TEST(PlanErrorTest, DdpDoesNotSupportTensorParallelism) {
  ExpectError(Request(StrategyKind::kDdp, {.world = 8, .tp = 2, .pp = 2, .cp = 2, .ep = 2}),
              "ddp does not support tensor parallelism");
}

TEST(PlanErrorTest, DdpDoesNotSupportPipelineParallelism) {
  ExpectError(Request(StrategyKind::kDdp, {.world = 8, .pp = 2, .cp = 2, .ep = 2}),
              "ddp does not support pipeline parallelism");
}

TEST(PlanErrorTest, DdpDoesNotSupportContextParallelism) {
  ExpectError(Request(StrategyKind::kDdp, {.world = 8, .cp = 2, .ep = 2}),
              "ddp does not support context parallelism");
}

TEST(PlanErrorTest, DdpDoesNotSupportExpertParallelism) {
  ExpectError(Request(StrategyKind::kDdp, {.world = 8, .ep = 2}),
              "ddp does not support expert parallelism");
}

TEST(PlanErrorTest, Fsdp2WorldMustBeDivisible) {
  ExpectError(Fsdp2({.world = 12, .tp = 2, .pp = 5, .cp = 1}),
              "world_size (12) must be divisible by (tp_size * cp_size * pp_size) "
              "(2 * 1 * 5 = 10)");
}

TEST(PlanErrorTest, MegatronFsdpWorldMustBeDivisible) {
  ExpectError(Request(StrategyKind::kMegatronFsdp, {.world = 10, .tp = 4}),
              "world_size (10) must be divisible by (tp_size * cp_size) (4 * 1 = 4)");
}

TEST(PlanErrorTest, DpMustBeAMultipleOfDpReplicate) {
  ExpectError(Fsdp2({.world = 6, .dp_replicate = 4}),
              "dp_size must be a multiple of dp_replicate_size");
}

TEST(PlanErrorTest, DpReplicateMustBeLessThanDp) {
  ExpectError(Fsdp2({.world = 4, .dp_replicate = 4}),
              "dp_replicate_size=4 must be less than dp_size=4 since DDP usecase is not "
              "supported by FSDP2");
}

TEST(PlanErrorTest, NonPpSizeMustBeAMultipleOfEp) {
  ExpectError(Fsdp2({.world = 16, .pp = 2, .ep = 3}),
              "non_pp_size=8 must be a multiple of ep_size=3");
}

// §3 (changed in 0.7.0): an explicit dp whose product is larger than the world fails with
// PyTorch's message; a smaller one is accepted and the mesh leaves ranks out.
TEST(PlanErrorTest, ExplicitDpLargerThanTheWorldIsRejected) {
  ExpectError(Fsdp2({.world = 8, .dp = 4, .tp = 4}),
              "Mesh should not be bigger than default world size 8, but found 16 ranks!");
  ExpectError(Request(StrategyKind::kMegatronFsdp, {.world = 8, .dp = 5, .tp = 2}),
              "Mesh should not be bigger than default world size 8, but found 10 ranks!");
}

TEST(PlanTest, ExplicitDpSmallerThanTheWorldLeavesRanksOut) {
  absl::StatusOr<MeshPlan> plan = PlanMesh(Fsdp2({.world = 8, .dp = 2, .tp = 2}));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->device_mesh().shape(), (std::vector<int64_t>{1, 1, 2, 1, 2}));
  EXPECT_EQ(plan->world_size(), 8);
  EXPECT_TRUE(plan->has_explicit_ranks());
  EXPECT_EQ(plan->device_mesh().size(), 4);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(plan->device_mesh().RankAtPosition(i), i);
  absl::StatusOr<MeshPlan> megatron =
      PlanMesh(Request(StrategyKind::kMegatronFsdp, {.world = 8, .dp = 3, .tp = 2}));
  ASSERT_TRUE(megatron.ok()) << megatron.status();
  EXPECT_EQ(megatron->device_mesh().size(), 6);
  EXPECT_EQ(megatron->world_size(), 8);
}

TEST(PlanErrorTest, ChecksRunInTheContractsOrder) {
  // dp % dp_replicate is checked before the product, as in the reference.
  ExpectError(Fsdp2({.world = 8, .dp = 3, .dp_replicate = 2}),
              "dp_size must be a multiple of dp_replicate_size");
  // Sizes are checked before the strategy.
  ExpectError(Request(StrategyKind::kDdp, {.world = 8, .tp = 0}),
              "tp_size must be a positive integer, got 0");
}

TEST(PlanErrorTest, RankListErrors) {
  ExpectError(Fsdp2({.dp = 2, .tp = 2}, Range(0, 6)), "mesh ranks (6) must match mesh size (4)");
  ExpectError(Fsdp2({.world = 4}, Range(0, 6)), "mesh ranks (6) must match mesh size (4)");
  ExpectError(Fsdp2({}, std::vector<int64_t>{0, 1, 1, 2}), "mesh ranks must be unique");
  ExpectError(Fsdp2({}, std::vector<int64_t>{}), "mesh ranks must not be empty");
  ExpectError(Fsdp2({}, std::vector<int64_t>{0, -1}), "mesh rank -1 is outside the job's world");
  MeshRequest outside = Fsdp2({}, std::vector<int64_t>{0, 8});
  outside.job_world_size = 8;
  // §5 (changed in 0.7.0): PyTorch's message, for the first such rank in the list.
  ExpectError(outside, "Rank 8 is out of range. Valid ranks are 0 to 7 (world_size=8)");
  MeshRequest smaller_job = Fsdp2({.world = 8});
  smaller_job.job_world_size = 4;
  ExpectError(smaller_job, "must not exceed the job's world size (4)");
}

TEST(PlanErrorTest, HugeSizesAreRejectedNamingTheValue) {
  ExpectError(Fsdp2({.world = int64_t{1} << 31}),
              "world_size must be at most 2147483647, got 2147483648");
  ExpectError(Fsdp2({.world = 8, .tp = int64_t{1} << 40}),
              "tp_size must be at most 2147483647, got 1099511627776");
  ExpectError(
      Fsdp2({.world = kMaxMeshSize, .tp = kMaxMeshSize, .pp = kMaxMeshSize, .cp = kMaxMeshSize}),
      "(2147483647 * 2147483647 * 2147483647, which overflows int64)");
  ExpectError(Fsdp2({.world = 8, .dp = kMaxMeshSize, .tp = kMaxMeshSize, .cp = kMaxMeshSize}),
              "overflows int64");
}

TEST(PlanTest, WorldTwoToTheThirtyOneMinusOneAnswersForOneRank) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Fsdp2({.world = kMaxMeshSize})));
  EXPECT_EQ(plan.sizes().dp_shard, kMaxMeshSize);
  const int64_t rank = kMaxMeshSize - 1;
  ASSERT_OK_AND_ASSIGN(RankPlan me, plan.QueryRank(rank));
  EXPECT_THAT(me.coordinate, ElementsAre(0, 0, rank, 0, 0));
  EXPECT_THAT(me.groups[4].group.Ranks(), ElementsAre(rank));  // tp
  EXPECT_EQ(me.groups[2].group.size(), kMaxMeshSize);          // dp_shard, never listed here
  EXPECT_EQ(me.groups[2].group.local_rank(), rank);
  EXPECT_EQ(me.groups[2].group.RankAt(17), 17);
}

TEST(PlanTest, LargeMoeWorldAnswersForOneRank) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan,
                       PlanMesh(Fsdp2({.world = 1 << 30, .tp = 8, .pp = 8, .cp = 4, .ep = 16})));
  const int64_t non_pp = (int64_t{1} << 30) / 8;
  EXPECT_EQ(plan.sizes().dp, non_pp / 32);
  EXPECT_EQ(plan.moe_mesh()->ep_shard, non_pp / 16);
  const int64_t rank = 3 * non_pp + 12345;  // stage 3
  ASSERT_OK_AND_ASSIGN(GroupView ep, plan.ViewGroup(rank, "ep"));
  const int64_t block = rank / 16 * 16;
  EXPECT_EQ(ep.Ranks(), Range(block, block + 16));
  ASSERT_OK_AND_ASSIGN(GroupView ep_shard, plan.ViewGroup(rank, "ep_shard"));
  EXPECT_EQ(ep_shard.RankAt(0), 3 * non_pp + 12345 % 16);
  EXPECT_EQ(ep_shard.RankAt(ep_shard.size() - 1), 4 * non_pp - 16 + 12345 % 16);
}

TEST(PlanTest, DistinctGroupKindsMergeIdenticalPartitions) {
  const std::vector<Sizes> cases = {
      {.world = 16, .tp = 2, .cp = 2},
      {.world = 16, .dp_replicate = 2, .tp = 2},
      {.world = 32, .dp_replicate = 2, .tp = 2, .pp = 2, .cp = 2, .ep = 4},
      {.world = 8, .tp = 2, .ep = 2},
      {.world = 8, .tp = 2, .ep = 8},
  };
  for (const Sizes& sizes : cases) {
    ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Fsdp2(sizes)));
    // Brute force: the partition of every name, over every rank.
    std::map<std::string, std::set<std::vector<int64_t>>> partitions;
    for (int64_t rank = 0; rank < *sizes.world; ++rank) {
      ASSERT_OK_AND_ASSIGN(RankPlan me, plan.QueryRank(rank));
      for (const NamedGroup& g : me.groups) partitions[g.name].insert(g.group.Ranks());
      if (me.moe_groups) {
        for (const NamedGroup& g : *me.moe_groups) partitions[g.name].insert(g.group.Ranks());
      }
    }
    const std::vector<GroupKind> kinds = DistinctGroupKinds(plan);
    std::set<std::string> seen;
    for (size_t k = 0; k < kinds.size(); ++k) {
      for (const std::string& name : kinds[k].names) {
        EXPECT_TRUE(seen.insert(name).second) << name;
        EXPECT_EQ(partitions[name], partitions[kinds[k].names[0]]) << name;
        EXPECT_EQ(kinds[k].group_size, static_cast<int64_t>(partitions[name].begin()->size()));
        EXPECT_EQ(kinds[k].group_count, static_cast<int64_t>(partitions[name].size()));
      }
      EXPECT_EQ(kinds[k].trivial, kinds[k].group_size == 1);
      EXPECT_EQ(kinds[k].whole_world, kinds[k].group_count == 1);
      for (size_t other = 0; other < k; ++other) {
        EXPECT_NE(partitions[kinds[k].names[0]], partitions[kinds[other].names[0]]);
      }
    }
    EXPECT_EQ(seen.size(), partitions.size());
  }
}

TEST(PlanTest, Fsdp2SharesDpWithDpShardAndDpShardCpWithDpCp) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(Fsdp2({.world = 8, .tp = 2})));
  const std::vector<GroupKind> kinds = DistinctGroupKinds(plan);
  std::vector<std::vector<std::string>> names;
  for (const GroupKind& kind : kinds) names.push_back(kind.names);
  EXPECT_THAT(
      names, ElementsAre(ElementsAre("pp", "dp_replicate", "cp"),
                         ElementsAre("dp_shard", "dp", "dp_shard_cp", "dp_cp"), ElementsAre("tp")));
  EXPECT_TRUE(kinds[0].trivial);
  EXPECT_FALSE(kinds[1].whole_world);
}

TEST(PlanTest, PlanMeshOverAClosedFormMatchesPlanMeshOverTheList) {
  int checked = 0;
  for (const Sizes& s : {Sizes{.world = 16, .tp = 2, .cp = 2}, Sizes{.world = 24, .tp = 2, .ep = 4},
                         Sizes{.world = 12, .pp = 3, .cp = 2}, Sizes{.world = 16, .dp = 4, .tp = 4},
                         Sizes{.world = 32, .dp_replicate = 2, .tp = 2, .pp = 2, .ep = 2}}) {
    for (int64_t period = 1; period <= *s.world + 1; ++period) {
      SCOPED_TRACE(::testing::Message() << "world " << *s.world << " period " << period);
      const std::vector<int64_t> sorted = SortedByResidue(*s.world, period);
      ASSERT_OK_AND_ASSIGN(MeshPlan listed, PlanMesh(Request(StrategyKind::kFsdp2, s, sorted)));
      ASSERT_OK_AND_ASSIGN(Layout members,
                           Layout::CreateGatheredByResidue({*s.world}, {"ranks"}, period));
      ASSERT_OK_AND_ASSIGN(MeshPlan closed,
                           PlanMeshOver(Request(StrategyKind::kFsdp2, s), members));
      EXPECT_TRUE(closed.has_explicit_ranks());
      EXPECT_EQ(closed.world_size(), listed.world_size());
      EXPECT_EQ(closed.device_mesh().DebugString(), listed.device_mesh().DebugString());
      EXPECT_EQ(closed.moe_mesh().has_value(), listed.moe_mesh().has_value());
      for (int64_t p = 0; p < *s.world; ++p) {
        EXPECT_EQ(closed.device_mesh().RankAtPosition(p), sorted[static_cast<size_t>(p)]);
        if (closed.moe_mesh().has_value()) {
          EXPECT_EQ(closed.moe_mesh()->layout.RankAtPosition(p), sorted[static_cast<size_t>(p)]);
        }
      }
      const std::vector<GroupKind> a = DistinctGroupKinds(closed);
      const std::vector<GroupKind> b = DistinctGroupKinds(listed);
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) {
        EXPECT_EQ(a[k].names, b[k].names);
        EXPECT_EQ(a[k].trivial, b[k].trivial);
        EXPECT_EQ(a[k].whole_world, b[k].whole_world);
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 90);
  ASSERT_OK_AND_ASSIGN(Layout members, Layout::CreateGatheredByResidue({8}, {"ranks"}, 2));
  EXPECT_THAT(
      PlanMeshOver(Request(StrategyKind::kFsdp2, {.tp = 2}, std::vector<int64_t>{0, 1}), members),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("given twice")));
  EXPECT_THAT(PlanMeshOver(Request(StrategyKind::kFsdp2, {.world = 16, .tp = 2}), members),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(8) must match")));
  MeshRequest small = Request(StrategyKind::kFsdp2, {.tp = 2});
  small.job_world_size = 6;
  EXPECT_THAT(PlanMeshOver(small, members),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mesh rank 7 is outside")));
}

TEST(PlanTest, HsdpSubmeshView) {
  ASSERT_OK_AND_ASSIGN(MeshPlan plan,
                       PlanMesh(Fsdp2({.world = 16, .dp_replicate = 2, .tp = 2, .cp = 2})));
  ASSERT_OK_AND_ASSIGN(Layout hsdp, plan.Submesh(5, {"dp_replicate", "dp_shard_cp"}));
  EXPECT_THAT(hsdp.axis_names(), ElementsAre("dp_replicate", "dp_shard_cp"));
  EXPECT_THAT(hsdp.shape(), ElementsAre(2, 4));
  ASSERT_OK_AND_ASSIGN(Group replicate, hsdp.GroupOf(5, "dp_replicate"));
  EXPECT_EQ(replicate.ranks, Ranks(plan.ViewGroup(5, "dp_replicate")));
  ASSERT_OK_AND_ASSIGN(Group shard, hsdp.GroupOf(5, "dp_shard_cp"));
  EXPECT_EQ(shard.ranks, Ranks(plan.ViewGroup(5, "dp_shard_cp")));
  ASSERT_OK_AND_ASSIGN(Layout tp, plan.Submesh(5, {"tp"}));
  EXPECT_THAT(*tp.rank_list(), ElementsAre(4, 5));
  EXPECT_THAT(plan.Submesh(5, {"dp_shard_cp", "dp_replicate"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mesh order")));
  EXPECT_THAT(plan.Submesh(5, {"dp", "dp_shard"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disjoint")));
}

}  // namespace
}  // namespace nmesh::mesh
