// NCCL settings per axis or group (DeviceMeshOptions::nccl) over real communicators, under mpirun
// -np 1, 2, 4 and 8 on every backend factory: the communicator of each axis and group carries the
// settings of every name that shares it (CommOptions::nccl, which the NCCL backend applies to that
// split's ncclConfig_t), whole-world groups with settings get their own split, and ranks with
// different settings fail together. Which names share a communicator is computed by brute force
// (groups from coordinates, tests/mesh/mesh_runtime_testing.h), never by mesh/plan.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/tests/mesh/mesh_runtime_testing.h"

namespace nmesh::mesh {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;
using namespace ::nmesh::mesh::testing;  // NOLINT: test helpers

std::vector<Spec> SpecsOf(int64_t np) {
  using S = config::StrategyKind;
  std::vector<Spec> all = {
      {.label = "plain", .size = np},
      {.label = "tp2", .tp = 2, .size = np},
      {.label = "tp2 cp2", .cp = 2, .tp = 2, .size = np},
      {.label = "hsdp tp2", .dp_replicate = 2, .tp = 2, .size = np},
      {.label = "ep2", .ep = 2, .size = np},
      {.label = "tp2 ep4", .tp = 2, .ep = 4, .size = np},
      {.label = "pp2 ep2", .pp = 2, .ep = 2, .size = np},
      {.label = "megatron cp2", .strategy = S::kMegatronFsdp, .cp = 2, .size = np},
      {.label = "ddp", .strategy = S::kDdp, .size = np},
  };
  // Only the specs this world can hold (the others fail to plan, which is not this test's subject).
  std::vector<Spec> usable;
  for (const Spec& s : all) {
    if (PlanMesh(RequestOf(s, np)).ok()) usable.push_back(s);
  }
  return usable;
}

// A different field (and value) for each name, so that names sharing a communicator merge
// without conflict.
comm::NcclSettings SettingsForIndex(size_t i, const std::string& name) {
  switch (i % 10) {
    case 0:
      return {.cga_cluster_size = 2};
    case 1:
      return {.min_ctas = 2};
    case 2:
      return {.max_ctas = 16};
    case 3:
      return {.net_name = "net_" + name};
    case 4:
      return {.split_share = false};
    case 5:
      return {.traffic_class = 7};
    case 6:
      return {.comm_name = name};
    case 7:
      return {.collnet_enable = true};
    case 8:
      return {.cta_policy = 1};
    default:
      return {.nvls_ctas = 4};
  }
}

class NcclSettingsMeshTest : public BackendWorldTest {};

TEST_P(NcclSettingsMeshTest, EachGroupsCommunicatorCarriesTheSettingsOfTheNamesSharingIt) {
  auto world = World();
  const int np = world->size();
  for (const Spec& spec : SpecsOf(np)) {
    SCOPED_TRACE(spec.label);
    const Expected expected = ExpectedOf(spec);
    DeviceMeshOptions options;
    for (size_t i = 0; i < expected.groups.size(); ++i) {
      options.nccl[expected.groups[i].name] = SettingsForIndex(i, expected.groups[i].name);
    }
    ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(RequestOf(spec, np)));
    ASSERT_OK_AND_ASSIGN(DeviceMesh mesh, DeviceMesh::Create(plan, *world, options));
    // Every named group has settings, so a whole-world group is split too.
    EXPECT_EQ(mesh.communicators_created(), BruteSplitCount(expected, np, /*world_reused=*/false));
    std::optional<DeviceMesh> moe = mesh.moe_mesh();
    for (const NamedSet& g : expected.groups) {
      SCOPED_TRACE(g.name);
      std::vector<std::vector<int64_t>> mine = BrutePartition(expected.MeshOf(g), g.in_set);
      std::sort(mine.begin(), mine.end());
      comm::NcclSettings want;
      for (size_t i = 0; i < expected.groups.size(); ++i) {
        const NamedSet& other = expected.groups[i];
        std::vector<std::vector<int64_t>> theirs =
            BrutePartition(expected.MeshOf(other), other.in_set);
        std::sort(theirs.begin(), theirs.end());
        if (theirs == mine) want = comm::MergeNcclSettings(want, options.nccl[other.name]);
      }
      ASSERT_OK_AND_ASSIGN(comm::Communicator * comm, (g.moe ? *moe : mesh).Comm(g.name));
      EXPECT_EQ(comm->options().nccl, want)
          << "got " << comm::NcclSettingsText(comm->options().nccl) << ", want "
          << comm::NcclSettingsText(want);
      EXPECT_NE(comm, world.get());
    }
  }
}

