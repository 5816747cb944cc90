// The soak step (perf/soak.h) over MPI at np 1/2/4/8: on meshes with pp, tp, cp, ep and HSDP it
// uses the groups it must (by the sizes, brute force) and every step checks; a communicator that
// corrupts one output element on one rank makes that rank's step fail with DataLoss naming the
// operation; and SoakValue sums stay exact in float32.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/perf/soak.h"
#include "nmesh/tests/mesh/mesh_runtime_testing.h"

namespace nmesh::perf {
namespace {

using ::nmesh::mesh::testing::NewWorld;
using ::nmesh::testing::IsOk;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

struct Sizes {
  int64_t pp = 1, tp = 1, cp = 1, ep = 1, dp_replicate = 1;
};

// The sizes to try at world size `n`: each keeps dp_shard >= 1 and divides n.
std::vector<Sizes> SizesFor(int64_t n) {
  std::vector<Sizes> all = {{}};
  if (n % 2 == 0) {
    all.push_back({.tp = 2});
    all.push_back({.pp = 2});
    all.push_back({.ep = 2});
  }
  if (n % 4 == 0) {
    all.push_back({.pp = 2, .tp = 2});
    all.push_back({.tp = 2, .cp = 2});
    all.push_back({.pp = 2, .ep = 2});
  }
  if (n % 8 == 0) {
    all.push_back({.pp = 2, .tp = 2, .cp = 2});
    // HSDP: dp_replicate must be below dp.
    all.push_back({.tp = 2, .dp_replicate = 2});
    all.push_back({.ep = 2, .dp_replicate = 2});
  }
  return all;
}

config::MeshRequest RequestOf(const Sizes& s, int64_t n) {
  config::MeshRequest request;
  request.sizes.world_size = n;
  if (s.pp > 1) request.sizes.pp = s.pp;
  if (s.tp > 1) request.sizes.tp = s.tp;
  if (s.cp > 1) request.sizes.cp = s.cp;
  if (s.ep > 1) request.sizes.ep = s.ep;
  if (s.dp_replicate > 1) request.sizes.dp_replicate = s.dp_replicate;
  return request;
}

// The groups a step must use, from the sizes alone.
std::vector<std::string> ExpectedGroups(const Sizes& s, int64_t n) {
  const int64_t dp = n / (s.pp * s.tp * s.cp);
  std::vector<std::string> groups;
  if (s.pp > 1) groups.push_back("pp");
  if (s.tp > 1) groups.push_back("tp");
  if (s.ep > 1) groups.push_back("ep");
  if (dp / s.dp_replicate * s.cp > 1) groups.push_back("dp_shard_cp");
  if (dp > 1) groups.push_back("dp");
  return groups;
}

TEST(SoakStepTest, EveryMeshStepsCleanOnTheGroupsItHas) {
  std::unique_ptr<comm::Communicator> world = NewWorld();
  const int64_t n = world->size();
  for (const Sizes& sizes : SizesFor(n)) {
    SCOPED_TRACE(absl::StrFormat("np %d pp %d tp %d cp %d ep %d dp_replicate %d", n, sizes.pp,
                                 sizes.tp, sizes.cp, sizes.ep, sizes.dp_replicate));
    ASSERT_OK_AND_ASSIGN(mesh::MeshPlan plan, mesh::PlanMesh(RequestOf(sizes, n)));
    ASSERT_OK_AND_ASSIGN(mesh::DeviceMesh mesh, mesh::DeviceMesh::Create(plan, *world));
    EXPECT_THAT(SoakGroups(mesh), ElementsAreArray(ExpectedGroups(sizes, n)));
    for (int64_t step = 0; step < 3; ++step) {
      EXPECT_THAT(RunSoakStep(plan, mesh, step, {.elements = 37}), IsOk()) << "step " << step;
    }
  }
}

TEST(SoakStepTest, SumsOfValuesAreExactInFloat) {
  // Every value is an integer in [0, 100]; 1024 of them sum exactly in float32 (< 2^24).
  for (int64_t rank = 0; rank < 64; ++rank) {
    for (uint64_t k = 0; k < 5000; k += 7) {
      const float v = SoakValue(rank, 3, SoakOp::kDpAllReduce, k);
      ASSERT_GE(v, 0.0f);
      ASSERT_LE(v, 100.0f);
      ASSERT_EQ(v, static_cast<float>(static_cast<int>(v)));
    }
  }
  // Different ranks, steps and operations give different inputs.
  EXPECT_NE(SoakValue(0, 0, SoakOp::kTpAllGather, 0), SoakValue(1, 0, SoakOp::kTpAllGather, 0));
  EXPECT_NE(SoakValue(0, 0, SoakOp::kTpAllGather, 0), SoakValue(0, 1, SoakOp::kTpAllGather, 0));
  EXPECT_NE(SoakValue(0, 0, SoakOp::kTpAllGather, 0), SoakValue(0, 0, SoakOp::kDpAllReduce, 0));
}

// A plan whose rank numbering differs from the communicators' is caught before any data moves: the
// step compares each group's members in the plan with its communicator's rank and size.
TEST(SoakStepTest, APlanThatDoesNotMatchTheMeshIsAnError) {
  std::unique_ptr<comm::Communicator> world = NewWorld();
  const int64_t n = world->size();
  if (n % 2 != 0) GTEST_SKIP() << "needs an even world";
  ASSERT_OK_AND_ASSIGN(mesh::MeshPlan tp2, mesh::PlanMesh(RequestOf({.tp = 2}, n)));
  ASSERT_OK_AND_ASSIGN(mesh::DeviceMesh mesh, mesh::DeviceMesh::Create(tp2, *world));
  if (n < 4) GTEST_SKIP() << "needs a plan with another tp size";
  ASSERT_OK_AND_ASSIGN(mesh::MeshPlan tp4, mesh::PlanMesh(RequestOf({.tp = 4}, n)));
  absl::Status status = RunSoakStep(tp4, mesh, 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("group 'tp'"));
}

}  // namespace
}  // namespace nmesh::perf
