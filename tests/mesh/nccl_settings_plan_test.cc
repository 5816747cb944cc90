// mesh::NcclSettingsPerKind without communication: which names a plan accepts, how the settings
// of names sharing one communicator merge or conflict, and the field each error carries (for the
// recipe's file:line:col and the CLI's flag). Which names share a partition is worked out by hand
// in each comment.
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

// The settings of the kind that holds `name`.
comm::NcclSettings SettingsOf(const MeshPlan& plan, const std::vector<comm::NcclSettings>& kinds,
                              const std::string& name) {
  const std::vector<GroupKind> all = DistinctGroupKinds(plan);
  for (size_t k = 0; k < all.size(); ++k) {
    for (const std::string& n : all[k].names) {
      if (n == name) return kinds[k];
    }
  }
  ADD_FAILURE() << "no kind holds " << name;
  return {};
}

TEST(NcclSettingsPerKindTest, NoSettingsGiveEmptySettingsForEveryKind) {
  const MeshPlan plan = Plan(8, 2, 2);
  ASSERT_OK_AND_ASSIGN(std::vector<comm::NcclSettings> kinds, NcclSettingsPerKind(plan, {}));
  EXPECT_EQ(kinds.size(), DistinctGroupKinds(plan).size());
  for (const comm::NcclSettings& s : kinds) EXPECT_TRUE(s.empty());
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
  ASSERT_OK_AND_ASSIGN(std::vector<comm::NcclSettings> kinds, NcclSettingsPerKind(plan, settings));
  EXPECT_EQ(SettingsOf(plan, kinds, "tp"), (comm::NcclSettings{.max_ctas = 16}));
  EXPECT_EQ(SettingsOf(plan, kinds, "cp"), (comm::NcclSettings{.net_name = std::string("IB")}));
  EXPECT_EQ(SettingsOf(plan, kinds, "dp"),
            (comm::NcclSettings{.cga_cluster_size = 2, .min_ctas = 2}));
  EXPECT_EQ(SettingsOf(plan, kinds, "dp_shard"), SettingsOf(plan, kinds, "dp"));
  EXPECT_EQ(SettingsOf(plan, kinds, "dp_cp"),
            (comm::NcclSettings{.max_ctas = 8, .split_share = false}));
  EXPECT_TRUE(SettingsOf(plan, kinds, "pp").empty());
}

TEST(NcclSettingsPerKindTest, MoeAxesAreNamesOnlyWithAMoeMesh) {
  const comm::NcclSettingsMap ep = {{"ep", {.max_ctas = 4}}};
  // World 8, ep 4: the moe mesh (pp 1, ep_shard 2, ep 4).
  const MeshPlan moe = Plan(8, 1, 1, 4);
  ASSERT_OK_AND_ASSIGN(std::vector<comm::NcclSettings> kinds, NcclSettingsPerKind(moe, ep));
  EXPECT_EQ(SettingsOf(moe, kinds, "ep"), (comm::NcclSettings{.max_ctas = 4}));
  const absl::Status unknown = NcclSettingsPerKind(Plan(8, 2, 1), ep, "distributed").status();
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
    const absl::Status s = NcclSettingsPerKind(plan, {{name, {.max_ctas = 4}}}).status();
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no axis or group")));
    EXPECT_EQ(validate::FieldsOf(s).subject, std::string("nccl.") + name);
  }
}

TEST(NcclSettingsPerKindTest, NamesSharingACommunicatorMustNotSetAFieldDifferently) {
  // World 4, tp 2: dp_shard 2, and dp, dp_shard_cp, dp_cp are all dp_shard's partition.
  const MeshPlan plan = Plan(4, 2, 1);
  const absl::Status s =
      NcclSettingsPerKind(plan, {{"dp", {.net_name = std::string("IB")}},
                                 {"dp_shard", {.net_name = std::string("Socket")}}})
          .status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("NCCL settings for 'dp_shard' and 'dp' conflict: they share "
                                    "one communicator (dp_shard/dp/dp_shard_cp/dp_cp)")));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("but set net_name to 'Socket' and 'IB'")));
  // The message names the name that set the field first, not just the first with settings.
  EXPECT_THAT(NcclSettingsPerKind(plan, {{"dp_shard", {.min_ctas = 2}},
                                         {"dp", {.net_name = std::string("IB")}},
                                         {"dp_cp", {.net_name = std::string("Socket")}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("NCCL settings for 'dp' and 'dp_cp' conflict")));
  // Across names, min_ctas above max_ctas is caught on the merged settings.
  EXPECT_THAT(NcclSettingsPerKind(plan, {{"dp", {.min_ctas = 16}}, {"dp_shard", {.max_ctas = 8}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("min_ctas (16) must not exceed max_ctas (8)")));
  // And on one name's.
  const absl::Status one =
      NcclSettingsPerKind(plan, {{"tp", {.min_ctas = 9, .max_ctas = 8}}}).status();
  EXPECT_THAT(one, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("NCCL settings for 'tp': min_ctas (9) must not exceed "
                                      "max_ctas (8)")));
  EXPECT_EQ(validate::FieldsOf(one).subject, "nccl.tp");
}

}  // namespace
}  // namespace nmesh::mesh
