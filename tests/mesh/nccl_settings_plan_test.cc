// mesh::PlanMeshCommunicators without communication: which names a plan accepts, how the
// settings of names sharing one communicator merge, how names whose settings conflict get
// communicators of their own, one communicator per name on request, and the field each error
// carries (for the recipe's file:line:col and the CLI's flag). Which names share a partition is
// worked out by hand in each comment.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/validate/error_fields.h"

namespace nmesh::mesh {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

MeshPlan Plan(int64_t world, int64_t tp, int64_t cp, int64_t ep = 1) {
  config::MeshRequest request;
  request.sizes.world_size = world;
  request.sizes.tp = tp;
  request.sizes.cp = cp;
  request.sizes.ep = ep;
  absl::StatusOr<MeshPlan> plan = PlanMesh(request);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *std::move(plan);
}

using Comms = std::vector<MeshCommunicatorPlan>;

// The communicator that serves `name`.
const MeshCommunicatorPlan* CommOf(const Comms& comms, const std::string& name) {
  for (const MeshCommunicatorPlan& comm : comms) {
    for (const std::string& n : comm.kind.names) {
      if (n == name) return &comm;
    }
  }
  ADD_FAILURE() << "no communicator serves " << name;
  return nullptr;
}

comm::NcclSettings SettingsOf(const Comms& comms, const std::string& name) {
  const MeshCommunicatorPlan* comm = CommOf(comms, name);
  return comm == nullptr ? comm::NcclSettings{} : comm->nccl;
}

std::vector<std::vector<std::string>> NamesOf(const Comms& comms) {
  std::vector<std::vector<std::string>> names;
  for (const MeshCommunicatorPlan& comm : comms) names.push_back(comm.kind.names);
  return names;
}

TEST(NcclSettingsPerKindTest, NoSettingsGiveOneCommunicatorPerKind) {
  const MeshPlan plan = Plan(8, 2, 2);
  ASSERT_OK_AND_ASSIGN(Comms comms, PlanMeshCommunicators(plan, {}));
  ASSERT_EQ(comms.size(), DistinctGroupKinds(plan).size());
  for (size_t k = 0; k < comms.size(); ++k) {
    EXPECT_EQ(comms[k].kind.names, DistinctGroupKinds(plan)[k].names);
    EXPECT_TRUE(comms[k].nccl.empty());
  }
}

TEST(NcclSettingsPerKindTest, OnePerNameOnRequest) {
  // World 8, tp 2, ep 2 (moe mesh pp 1, ep_shard 4, ep 2): by hand, tp and ep are the pairs
  // {0,1},{2,3},...; dp_shard, dp, dp_shard_cp, dp_cp and ep_shard are {0,2,4,6},{1,3,5,7}; pp,
  // dp_replicate and cp have one rank each.
  const MeshPlan plan = Plan(8, 2, 1, 2);
  ASSERT_OK_AND_ASSIGN(Comms shared, PlanMeshCommunicators(plan, {}));
  EXPECT_EQ(NamesOf(shared), (std::vector<std::vector<std::string>>{
                                 {"pp", "dp_replicate", "cp"},
                                 {"dp_shard", "dp", "dp_shard_cp", "dp_cp", "ep_shard"},
                                 {"tp", "ep"}}));
  ASSERT_OK_AND_ASSIGN(Comms per_name, PlanMeshCommunicators(plan, {}, config::CommSharing::kName));
  EXPECT_EQ(NamesOf(per_name), (std::vector<std::vector<std::string>>{{"pp"},
                                                                      {"dp_replicate"},
                                                                      {"dp_shard"},
                                                                      {"cp"},
                                                                      {"tp"},
                                                                      {"dp"},
                                                                      {"dp_shard_cp"},
                                                                      {"dp_cp"},
                                                                      {"ep_shard"},
                                                                      {"ep"}}));
  EXPECT_TRUE(CommOf(per_name, "pp")->kind.trivial);
  EXPECT_FALSE(CommOf(per_name, "ep")->kind.trivial);
  EXPECT_EQ(CommOf(per_name, "ep")->kind.group_size, 2);
}

TEST(NcclSettingsPerKindTest, EachAxisGetsItsOwnAndSharedPartitionsMerge) {
  // World 8, tp 2, cp 2: dp_shard 2. dp (dp_replicate 1 x dp_shard) is dp_shard's partition;
  // dp_shard_cp and dp_cp are one partition too; tp and cp are their own.
  const MeshPlan plan = Plan(8, 2, 2);
  const comm::NcclSettingsMap settings = {
      {"tp", {.max_ctas = 16}},
      {"cp", {.net_name = std::string("IB")}},
      {"dp", {.cga_cluster_size = 2}},
      {"dp_shard", {.min_ctas = 2}},
      {"dp_shard_cp", {.max_ctas = 8, .split_share = false}},
      {"dp_cp", {.max_ctas = 8}},  // the same value as its partner: no conflict
  };
  ASSERT_OK_AND_ASSIGN(Comms comms, PlanMeshCommunicators(plan, settings));
  EXPECT_EQ(comms.size(), DistinctGroupKinds(plan).size());  // nothing conflicts
  EXPECT_EQ(SettingsOf(comms, "tp"), (comm::NcclSettings{.max_ctas = 16}));
  EXPECT_EQ(SettingsOf(comms, "cp"), (comm::NcclSettings{.net_name = std::string("IB")}));
  EXPECT_EQ(SettingsOf(comms, "dp"), (comm::NcclSettings{.cga_cluster_size = 2, .min_ctas = 2}));
  EXPECT_EQ(CommOf(comms, "dp_shard"), CommOf(comms, "dp"));
  EXPECT_EQ(SettingsOf(comms, "dp_cp"), (comm::NcclSettings{.max_ctas = 8, .split_share = false}));
  EXPECT_TRUE(SettingsOf(comms, "pp").empty());
}

TEST(NcclSettingsPerKindTest, MoeAxesAreNamesOnlyWithAMoeMesh) {
  const comm::NcclSettingsMap ep = {{"ep", {.max_ctas = 4}}};
  // World 8, ep 4: the moe mesh (pp 1, ep_shard 2, ep 4).
  const MeshPlan moe = Plan(8, 1, 1, 4);
  ASSERT_OK_AND_ASSIGN(Comms comms, PlanMeshCommunicators(moe, ep));
  EXPECT_EQ(SettingsOf(comms, "ep"), (comm::NcclSettings{.max_ctas = 4}));
  const absl::Status unknown =
      PlanMeshCommunicators(Plan(8, 2, 1), ep, config::CommSharing::kPartition, "distributed")
          .status();
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kInvalidArgument,
                                AllOf(HasSubstr("NCCL settings for 'ep': mesh 'distributed' has "
                                                "no axis or group 'ep'; its axes and groups are "
                                                "[pp, dp_replicate, dp_shard, cp, tp, dp, "
                                                "dp_shard_cp, dp_cp]"))));
  EXPECT_EQ(validate::FieldsOf(unknown).subject, "nccl.ep");
}