TEST_P(NcclSettingsMeshTest, WithoutSettingsTheWorldIsStillReused) {
  auto world = World();
  if (world->options().timeout.has_value()) GTEST_SKIP() << "a timed world is never reused";
  const int np = world->size();
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(RequestOf({.size = np}, np)));
  // Settings on tp (size 1: a self communicator) leave dp's whole-world group on the world (no
  // timeout on either: the mesh's default of 10 minutes would give dp its own communicator).
  ASSERT_OK_AND_ASSIGN(DeviceMesh mesh, DeviceMesh::Create(plan, *world,
                                                           {.timeout = std::nullopt,
                                                            .nccl = {{"tp", {.max_ctas = 4}}}}));
  if (np > 1) {
    ASSERT_OK_AND_ASSIGN(comm::Communicator * dp, mesh.Comm("dp"));
    EXPECT_EQ(dp, world.get());
  }
  EXPECT_EQ((*mesh.Comm("tp"))->options().nccl, (comm::NcclSettings{.max_ctas = 4}));
}

TEST_P(NcclSettingsMeshTest, UnknownNamesFailOnEveryRankBeforeAnySplit) {
  auto world = World();
  const int np = world->size();
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(RequestOf({.size = np}, np)));
  EXPECT_THAT(DeviceMesh::Create(plan, *world, {.nccl = {{"ep", {.max_ctas = 4}}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("NCCL settings for 'ep': mesh 'device_mesh' has no axis or group "
                                 "'ep'; its axes and groups are [pp, dp_replicate, dp_shard")));
  EXPECT_OK(world->Barrier());  // nobody is left inside a split
}

TEST_P(NcclSettingsMeshTest, ConflictingSettingsGiveTheNamesCommunicatorsOfTheirOwn) {
  auto world = World();
  const int np = world->size();
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(RequestOf({.size = np}, np)));
  // dp_shard and dp are one partition when dp_replicate is 1 (by hand: both are every rank).
  ASSERT_OK_AND_ASSIGN(
      DeviceMesh mesh,
      DeviceMesh::Create(plan, *world,
                         {.nccl = {{"dp", {.max_ctas = 8}}, {"dp_shard", {.max_ctas = 4}}}}));
  ASSERT_OK_AND_ASSIGN(comm::Communicator * dp, mesh.Comm("dp"));
  ASSERT_OK_AND_ASSIGN(comm::Communicator * dp_shard, mesh.Comm("dp_shard"));
  if (np == 1) {
    EXPECT_EQ(dp->backend(), "self");  // one rank: settings have no NCCL communicator to reach
    return;
  }
  EXPECT_NE(dp, dp_shard);
  EXPECT_EQ(dp->options().nccl, (comm::NcclSettings{.max_ctas = 8}));
  EXPECT_EQ(dp_shard->options().nccl, (comm::NcclSettings{.max_ctas = 4}));
  EXPECT_EQ(dp->options().name, "dp");
  EXPECT_EQ(dp_shard->options().name, "dp_shard/dp_shard_cp/dp_cp");
  // Both hold every rank, in order.
  for (comm::Communicator* c : {dp, dp_shard}) {
    std::vector<int64_t> got(static_cast<size_t>(np), -1);
    const int64_t rank = world->rank();
    ASSERT_OK(comm::HostAllGather<int64_t>(*c, absl::MakeConstSpan(&rank, 1), absl::MakeSpan(got)));
    for (int r = 0; r < np; ++r) EXPECT_EQ(got[static_cast<size_t>(r)], r);
  }
  EXPECT_EQ(mesh.CommunicatorNames(),
            (std::vector<std::vector<std::string>>{
                {"pp", "dp_replicate", "cp", "tp"}, {"dp_shard", "dp_shard_cp", "dp_cp"}, {"dp"}}));
}

TEST_P(NcclSettingsMeshTest, RanksWithDifferentSettingsDisagreeInsteadOfHanging) {
  auto world = World();
  if (world->size() < 2) GTEST_SKIP() << "needs 2 ranks to disagree";
  const int np = world->size();
  ASSERT_OK_AND_ASSIGN(MeshPlan plan, PlanMesh(RequestOf({.size = np}, np)));
  const int ctas = world->rank() == 0 ? 16 : 8;
  EXPECT_THAT(DeviceMesh::Create(plan, *world, {.nccl = {{"dp_shard", {.max_ctas = ctas}}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrFormat("ranks disagree on the mesh: rank %d of %d has "
                                                 "device_mesh fsdp2",
                                                 world->rank(), np))));
  EXPECT_OK(world->Barrier());
}

INSTANTIATE_TEST_SUITE_P(Backends, NcclSettingsMeshTest,
                         ::testing::ValuesIn(comm::testing::Backends()),
                         comm::testing::BackendName);

}  // namespace
}  // namespace nmesh::mesh
