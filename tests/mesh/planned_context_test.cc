#include "nmesh/mesh/planned_context.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::mesh {
namespace {

using ::nmesh::config::MeshRequest;
using ::nmesh::config::StrategyKind;
using ::testing::ElementsAre;
using ::testing::Optional;

constexpr MeshAxisName kPp = MeshAxisName::kPp;
constexpr MeshAxisName kCp = MeshAxisName::kCp;
constexpr MeshAxisName kTp = MeshAxisName::kTp;
constexpr MeshAxisName kEp = MeshAxisName::kEp;
constexpr MeshAxisName kEpShard = MeshAxisName::kEpShard;
constexpr MeshAxisName kDpReplicate = MeshAxisName::kDpReplicate;
constexpr MeshAxisName kDpShardCp = MeshAxisName::kDpShardCp;

MeshPlan Plan(StrategyKind strategy, int64_t world, int64_t tp = 1, int64_t cp = 1, int64_t pp = 1,
              int64_t ep = 1, int64_t dp_replicate = 1) {
  MeshRequest request;
  request.strategy = strategy;
  request.sizes.world_size = world;
  request.sizes.tp = tp;
  request.sizes.cp = cp;
  request.sizes.pp = pp;
  request.sizes.ep = ep;
  request.sizes.dp_replicate = dp_replicate;
  absl::StatusOr<MeshPlan> plan = PlanMesh(request);
  NMESH_CHECK(plan.ok()) << plan.status();
  return *std::move(plan);
}

TEST(PlannedContextTest, Fsdp2ReportsEverySizeAndTheHsdpAxisNames) {
  const PlannedContext context = PlanContext(Plan(StrategyKind::kFsdp2, 16, /*tp=*/2, /*cp=*/2));
  const validate::ResolvedSizes& s = context.sizes;
  EXPECT_EQ(s.pp_size(), 1);
  EXPECT_FALSE(s.pp_enabled());
  EXPECT_EQ(s.tp_size(), 2);
  EXPECT_EQ(s.cp_size(), 2);
  EXPECT_EQ(s.ep_size(), 1);
  EXPECT_THAT(s.dp_size(), Optional(4));
  EXPECT_THAT(s.dp_replicate_size(), Optional(1));
  EXPECT_EQ(s.dp_shard_size(), 4);
  const ParallelizeAxisKwargs& kw = context.parallelize_axis_kwargs;
  // Even with dp_replicate = 1.
  EXPECT_THAT(kw.dp_axis_names, ElementsAre(kDpReplicate, kDpShardCp));
  EXPECT_THAT(kw.cp_axis_name, Optional(kCp));
  EXPECT_THAT(kw.tp_axis_name, Optional(kTp));
  EXPECT_EQ(kw.ep_axis_name, std::nullopt);
  EXPECT_EQ(kw.ep_shard_axis_names, std::nullopt);
  EXPECT_EQ(context.pipeline_axis_kwargs.pp_axis_name, kPp);
  EXPECT_THAT(context.pipeline_axis_kwargs.parallelize.dp_axis_names,
              ElementsAre(kDpReplicate, kDpShardCp));
}

TEST(PlannedContextTest, Fsdp2WithPipelineAndExperts) {
  const PlannedContext context =
      PlanContext(Plan(StrategyKind::kFsdp2, 32, /*tp=*/2, /*cp=*/1, /*pp=*/2, /*ep=*/4,
                       /*dp_replicate=*/2));
  EXPECT_EQ(context.sizes.pp_size(), 2);
  EXPECT_TRUE(context.sizes.pp_enabled());
  EXPECT_EQ(context.sizes.ep_size(), 4);
  EXPECT_THAT(context.sizes.dp_size(), Optional(8));
  EXPECT_THAT(context.sizes.dp_replicate_size(), Optional(2));
  EXPECT_EQ(context.sizes.dp_shard_size(), 4);
  EXPECT_THAT(context.parallelize_axis_kwargs.ep_axis_name, Optional(kEp));
  ASSERT_TRUE(context.parallelize_axis_kwargs.ep_shard_axis_names.has_value());
  EXPECT_THAT(*context.parallelize_axis_kwargs.ep_shard_axis_names, ElementsAre(kEpShard));
}

TEST(PlannedContextTest, MegatronFsdpHasNoReplicaAxis) {
  const PlannedContext context =
      PlanContext(Plan(StrategyKind::kMegatronFsdp, 16, /*tp=*/2, /*cp=*/2));
  EXPECT_THAT(context.sizes.dp_size(), Optional(4));
  EXPECT_EQ(context.sizes.dp_replicate_size(), std::nullopt);
  EXPECT_EQ(context.sizes.dp_shard_size(), 1);
  EXPECT_EQ(context.sizes.cp_size(), 2);
  EXPECT_THAT(context.parallelize_axis_kwargs.dp_axis_names, ElementsAre(kDpShardCp));
  EXPECT_THAT(context.parallelize_axis_kwargs.cp_axis_name, Optional(kCp));
}

TEST(PlannedContextTest, DdpReportsTheWorldAsDp) {
  const PlannedContext context = PlanContext(Plan(StrategyKind::kDdp, 8));
  EXPECT_THAT(context.sizes.dp_size(), Optional(8));
  EXPECT_EQ(context.sizes.dp_replicate_size(), std::nullopt);
  EXPECT_EQ(context.sizes.tp_size(), 1);
  EXPECT_EQ(context.parallelize_axis_kwargs.tp_axis_name, std::nullopt);
  EXPECT_EQ(context.parallelize_axis_kwargs.cp_axis_name, std::nullopt);
  EXPECT_THAT(context.parallelize_axis_kwargs.dp_axis_names, ElementsAre(kDpShardCp));
}

TEST(PlannedContextTest, MissingMeshesGiveTheDefaults) {
  const MeshView none;
  const validate::ResolvedSizes s = ContextSizesOf(none);
  EXPECT_EQ(s.pp_size(), 1);
  EXPECT_EQ(s.tp_size(), 1);
  EXPECT_EQ(s.cp_size(), 1);
  EXPECT_EQ(s.ep_size(), 1);
  EXPECT_EQ(s.dp_size(), std::nullopt);
  EXPECT_EQ(s.dp_replicate_size(), std::nullopt);
  EXPECT_EQ(s.dp_shard_size(), 1);
  EXPECT_THAT(DpAxisNamesOf(none), ElementsAre(kDpShardCp));
  const ParallelizeAxisKwargs kw = ParallelizeAxisKwargsOf(none);
  EXPECT_EQ(kw.cp_axis_name, std::nullopt);
  EXPECT_EQ(kw.tp_axis_name, std::nullopt);
  EXPECT_EQ(PipelineAxisKwargsOf(none).pp_axis_name, kPp);
}

TEST(PlannedContextTest, AxisNamesNeedNativeAxesWhileSizesReadGroupsToo) {
  MeshView view;
  view.device_mesh = {{kDpReplicate, 2, /*native=*/true}, {kCp, 4, /*native=*/false}};
  EXPECT_EQ(ContextSizesOf(view).cp_size(), 4);
  EXPECT_EQ(ParallelizeAxisKwargsOf(view).cp_axis_name, std::nullopt);
  // A native dp_replicate without a dp_shard_cp group is not the HSDP pair.
  EXPECT_THAT(DpAxisNamesOf(view), ElementsAre(kDpShardCp));
  view.device_mesh->push_back({kDpShardCp, 2, /*native=*/false});
  EXPECT_THAT(DpAxisNamesOf(view), ElementsAre(kDpReplicate, kDpShardCp));
}

TEST(PlannedContextTest, DpGroupNamesAreGroupsTheMeshHas) {
  // The contract's dp_axis_names names dp_shard_cp on every mesh; the groups a mesh has, by hand:
  // fsdp2 (dp_replicate, dp_shard_cp); megatron_fsdp (dp, cp, tp) + dp_cp when cp > 1: dp_cp,
  // else dp; ddp (dp): dp.
  struct Case {
    MeshPlan plan;
    std::vector<MeshAxisName> want;
  };
  const Case cases[] = {
      {Plan(StrategyKind::kFsdp2, 8, 2, 2), {kDpReplicate, kDpShardCp}},
      {Plan(StrategyKind::kMegatronFsdp, 8, 2, 2), {MeshAxisName::kDpCp}},
      {Plan(StrategyKind::kMegatronFsdp, 8, 2, 1), {MeshAxisName::kDp}},
      {Plan(StrategyKind::kDdp, 4), {MeshAxisName::kDp}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.plan.device_mesh().DebugString());
    const MeshView view = MeshViewOf(c.plan);
    EXPECT_EQ(DpGroupNamesOf(view), c.want);
    for (MeshAxisName name : DpGroupNamesOf(view)) {
      EXPECT_TRUE(c.plan.ResolveGroup(MeshAxisNameString(name)).ok());
    }
  }
  // The contract's kwarg stays as it is.
  EXPECT_THAT(DpAxisNamesOf(MeshViewOf(Plan(StrategyKind::kDdp, 4))), ElementsAre(kDpShardCp));
}

}  // namespace
}  // namespace nmesh::mesh