TEST(NcclSettingsPerKindTest, AnyOtherNameIsUnknown) {
  const MeshPlan plan = Plan(4, 2, 1);
  for (const char* name : {"world", "TP", "tp ", "dp_shard_cp_", ""}) {
    SCOPED_TRACE(name);
    const absl::Status s = PlanMeshCommunicators(plan, {{name, {.max_ctas = 4}}}).status();
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no axis or group")));
    EXPECT_EQ(validate::FieldsOf(s).subject, std::string("nccl.") + name);
  }
}

TEST(NcclSettingsPerKindTest, NamesWhoseSettingsConflictGetTheirOwnCommunicators) {
  // World 4, tp 2: dp_shard 2, and dp, dp_shard_cp, dp_cp are all dp_shard's partition.
  const MeshPlan plan = Plan(4, 2, 1);
  ASSERT_OK_AND_ASSIGN(Comms comms,
                       PlanMeshCommunicators(plan, {{"dp", {.net_name = std::string("IB")}},
                                                    {"dp_shard", {.net_name = "Socket"}}}));
  // dp_shard comes first in the kind and opens its communicator; dp conflicts with it and opens
  // a second; dp_shard_cp and dp_cp, without settings, join the first.
  EXPECT_EQ(
      NamesOf(comms),
      (std::vector<std::vector<std::string>>{
          {"pp", "dp_replicate", "cp"}, {"dp_shard", "dp_shard_cp", "dp_cp"}, {"dp"}, {"tp"}}));
  EXPECT_EQ(SettingsOf(comms, "dp_shard"), (comm::NcclSettings{.net_name = "Socket"}));
  EXPECT_EQ(SettingsOf(comms, "dp"), (comm::NcclSettings{.net_name = std::string("IB")}));
  EXPECT_EQ(CommOf(comms, "dp")->kind.group_size, 2);
  EXPECT_EQ(CommOf(comms, "dp")->kind.axes, CommOf(comms, "dp_shard")->kind.axes);
  // A name joins the first communicator it does not conflict with: dp_cp (IB) joins dp's.
  ASSERT_OK_AND_ASSIGN(Comms three,
                       PlanMeshCommunicators(plan, {{"dp_shard", {.min_ctas = 2}},
                                                    {"dp", {.net_name = std::string("IB")}},
                                                    {"dp_shard_cp", {.net_name = "Socket"}},
                                                    {"dp_cp", {.net_name = std::string("IB")}}}));
  EXPECT_EQ(
      NamesOf(three),
      (std::vector<std::vector<std::string>>{
          {"pp", "dp_replicate", "cp"}, {"dp_shard", "dp", "dp_cp"}, {"dp_shard_cp"}, {"tp"}}));
  EXPECT_EQ(SettingsOf(three, "dp_cp"),
            (comm::NcclSettings{.min_ctas = 2, .net_name = std::string("IB")}));
  // Across names, min_ctas above max_ctas would follow from merging: separate communicators.
  ASSERT_OK_AND_ASSIGN(Comms ctas, PlanMeshCommunicators(plan, {{"dp", {.min_ctas = 16}},
                                                                {"dp_shard", {.max_ctas = 8}}}));
  EXPECT_NE(CommOf(ctas, "dp"), CommOf(ctas, "dp_shard"));
  EXPECT_EQ(SettingsOf(ctas, "dp"), (comm::NcclSettings{.min_ctas = 16}));
  // One name's own settings are still refused.
  const absl::Status one =
      PlanMeshCommunicators(plan, {{"tp", {.min_ctas = 9, .max_ctas = 8}}}).status();
  EXPECT_THAT(one, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("NCCL settings for 'tp': min_ctas (9) must not exceed "
                                      "max_ctas (8)")));
  EXPECT_EQ(validate::FieldsOf(one).subject, "nccl.tp");
}

}  // namespace
}  // namespace nmesh::mesh
