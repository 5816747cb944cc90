// MeshContext over live DeviceMeshes (contract §7), run under mpirun -np 1, 2, 4 and 8 over every
// backend factory (tests/comm/backends.h). Expected sizes come from the specs' own arithmetic,
// never from the plan.
#include "nmesh/mesh/context.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/config/parallelizer_config.h"
#include "nmesh/config/strategy_config.h"
#include "nmesh/mesh/axis_name.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/mesh/planned_context.h"
#include "nmesh/tests/mesh/mesh_runtime_testing.h"

namespace nmesh::mesh {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;
using namespace ::nmesh::mesh::testing;  // NOLINT: test helpers

using config::StrategyKind;
using A = MeshAxisName;

class MeshContextTest : public BackendWorldTest {};

DeviceMesh BuildOrDie(const Spec& spec, comm::Communicator& world) {
  absl::StatusOr<MeshPlan> plan = PlanMesh(RequestOf(spec, world.size()));
  NMESH_CHECK(plan.ok()) << plan.status();
  absl::StatusOr<DeviceMesh> mesh = DeviceMesh::Create(*plan, world);
  NMESH_CHECK(mesh.ok()) << mesh.status();
  return *std::move(mesh);
}

absl::StatusOr<MeshContext> ContextOf(const DeviceMesh& mesh, StrategyKind strategy) {
  return MeshContext::FromMeshes(mesh, mesh.moe_mesh(), config::DefaultStrategyConfig(strategy));
}

TEST_P(MeshContextTest, SizesAndKwargsOfFsdp2ComeFromTheCommunicators) {
  auto world = World();
  const int np = world->size();
  std::vector<Spec> specs = {{.size = np}};
  if (np >= 2) specs.push_back({.tp = 2, .size = np});
  if (np >= 4) specs.push_back({.dp_replicate = 2, .size = np});
  if (np >= 4) specs.push_back({.pp = 2, .ep = 2, .size = np});
  if (np == 8) specs.push_back({.pp = 2, .cp = 2, .tp = 2, .size = np});
  for (const Spec& s : specs) {
    const DeviceMesh mesh = BuildOrDie(s, *world);
    ASSERT_OK_AND_ASSIGN(MeshContext context, ContextOf(mesh, StrategyKind::kFsdp2));
    const int64_t dp = np / (s.tp * s.cp * s.pp);
    EXPECT_EQ(context.pp_size(), s.pp);
    EXPECT_EQ(context.pp_enabled(), s.pp > 1);
    EXPECT_EQ(context.tp_size(), s.tp);
    EXPECT_EQ(context.cp_size(), s.cp);
    EXPECT_EQ(context.ep_size(), s.ep);
    EXPECT_EQ(context.dp_size(), dp);
    EXPECT_EQ(context.dp_replicate_size(), s.dp_replicate);
    EXPECT_EQ(context.dp_shard_size(), dp / s.dp_replicate);
    // Every FSDP2 mesh has a native dp_replicate axis and a dp_shard_cp group.
    EXPECT_EQ(context.dp_axis_names(), (std::vector<A>{A::kDpReplicate, A::kDpShardCp}));
    const ParallelizeAxisKwargs kwargs = context.parallelize_axis_kwargs();
    EXPECT_EQ(kwargs.cp_axis_name, A::kCp);
    EXPECT_EQ(kwargs.tp_axis_name, A::kTp);
    if (s.ep > 1) {
      EXPECT_EQ(kwargs.ep_axis_name, A::kEp);
      EXPECT_EQ(kwargs.ep_shard_axis_names, std::vector<A>{A::kEpShard});
    } else {
      EXPECT_EQ(kwargs.ep_axis_name, std::nullopt);
      EXPECT_EQ(kwargs.ep_shard_axis_names, std::nullopt);
    }
    const PipelineAxisKwargs pipeline = context.pipeline_axis_kwargs();
    EXPECT_EQ(pipeline.pp_axis_name, A::kPp);
    EXPECT_EQ(pipeline.parallelize.dp_axis_names, kwargs.dp_axis_names);
    EXPECT_EQ(pipeline.parallelize.ep_axis_name, kwargs.ep_axis_name);
  }
}

TEST_P(MeshContextTest, MegatronFsdpAndDdpUseTheirNativeDpAxis) {
  auto world = World();
  const int np = world->size();
  const DeviceMesh ddp = BuildOrDie({.strategy = StrategyKind::kDdp, .size = np}, *world);
  ASSERT_OK_AND_ASSIGN(MeshContext ddp_context, ContextOf(ddp, StrategyKind::kDdp));
  EXPECT_EQ(ddp_context.dp_size(), np);
  EXPECT_EQ(ddp_context.dp_replicate_size(), std::nullopt);
  EXPECT_EQ(ddp_context.dp_shard_size(), 1);
  EXPECT_EQ(ddp_context.dp_axis_names(), std::vector<A>{A::kDpShardCp});
  EXPECT_EQ(ddp_context.parallelize_axis_kwargs().tp_axis_name, std::nullopt);
  if (np < 2) return;
  const DeviceMesh megatron =
      BuildOrDie({.strategy = StrategyKind::kMegatronFsdp, .cp = 2, .size = np}, *world);
  ASSERT_OK_AND_ASSIGN(MeshContext context, ContextOf(megatron, StrategyKind::kMegatronFsdp));
  EXPECT_EQ(context.dp_size(), np / 2);
  EXPECT_EQ(context.cp_size(), 2);
  EXPECT_EQ(context.dp_replicate_size(), std::nullopt);
  EXPECT_EQ(context.parallelize_axis_kwargs().cp_axis_name, A::kCp);
}

TEST(MeshContextNoMeshTest, MissingMeshesGiveTheDefaults) {
  ASSERT_OK_AND_ASSIGN(MeshContext context, MeshContext::FromMeshes(std::nullopt, std::nullopt));
  // The default values are planned_context_test's; here: without meshes nothing is read.
  EXPECT_FALSE(context.View().device_mesh.has_value());
  EXPECT_FALSE(context.View().moe_mesh.has_value());
  EXPECT_FALSE(context.pp_enabled());
  EXPECT_EQ(context.tp_size(), 1);
  EXPECT_EQ(context.dp_size(), std::nullopt);
  EXPECT_EQ(context.parallelize_axis_kwargs().ep_axis_name, std::nullopt);
}

TEST_P(MeshContextTest, DistributedSetupChecksRunAtConstructionAndOnRequest) {
  auto world = World();
  const int np = world->size();
  if (np < 2) GTEST_SKIP() << "needs tp 2";
  const DeviceMesh tp2 = BuildOrDie({.tp = 2, .size = np}, *world);
  EXPECT_THAT(ContextOf(tp2, StrategyKind::kDdp),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ddp does not support tensor parallelism, got tp_size=2")));
  EXPECT_THAT(MeshContext::FromMeshes(tp2, std::nullopt,
                                      config::DefaultStrategyConfig(StrategyKind::kFsdp2),
                                      config::PipelineConfig{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pipeline_config requires pp_size > 1")));
  // Without a strategy config nothing is checked at construction, but the check can be run.
  ASSERT_OK_AND_ASSIGN(MeshContext context,
                       MeshContext::FromMeshes(tp2, std::nullopt, std::nullopt, std::nullopt,
                                               config::MoEParallelizerConfig{}));
  EXPECT_THAT(context.ValidateDistributedSetup(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("moe_parallel_config requires ep_size > 1")));
  context.moe_config().reset();
  context.strategy_config() = config::DefaultStrategyConfig(StrategyKind::kMegatronFsdp);
  EXPECT_OK(context.ValidateDistributedSetup());
}

TEST_P(MeshContextTest, UnknownAxisNamesAreRejected) {
  auto world = World();
  const int np = world->size();
  if (np < 4) GTEST_SKIP() << "needs cp 4";
  const DeviceMesh mesh = BuildOrDie({.cp = 4, .size = np}, *world);
  ASSERT_OK_AND_ASSIGN(DeviceMesh cp, mesh.Unflatten("cp", {2, 2}, {"ulysses", "ring"}));
  EXPECT_THAT(
      MeshContext::FromMeshes(cp, std::nullopt),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("device_mesh contains unknown axis names {'ring', 'ulysses'}; "
                         "allowed names are ['cp', 'dp', 'dp_cp', 'dp_replicate', 'dp_shard', "
                         "'dp_shard_cp', 'ep', 'ep_shard', 'pp', 'tp']")));
  EXPECT_THAT(MeshContext::FromMeshes(std::nullopt, cp),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("moe_mesh contains unknown axis names {")));
}

// Contract §7 (changed in 0.7.0): ring/Ulysses degrees are recorded, not a mesh; §5: a wrong
// product gives create_ring_ulysses_mesh's message.
TEST_P(MeshContextTest, RingUlyssesDegrees) {
  auto world = World();
  const int np = world->size();
  if (np < 4) GTEST_SKIP() << "needs cp 4";
  const DeviceMesh mesh = BuildOrDie({.cp = 4, .size = np}, *world);
  ASSERT_OK_AND_ASSIGN(MeshContext defaults, MeshContext::FromMeshes(mesh, std::nullopt));
  EXPECT_EQ(defaults.cp_ring_degree(), 1);
  EXPECT_EQ(defaults.cp_ulysses_degree(), std::nullopt);
  ASSERT_OK_AND_ASSIGN(
      MeshContext split,
      MeshContext::FromMeshes(mesh, std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                              config::ActivationCheckpointing::kFalse, 2, 2));
  EXPECT_EQ(split.cp_ring_degree(), 2);
  EXPECT_EQ(split.cp_ulysses_degree(), 2);
  EXPECT_EQ(split.cp_size(), 4);  // still reads cp
  ASSERT_OK_AND_ASSIGN(DeviceMesh ring_ulysses, CreateRingUlyssesMesh(mesh, 2, 2));
  ASSERT_OK_AND_ASSIGN(DeviceMesh two_d, ring_ulysses.Submesh({"ring", "ulysses"}));
  EXPECT_EQ(two_d.layout().shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_THAT(CreateRingUlyssesMesh(mesh, 3, 2),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ring_degree (3) * ulysses_degree (2) must equal the cp mesh "
                                 "size (4).")));
  // ring and ulysses are not axis names (§1): a context over that mesh fails the name check.
  EXPECT_THAT(MeshContext::FromMeshes(ring_ulysses, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("device_mesh contains unknown axis names {'ring', 'ulysses'}")));
}

// This rank's position in `mesh` by brute force: its index in the rank list (or the rank itself),
// unravelled row-major over the shape.
std::vector<int64_t> BruteCoordinate(const BruteMesh& mesh, int64_t rank) {
  const size_t index = mesh.IndexOf(rank);
  NMESH_CHECK(index < mesh.coords.size()) << "rank " << rank << " is not in the mesh";
  std::vector<int64_t> coordinate(mesh.shape.size());
  int64_t rest = static_cast<int64_t>(index);
  for (size_t a = mesh.shape.size(); a-- > 0;) {
    coordinate[a] = rest % mesh.shape[a];
    rest /= mesh.shape[a];
  }
  return coordinate;
}

TEST_P(MeshContextTest, CoordinatesAndPipelineStagesMatchBruteForce) {
  auto world = World();
  const int np = world->size();
  const int64_t rank = world->rank();
  std::vector<Spec> specs = {{.size = np}, {.strategy = StrategyKind::kDdp, .size = np}};
  if (np >= 2) {
    specs.push_back({.pp = 2, .size = np});
    specs.push_back({.tp = 2, .size = np});
    specs.push_back({.strategy = StrategyKind::kMegatronFsdp, .cp = 2, .size = np});
  }
  if (np >= 4) {
    specs.push_back({.dp_replicate = 2, .size = np});
    specs.push_back({.pp = 2, .ep = 2, .size = np});
    specs.push_back({.pp = 4, .size = np});
  }
  if (np == 8) {
    specs.push_back({.pp = 2, .cp = 2, .tp = 2, .size = np});
    specs.push_back({.dp_replicate = 2, .tp = 2, .size = np});
    specs.push_back({.pp = 2, .ep = 4, .size = np});
    specs.push_back({.strategy = StrategyKind::kMegatronFsdp, .cp = 2, .tp = 2, .size = np});
  }
  for (const Spec& s : specs) {
    SCOPED_TRACE(::testing::Message()
                 << "pp " << s.pp << " dp_replicate " << s.dp_replicate << " cp " << s.cp << " tp "
                 << s.tp << " ep " << s.ep << " strategy " << static_cast<int>(s.strategy));
    const DeviceMesh mesh = BuildOrDie(s, *world);
    ASSERT_OK_AND_ASSIGN(MeshContext context, ContextOf(mesh, s.strategy));
    const Expected e = ExpectedOf(s);
    const std::vector<int64_t> device = BruteCoordinate(e.device, rank);
    std::optional<std::vector<int64_t>> moe;
    if (e.moe.has_value()) moe = BruteCoordinate(*e.moe, rank);
    for (MeshAxisName axis : kAllMeshAxisNames) {
      const std::string name(MeshAxisNameString(axis));
      SCOPED_TRACE(name);
      std::optional<int64_t> expected;
      for (const NamedSet& g : e.groups) {
        if (g.name != name) continue;
        // The row-major index of the coordinates along the group's axes.
        const BruteMesh& on = e.MeshOf(g);
        const std::vector<int64_t>& c = g.moe ? *moe : device;
        int64_t index = 0;
        for (size_t a = 0; a < on.shape.size(); ++a) {
          if (g.in_set[a]) index = index * on.shape[a] + c[a];
        }
        expected = index;
      }
      EXPECT_EQ(context.Coordinate(axis), expected);
    }
    // pp: the first axis of the FSDP2 meshes, absent from the others.
    const bool has_pp = s.strategy == StrategyKind::kFsdp2;
    EXPECT_EQ(context.Coordinate(A::kPp).has_value(), has_pp);
    const int64_t stage = has_pp ? device[0] : 0;
    EXPECT_EQ(context.IsFirstPipelineStage(), stage == 0);
    EXPECT_EQ(context.IsLastPipelineStage(), stage == s.pp - 1);
    if (s.pp == 1) {
      EXPECT_TRUE(context.IsFirstPipelineStage());
      EXPECT_TRUE(context.IsLastPipelineStage());
    }
  }
}

TEST_P(MeshContextTest, NonMembersCannotReadSizes) {
  auto world = World();
  const int np = world->size();
  if (np < 2) GTEST_SKIP() << "needs a non-member";
  const DeviceMesh first = BuildOrDie({.ranks = {0}}, *world);
  absl::StatusOr<MeshContext> context = MeshContext::FromMeshes(first, std::nullopt);
  if (world->rank() == 0) {
    EXPECT_OK(context.status());
  } else {
    EXPECT_THAT(context, StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("is not a member of mesh 'device_mesh'")));
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, MeshContextTest, ::testing::ValuesIn(comm::testing::Backends()),
                         comm::testing::BackendName);

}  // namespace
}  // namespace nmesh::mesh
