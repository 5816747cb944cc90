// The rules on plain data: every message, the fields each error carries, and the order in which
// the checks fire.
#include "nmesh/validate/validate.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/validate/checked_math.h"
#include "nmesh/validate/error_fields.h"
#include "nmesh/validate/separate_meshes.h"

namespace nmesh::validate {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

using ::testing::ElementsAre;

const std::vector<std::string_view> kAllowed = {
    "pp", "dp", "dp_replicate", "dp_shard", "dp_shard_cp", "dp_cp", "cp", "tp", "ep", "ep_shard"};
constexpr std::string_view kAllowedText =
    "allowed names are ['cp', 'dp', 'dp_cp', 'dp_replicate', 'dp_shard', 'dp_shard_cp', 'ep', "
    "'ep_shard', 'pp', 'tp']";

TEST(ValidateAxisNamesTest, KnownNamesPass) {
  EXPECT_OK(
      ValidateAxisNames("device_mesh", {"pp", "dp_replicate", "dp_shard", "cp", "tp"}, kAllowed));
  EXPECT_OK(ValidateAxisNames("moe_mesh", {"ep_shard", "ep"}, kAllowed));
  EXPECT_OK(ValidateAxisNames("device_mesh", {}, kAllowed));
}

TEST(ValidateAxisNamesTest, UnknownNamesAreListedOnceAndSorted) {
  EXPECT_THAT(ValidateAxisNames("device_mesh", {"tp", "ulysses", "ring", "ring"}, kAllowed),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       std::string("device_mesh contains unknown axis names {'ring', "
                                   "'ulysses'}; ") +
                           std::string(kAllowedText)));
  EXPECT_THAT(ValidateAxisNames("moe_mesh", {"experts"}, kAllowed),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("moe_mesh contains unknown axis names {'experts'}")));
  // Names are exact: case matters.
  EXPECT_THAT(ValidateAxisNames("device_mesh", {"TP"}, kAllowed),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("{'TP'}")));
}

absl::Status Check(std::optional<StrategyKind> strategy, ResolvedSizes sizes, bool pipeline = false,
                   bool moe = false) {
  return ValidateDistributedSetup(
      {.strategy = strategy, .sizes = sizes, .has_pipeline = pipeline, .has_moe = moe});
}

// Distributed-setup checks (NeMo AutoModel 0.7.0): pipeline, moe, then the strategy-support
// checks; megatron_fsdp's sequence_parallel check and ddp's HSDP check are gone.
TEST(ValidateDistributedSetupTest, MegatronFsdpChecksInOrder) {
  const StrategyKind megatron = StrategyKind::kMegatronFsdp;
  EXPECT_THAT(Check(megatron, {.pp = 2, .dp_replicate = 2, .ep = 4}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dp_replicate_size is only supported with FSDP2Config")));
  EXPECT_THAT(Check(megatron, {.pp = 2, .ep = 4}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("megatron_fsdp does not support pipeline parallelism")));
  EXPECT_THAT(Check(megatron, {.ep = 4}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("megatron_fsdp does not support expert parallelism")));
  EXPECT_OK(Check(megatron, {.cp = 2, .tp = 2}));
}

TEST(ValidateDistributedSetupTest, DdpChecksInOrder) {
  const StrategyKind ddp = StrategyKind::kDdp;
  const ResolvedSizes all = {.pp = 2, .dp_replicate = 2, .cp = 2, .tp = 2, .ep = 2};
  // DDP with dp_replicate gets the dp_replicate_size message first (no "HSDP" message now).
  EXPECT_THAT(Check(ddp, all),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dp_replicate_size is only supported with FSDP2Config")));
  ResolvedSizes s = all;
  s.dp_replicate = 1;
  EXPECT_THAT(Check(ddp, s), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("ddp does not support tensor parallelism")));
  s.tp = 1;
  EXPECT_THAT(Check(ddp, s), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("ddp does not support pipeline parallelism")));
  s.pp = 1;
  EXPECT_THAT(Check(ddp, s), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("ddp does not support context parallelism")));
  s.cp = 1;
  EXPECT_THAT(Check(ddp, s), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("ddp does not support expert parallelism")));
  s.ep = 1;
  EXPECT_OK(Check(ddp, s));
  s.dp_replicate = std::nullopt;
  EXPECT_OK(Check(ddp, s));
}

