// The recipe's `nccl:` key (nmesh's per-axis NCCL settings): values typed as YAML gives them, and
// every error naming the key, the value and file:line:col (hand-counted, 1-based).
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/config/recipe.h"

namespace nmesh::config {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kFile[] = "bad.yaml";

TEST(RecipeNcclTest, SettingsAreReadPerName) {
  const std::string yaml =
      "distributed:\n"
      "  tp_size: 2\n"
      "  nccl:\n"
      "    tp:\n"
      "      max_ctas: 16\n"
      "      net_name: IB\n"
      "    dp_shard_cp: {split_share: false, cga_cluster_size: 2, collnet_enable: 1}\n"
      "    cp: ~\n"
      "    ep:\n"
      "      min_ctas: null\n";
  ASSERT_OK_AND_ASSIGN(Recipe recipe, ParseRecipe(yaml, kFile));
  EXPECT_EQ(
      recipe.nccl,
      (comm::NcclSettingsMap{
          {"tp", {.max_ctas = 16, .net_name = std::string("IB")}},
          {"dp_shard_cp", {.cga_cluster_size = 2, .split_share = false, .collnet_enable = true}},
          {"ep", {}}}));
  // The names' keys, for the job layer's unknown-name errors.
  EXPECT_EQ(recipe.Where("nccl.tp"), "bad.yaml:4:5");
  EXPECT_EQ(recipe.Where("nccl.dp_shard_cp"), "bad.yaml:7:5");
  EXPECT_EQ(recipe.request.sizes.tp, 2);
}

TEST(RecipeNcclTest, TheTeacherSectionHasItsOwn) {
  const std::string yaml =
      "separate_meshes: true\n"
      "distributed:\n"
      "  dp_size: 2\n"
      "  nccl: {tp: {max_ctas: 4}}\n"
      "teacher_distributed:\n"
      "  dp_size: 2\n"
      "  nccl: {dp: {max_ctas: 8}}\n";
  ASSERT_OK_AND_ASSIGN(Recipe student, ParseRecipe(yaml, kFile, Section::kDistributed));
  ASSERT_OK_AND_ASSIGN(Recipe teacher, ParseRecipe(yaml, kFile, Section::kTeacherDistributed));
  EXPECT_EQ(student.nccl, (comm::NcclSettingsMap{{"tp", {.max_ctas = 4}}}));
  EXPECT_EQ(teacher.nccl, (comm::NcclSettingsMap{{"dp", {.max_ctas = 8}}}));
}

struct Bad {
  std::string name;
  std::string body;  // under "distributed:\n  nccl:\n"
  std::string message;
};

std::ostream& operator<<(std::ostream& os, const Bad& bad) { return os << bad.name; }

class RecipeNcclErrorsTest : public ::testing::TestWithParam<Bad> {};

TEST_P(RecipeNcclErrorsTest, NamesTheKeyTheValueAndThePosition) {
  const std::string yaml = "distributed:\n  nccl:" + GetParam().body;
  EXPECT_THAT(ParseRecipe(yaml, kFile),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message)));
}

// Columns: "      max_ctas: " is 16 characters, so the value starts at column 17; the key of a
// setting at column 7, of a name at column 5; "  nccl: " puts an inline value at column 9.
INSTANTIATE_TEST_SUITE_P(
    Table, RecipeNcclErrorsTest,
    ::testing::Values(
        Bad{"UnknownSetting", "\n    tp:\n      max_cta: 16\n",
            "distributed.nccl.tp: unknown NCCL setting 'max_cta'; known settings are "
            "cga_cluster_size, min_ctas, max_ctas, net_name, split_share, traffic_class, "
            "comm_name, collnet_enable, cta_policy, shrink_share, nvls_ctas, "
            "n_channels_per_net_peer, nvlink_centric_sched (bad.yaml:4:7)"},
        Bad{"AboveRange", "\n    tp:\n      max_ctas: 33\n",
            "distributed.nccl.tp.max_ctas must be an integer from 1 to 32, got 33 (bad.yaml:4:17)"},
        Bad{"BelowRange", "\n    tp:\n      min_ctas: 0\n",
            "distributed.nccl.tp.min_ctas must be an integer from 1 to 32, got 0 (bad.yaml:4:17)"},
        Bad{"CgaAboveRange", "\n    dp:\n      cga_cluster_size: 9\n",
            "distributed.nccl.dp.cga_cluster_size must be an integer from 0 to 8, got 9 "
            "(bad.yaml:4:25)"},
        Bad{"Word", "\n    tp:\n      max_ctas: sixteen\n",
            "distributed.nccl.tp.max_ctas must be an integer from 1 to 32, got 'sixteen' "
            "(bad.yaml:4:17)"},
        Bad{"Quoted", "\n    tp:\n      max_ctas: \"16\"\n",
            "distributed.nccl.tp.max_ctas must be an integer from 1 to 32, got '16' "
            "(bad.yaml:4:17)"},
        Bad{"BooleanForInteger", "\n    tp:\n      max_ctas: true\n",
            "distributed.nccl.tp.max_ctas must be an integer from 1 to 32, got true "
            "(bad.yaml:4:17)"},
        Bad{"NotABoolean", "\n    tp:\n      split_share: 2\n",
            "distributed.nccl.tp.split_share must be a boolean (true/false or 1/0), got 2 "
            "(bad.yaml:4:20)"},
        Bad{"EmptyString", "\n    tp:\n      net_name: ''\n",
            "distributed.nccl.tp.net_name must be a non-empty string, got '' (bad.yaml:4:17)"},
        Bad{"ListValue", "\n    tp:\n      max_ctas: [16]\n",
            "distributed.nccl.tp.max_ctas: must be a scalar, got a list"},
        Bad{"MinAboveMax", "\n    tp:\n      min_ctas: 9\n      max_ctas: 8\n",
            "distributed.nccl.tp: min_ctas (9) must not exceed max_ctas (8) (bad.yaml:4:7)"},
        Bad{"NameNotAMap", "\n    tp: 16\n",
            "distributed.nccl.tp must be a map of NCCL settings (e.g. {max_ctas: 16}), got 16 "
            "(bad.yaml:3:9)"},
        Bad{"NcclNotAMap", " 16\n",
            "distributed.nccl must be a map of axis or group names to NCCL settings, got 16 "
            "(bad.yaml:2:9)"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace nmesh::config