TEST(ValidateDistributedSetupTest, PipelineAndMoeConfigsComeFirst) {
  const StrategyKind fsdp2 = StrategyKind::kFsdp2;
  EXPECT_OK(Check(fsdp2, {.pp = 2, .dp_replicate = 2, .cp = 2, .tp = 2, .ep = 2}, true, true));
  EXPECT_THAT(Check(fsdp2, {.pp = 1}, /*pipeline=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pipeline_config requires pp_size > 1")));
  EXPECT_THAT(Check(fsdp2, {.pp = 2, .ep = 1}, true, /*moe=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("moe_parallel_config requires ep_size > 1")));
  // The config checks come before the strategy checks.
  EXPECT_THAT(Check(StrategyKind::kDdp, {.tp = 2}, /*pipeline=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pipeline_config requires pp_size > 1")));
  EXPECT_OK(Check(std::nullopt, {.dp_replicate = 4, .tp = 2}));
  EXPECT_THAT(Check(std::nullopt, {}, false, /*moe=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("moe_parallel_config requires ep_size > 1")));
}

TEST(ValidateDistributedSetupTest, ErrorsCarryTheirField) {
  const absl::Status error = Check(StrategyKind::kDdp, {.cp = 4});
  EXPECT_THAT(error, StatusIs(absl::StatusCode::kInvalidArgument,
                              "ddp does not support context parallelism, got cp_size=4"));
  EXPECT_EQ(FieldsOf(error), (ErrorFields{"cp_size", {"cp_size"}}));
}

TEST(ErrorFieldsTest, RoundTripThroughTheStatus) {
  EXPECT_EQ(FieldsOf(absl::InvalidArgumentError("no fields")), ErrorFields{});
  const absl::Status one = FieldError("tp_size", "tp_size must be a positive integer, got 0");
  EXPECT_THAT(one, StatusIs(absl::StatusCode::kInvalidArgument,
                            "tp_size must be a positive integer, got 0"));
  EXPECT_EQ(FieldsOf(one), (ErrorFields{"tp_size", {"tp_size"}}));
  const absl::Status several =
      WithFields(absl::InvalidArgumentError("x"), "", {"world_size", "tp_size", "cp_size"});
  EXPECT_EQ(FieldsOf(several), (ErrorFields{"", {"world_size", "tp_size", "cp_size"}}));
  // Attaching again replaces; an OK status carries nothing.
  EXPECT_EQ(FieldsOf(WithFields(several, "pp_size", {"pp_size"})),
            (ErrorFields{"pp_size", {"pp_size"}}));
  EXPECT_OK(WithFields(absl::OkStatus(), "tp_size", {"tp_size"}));
}

TEST(CheckRequestedSizesTest, EachGivenSizeMustBePositiveAndFitAnInt) {
  EXPECT_OK(CheckRequestedSizes({}));
  EXPECT_OK(CheckRequestedSizes({.dp = kInferDp, .tp = 2, .world_size = 8}));
  const absl::Status zero = CheckRequestedSizes({.dp = 2, .pp = 0});
  EXPECT_THAT(zero, StatusIs(absl::StatusCode::kInvalidArgument,
                             "pp_size must be a positive integer, got 0"));
  EXPECT_EQ(FieldsOf(zero).subject, "pp_size");
  // -1 is "infer" for dp only.
  EXPECT_THAT(
      CheckRequestedSizes({.ep = -1}),
      StatusIs(absl::StatusCode::kInvalidArgument, "ep_size must be a positive integer, got -1"));
  EXPECT_THAT(CheckRequestedSizes({.world_size = int64_t{1} << 31}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "world_size must be at most 2147483647, got 2147483648"));
  // In field order: dp before tp.
  EXPECT_EQ(FieldsOf(CheckRequestedSizes({.dp = 0, .tp = 0})).subject, "dp_size");
}

TEST(FindUnsupportedSizeTest, TheStrategyTable) {
  EXPECT_FALSE(
      FindUnsupportedSize(StrategyKind::kFsdp2,
                          RequestedSizes{.dp_replicate = 2, .tp = 2, .pp = 2, .cp = 2, .ep = 2})
          .has_value());
  const std::optional<UnsupportedSize> replicate =
      FindUnsupportedSize(StrategyKind::kMegatronFsdp, RequestedSizes{.dp_replicate = 3, .pp = 2});
  ASSERT_TRUE(replicate.has_value());
  EXPECT_EQ(replicate->rule, "dp_replicate_size is only supported with FSDP2Config");
  EXPECT_EQ(replicate->field, "dp_replicate_size");
  EXPECT_EQ(replicate->value, 3);
  const std::optional<UnsupportedSize> ep =
      FindUnsupportedSize(StrategyKind::kMegatronFsdp, RequestedSizes{.tp = 4, .cp = 2, .ep = 2});
  ASSERT_TRUE(ep.has_value());
  EXPECT_EQ(ep->rule, "megatron_fsdp does not support expert parallelism");
  EXPECT_EQ(ep->field, "ep_size");
  const std::optional<UnsupportedSize> cp =
      FindUnsupportedSize(StrategyKind::kDdp, RequestedSizes{.cp = 2, .ep = 2});
  ASSERT_TRUE(cp.has_value());
  EXPECT_EQ(cp->rule, "ddp does not support context parallelism");
  EXPECT_EQ(cp->value, 2);
  // Missing sizes count as 1; the requested and resolved overloads agree.
  EXPECT_FALSE(FindUnsupportedSize(StrategyKind::kDdp, RequestedSizes{.dp = 8}).has_value());
  EXPECT_EQ(FindUnsupportedSize(StrategyKind::kDdp, ResolvedSizes{.pp = 2})->field, "pp_size");
}

TEST(MeshSizeTest, ProductsAndInference) {
  EXPECT_EQ(RequestedMeshSize({.dp = 2, .tp = 3, .pp = 5, .cp = 7, .ep = 11}), 2 * 3 * 5 * 7);
  EXPECT_EQ(RequestedMeshSize({.tp = 2}), std::nullopt);
  EXPECT_EQ(RequestedMeshSize({.dp = int64_t{1} << 40, .tp = int64_t{1} << 40}), std::nullopt);
  EXPECT_EQ(MeshSizeFactors(StrategyKind::kMegatronFsdp, 2, 3, 5, 7).size(), 3u);
  EXPECT_EQ(MeshSizeFactors(StrategyKind::kDdp, 2, 3, 5, 7).front().field, "dp_size");
  ASSERT_OK_AND_ASSIGN(const int64_t fsdp2, InferDp(StrategyKind::kFsdp2, 24, 2, 3, 2));
  EXPECT_EQ(fsdp2, 24 / (2 * 3 * 2));
  ASSERT_OK_AND_ASSIGN(const int64_t megatron, InferDp(StrategyKind::kMegatronFsdp, 24, 2, 3, 2));
  EXPECT_EQ(megatron, 24 / (2 * 3));
  ASSERT_OK_AND_ASSIGN(const int64_t ddp, InferDp(StrategyKind::kDdp, 24, 2, 3, 2));
  EXPECT_EQ(ddp, 24);
  const absl::Status indivisible = InferDp(StrategyKind::kFsdp2, 10, 4, 1, 1).status();
  EXPECT_THAT(indivisible,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "world_size (10) must be divisible by (tp_size * cp_size * pp_size) "
                       "(4 * 1 * 1 = 4)"));
  EXPECT_EQ(FieldsOf(indivisible),
            (ErrorFields{"", {"world_size", "tp_size", "cp_size", "pp_size"}}));
}

TEST(ResolveSizesTest, SetsTheStrategysFields) {
  const absl::StatusOr<ResolvedSizes> fsdp2 =
      ResolveSizes(StrategyKind::kFsdp2, {.dp_replicate = 2, .tp = 2, .pp = 2, .ep = 4}, 32, false);
  ASSERT_OK(fsdp2.status());
  // dp = 32 / (tp 2 * cp 1 * pp 2) = 8; dp_shard = 8 / 2; non_pp = 8 * 1 * 2 = 16, ep_shard 16 / 4.
  EXPECT_EQ(*fsdp2, (ResolvedSizes{.pp = 2,
                                   .dp = 8,
                                   .dp_replicate = 2,
                                   .dp_shard = 4,
                                   .cp = 1,
                                   .tp = 2,
                                   .ep = 4,
                                   .ep_shard = 4,
                                   .dp_shard_cp = 4,
                                   .dp_cp = 8}));
  ASSERT_OK_AND_ASSIGN(const ResolvedSizes megatron,
                       ResolveSizes(StrategyKind::kMegatronFsdp, {.tp = 2}, 8, false));
  EXPECT_EQ(megatron, (ResolvedSizes{.dp = 4, .cp = 1, .tp = 2}));
  ASSERT_OK_AND_ASSIGN(const ResolvedSizes ddp_sizes,
                       ResolveSizes(StrategyKind::kDdp, {}, 8, false));
  EXPECT_EQ(ddp_sizes, (ResolvedSizes{.dp = 8}));
  // The planner's message form of the strategy table, with the field attached.
  const absl::Status ddp = ResolveSizes(StrategyKind::kDdp, {.dp_replicate = 2}, 8, false).status();
  EXPECT_THAT(ddp, StatusIs(absl::StatusCode::kInvalidArgument,
                            "dp_replicate_size is only supported with FSDP2Config "
                            "(dp_replicate_size=2, strategy ddp)"));
  EXPECT_EQ(FieldsOf(ddp), (ErrorFields{"dp_replicate_size", {"dp_replicate_size"}}));
  const absl::Status multiple =
      ResolveSizes(StrategyKind::kFsdp2, {.dp = 6, .dp_replicate = 4}, 6, false).status();
  EXPECT_EQ(FieldsOf(multiple), (ErrorFields{"dp_size", {"dp_size", "dp_replicate_size"}}));
  const absl::Status bigger =
      ResolveSizes(StrategyKind::kFsdp2, {.dp = 4, .tp = 4}, 8, false).status();
  EXPECT_THAT(bigger, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("Mesh should not be bigger than default world size 8")));
  EXPECT_THAT(FieldsOf(bigger).named, ElementsAre("dp_size", "tp_size", "cp_size", "pp_size"));
}

TEST(ErrorFieldsTest, TheAnnotatedMarkIsAPayloadNotTheText) {
  const absl::Status plain = absl::InvalidArgumentError("tp_size is bad (recipe.yaml:3:12)");
  EXPECT_FALSE(IsAnnotated(plain));
  const absl::Status marked = MarkAnnotated(FieldError("tp_size", "tp_size is bad"));
  EXPECT_TRUE(IsAnnotated(marked));
  // The message, the code and the fields stay.
  EXPECT_THAT(marked, StatusIs(absl::StatusCode::kInvalidArgument, "tp_size is bad"));
  EXPECT_EQ(FieldsOf(marked), (ErrorFields{"tp_size", {"tp_size"}}));
  // Attaching fields later keeps the mark; an OK status stays OK and unmarked.
  EXPECT_TRUE(IsAnnotated(WithFields(marked, "pp_size", {"pp_size"})));
  EXPECT_OK(MarkAnnotated(absl::OkStatus()));
  EXPECT_FALSE(IsAnnotated(absl::OkStatus()));
}

TEST(CheckSelectiveCheckpointingTest, OnlyFsdp2AndDdpAsWritten) {
  EXPECT_OK(CheckSelectiveCheckpointing("fsdp2"));
  EXPECT_OK(CheckSelectiveCheckpointing("ddp"));
  EXPECT_THAT(CheckSelectiveCheckpointing("mfsdp"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "selective activation checkpointing is supported only for FSDP2 and DDP "
                       "configs. (strategy 'mfsdp')"));
  EXPECT_THAT(
      CheckSelectiveCheckpointing("megatron_fsdp"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(strategy 'megatron_fsdp')")));
  EXPECT_THAT(CheckSelectiveCheckpointing(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(strategy '')")));
}

TEST(SeparateMeshesTest, TheSwitchAndTheTeacherSectionGoTogether) {
  EXPECT_OK(CheckSeparateMeshesSwitch(false, false));
  EXPECT_OK(CheckSeparateMeshesSwitch(true, true));
  const absl::Status teacher_only = CheckSeparateMeshesSwitch(false, true);
  EXPECT_THAT(teacher_only, StatusIs(absl::StatusCode::kInvalidArgument,
                                     "teacher_distributed requires separate_meshes=true"));
  EXPECT_EQ(FieldsOf(teacher_only).subject, "teacher_distributed");
  const absl::Status switch_only = CheckSeparateMeshesSwitch(true, false);
  EXPECT_THAT(switch_only, StatusIs(absl::StatusCode::kInvalidArgument,
                                    "separate_meshes=true requires a teacher_distributed section"));
  EXPECT_EQ(FieldsOf(switch_only).subject, "separate_meshes");
}

TEST(SeparateMeshesTest, EachMeshGivesDpAndItsSizeIgnoresEp) {
  // 2 * 2 * 3 * 1 (dp, tp, pp, cp); ep 4 does not count.
  ASSERT_OK_AND_ASSIGN(int64_t size,
                       SeparateMeshSize("distributed", {.dp = 2, .tp = 2, .pp = 3, .ep = 4}));
  EXPECT_EQ(size, 12);
  for (const std::optional<int64_t> dp : {std::optional<int64_t>(), std::optional(kInferDp)}) {
    const absl::StatusOr<int64_t> missing = SeparateMeshSize("teacher_distributed", {.dp = dp});
    EXPECT_THAT(missing.status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "teacher_distributed.dp_size must be set when separate_meshes=true so the "
                         "non-overlapping rank split is explicit"));
    EXPECT_EQ(FieldsOf(missing.status()).subject, "dp_size");
  }
  // Each size passes CheckRequestedSizes; their product does not fit.
  const int64_t big = kMaxMeshSize;
  EXPECT_THAT(
      SeparateMeshSize("distributed", {.dp = big, .tp = big, .pp = big, .cp = big}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, "distributed: the mesh size overflows"));
}

TEST(SeparateMeshesTest, TheMeshesUseEveryRankOfTheJobOnce) {
  ASSERT_OK_AND_ASSIGN(int64_t sum, SeparateMeshWorld(4, 4, std::nullopt));
  EXPECT_EQ(sum, 8);
  ASSERT_OK_AND_ASSIGN(int64_t job, SeparateMeshWorld(4, 2, 6));
  EXPECT_EQ(job, 6);
  EXPECT_THAT(SeparateMeshWorld(4, 2, 8).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Separate KD mesh sizes must use every rank exactly once: student=4 + "
                       "teacher=2 != world_size=8"));
  EXPECT_THAT(SeparateMeshWorld(INT64_MAX, 1, std::nullopt).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "Separate KD mesh sizes overflow"));
}

TEST(SeparateMeshesTest, DdpIsNotMeshBacked) {
  EXPECT_OK(CheckSeparateMeshStrategy("distributed", StrategyKind::kFsdp2));
  EXPECT_OK(CheckSeparateMeshStrategy("distributed", StrategyKind::kMegatronFsdp));
  EXPECT_THAT(CheckSeparateMeshStrategy("teacher_distributed", StrategyKind::kDdp),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Separate KD meshes currently require mesh-backed strategies; DDP is not "
                       "supported (teacher_distributed)"));
}

TEST(SeparateMeshesTest, TheStudentComesFirst) {
  EXPECT_THAT(SeparateMeshRanks(MeshRole::kStudent, 3, 2), ElementsAre(0, 1, 2));
  EXPECT_THAT(SeparateMeshRanks(MeshRole::kTeacher, 3, 2), ElementsAre(3, 4));
}

}  // namespace
}  // namespace nmesh::validate
