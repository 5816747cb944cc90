// The recipe layer, rule by rule (contract §8), plus typed fields, dist_env, positions and
// overrides.
#include "nmesh/config/recipe.h"

#include <algorithm>
#include <string>
#include <variant>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/validate/error_fields.h"

namespace nmesh::config {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;

constexpr char kFile[] = "test.yaml";

absl::StatusOr<Recipe> Parse(const std::string& yaml, Section section = Section::kDistributed,
                             const RecipeOverrides& overrides = {}) {
  return ParseRecipe(yaml, kFile, section, overrides);
}

// The 1-based line and column where `needle` first starts in `text`, computed from the text,
// independently of the parser.
SourcePosition At(const std::string& text, const std::string& needle) {
  const size_t at = text.find(needle);
  // rfind gives npos when the needle is on the first line; npos + 1 wraps to 0.
  const size_t line_start = at == 0 ? 0 : text.rfind('\n', at - 1) + 1;
  const int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
  return {line, static_cast<int>(at - line_start) + 1};
}

// Where a `key: ` needle's value starts.
SourcePosition After(const std::string& text, const std::string& needle) {
  SourcePosition p = At(text, needle);
  p.column += static_cast<int>(needle.size());
  return p;
}

std::string Format(SourcePosition p) {
  return std::string(kFile) + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}
std::string Where(const std::string& text, const std::string& needle) {
  return Format(After(text, needle));
}

// ---- Rule 1: strategy -----------------------------------------------------------------------

TEST(RecipeRule1Test, StrategyDefaultsToFsdp2) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse("distributed: {}"));
  EXPECT_EQ(recipe.request.strategy, StrategyKind::kFsdp2);
  EXPECT_TRUE(std::holds_alternative<FSDP2Config>(recipe.strategy_config));
  // §8 rule 1 (nmesh): a strategy that is not a string, null included, is an unknown strategy.
  for (const char* yaml : {"distributed:\n  strategy: null", "distributed:\n  strategy: none",
                           "distributed:\n  strategy:"}) {
    EXPECT_THAT(Parse(yaml),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Unknown strategy: ")))
        << yaml;
  }
}

TEST(RecipeRule1Test, StrategyNamesAndAliasesCaseInsensitive) {
  const std::pair<const char*, StrategyKind> cases[] = {
      {"fsdp2", StrategyKind::kFsdp2},
      {"FSDP2", StrategyKind::kFsdp2},
      {"megatron_fsdp", StrategyKind::kMegatronFsdp},
      {"Megatron-FSDP", StrategyKind::kMegatronFsdp},
      {"mfsdp", StrategyKind::kMegatronFsdp},
      {"ddp", StrategyKind::kDdp},
      {"DDP", StrategyKind::kDdp},
  };
  for (const auto& [name, kind] : cases) {
    ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(std::string("distributed:\n  strategy: ") + name));
    EXPECT_EQ(recipe.request.strategy, kind) << name;
    EXPECT_EQ(StrategyKindOf(recipe.strategy_config), kind) << name;
  }
}

// ---- Rule 2: sizes --------------------------------------------------------------------------

TEST(RecipeRule2Test, SizesAreReadAndNullsAreUnset) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse("distributed:\n"
                                            "  dp_size: 4\n"
                                            "  dp_replicate_size: 2\n"
                                            "  tp_size: 2\n"
                                            "  pp_size: 3\n"
                                            "  cp_size: 5\n"
                                            "  ep_size: 7\n"
                                            "  pipeline: {}\n"));
  const validate::RequestedSizes& s = recipe.request.sizes;
  EXPECT_EQ(s.dp, 4);
  EXPECT_EQ(s.dp_replicate, 2);
  EXPECT_EQ(s.tp, 2);
  EXPECT_EQ(s.pp, 3);
  EXPECT_EQ(s.cp, 5);
  EXPECT_EQ(s.ep, 7);
  EXPECT_FALSE(s.world_size.has_value());
  EXPECT_FALSE(recipe.request.ranks.has_value());

  for (const char* null : {"none", "None", "null", "Null", "NULL", "~", "", "'None'", "\"none\""}) {
    ASSERT_OK_AND_ASSIGN(Recipe r, Parse(std::string("distributed:\n  dp_size: ") + null +
                                         "\n  tp_size: " + null + "\n  ep_size: " + null + "\n"));
    EXPECT_FALSE(r.request.sizes.dp.has_value()) << null;
    EXPECT_FALSE(r.request.sizes.tp.has_value()) << null;
    EXPECT_FALSE(r.request.sizes.ep.has_value()) << null;
  }
  ASSERT_OK_AND_ASSIGN(Recipe empty, Parse("distributed: {}"));
  EXPECT_EQ(empty.request.sizes.dp, std::nullopt);
  EXPECT_EQ(empty.request.sizes.dp_replicate, std::nullopt);
  EXPECT_EQ(empty.request.sizes.pp, std::nullopt);
}

TEST(RecipeRule2Test, DpMinusOneMeansInfer) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse("distributed:\n  dp_size: -1\n  tp_size: 2\n"));
  EXPECT_FALSE(recipe.request.sizes.dp.has_value());
  EXPECT_EQ(recipe.request.sizes.tp, 2);
  // Only dp has that meaning.
  EXPECT_THAT(Parse("distributed:\n  tp_size: -1\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tp_size must be a positive integer, got -1")));
}

TEST(RecipeRule2Test, YamlIntegerForms) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse("distributed:\n  tp_size: +2\n  cp_size: 0x4\n"
                                            "  ep_size: 1_024\n  pp_size: !!int 3\n"
                                            "  pipeline: {}\n"));
  EXPECT_EQ(recipe.request.sizes.tp, 2);
  EXPECT_EQ(recipe.request.sizes.cp, 4);
  EXPECT_EQ(recipe.request.sizes.ep, 1024);
  EXPECT_EQ(recipe.request.sizes.pp, 3);
}

// ---- Rule 3: activation_checkpointing -------------------------------------------------------

TEST(RecipeRule3Test, ActivationCheckpointingNormalisation) {
  const std::pair<const char*, ActivationCheckpointing> cases[] = {
      {"false", ActivationCheckpointing::kFalse},
      {"False", ActivationCheckpointing::kFalse},
      {"off", ActivationCheckpointing::kFalse},
      {"'OFF'", ActivationCheckpointing::kFalse},
      {"none", ActivationCheckpointing::kFalse},
      {"null", ActivationCheckpointing::kFalse},
      {"disabled", ActivationCheckpointing::kFalse},
      {"no", ActivationCheckpointing::kFalse},
      {"true", ActivationCheckpointing::kFull},
      {"True", ActivationCheckpointing::kFull},
      {"on", ActivationCheckpointing::kFull},
      {"full", ActivationCheckpointing::kFull},
      {"FULL", ActivationCheckpointing::kFull},
      {"enabled", ActivationCheckpointing::kFull},
      {"yes", ActivationCheckpointing::kFull},
      {"\"true\"", ActivationCheckpointing::kFull},
      {"selective", ActivationCheckpointing::kSelective},
      {"Selective", ActivationCheckpointing::kSelective},
  };
  for (const auto& [text, mode] : cases) {
    ASSERT_OK_AND_ASSIGN(Recipe recipe,
                         Parse(std::string("distributed:\n  activation_checkpointing: ") + text));
    EXPECT_EQ(recipe.activation_checkpointing, mode) << text;
    // The strategy config carries it too.
    EXPECT_EQ(std::get<FSDP2Config>(recipe.strategy_config).activation_checkpointing, mode) << text;
  }
  ASSERT_OK_AND_ASSIGN(Recipe absent, Parse("distributed: {}"));
  EXPECT_EQ(absent.activation_checkpointing, ActivationCheckpointing::kFalse);
}

TEST(RecipeRule3Test, HyphensBecomeUnderscoresBeforeMatching) {
  // No accepted value contains `_`, so a hyphenated word must still be rejected.
  const std::string yaml = "distributed:\n  activation_checkpointing: se-lective\n";
  EXPECT_THAT(Parse(yaml),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("distributed.activation_checkpointing must be "
                                       "a boolean or one of 'full', 'selective', "
                                       "'false'."),
                             HasSubstr("se-lective"), HasSubstr(Where(yaml, "checkpointing: ")))));
}

TEST(RecipeRule3Test, CopiedIntoEachStrategyConfig) {
  ASSERT_OK_AND_ASSIGN(Recipe ddp,
                       Parse("distributed:\n  strategy: ddp\n  activation_checkpointing: on\n"));
  EXPECT_EQ(std::get<DDPConfig>(ddp.strategy_config).activation_checkpointing,
            ActivationCheckpointing::kFull);
  ASSERT_OK_AND_ASSIGN(
      Recipe mfsdp, Parse("distributed:\n  strategy: mfsdp\n  activation_checkpointing: true\n"));
  EXPECT_TRUE(std::get<MegatronFSDPConfig>(mfsdp.strategy_config).activation_checkpointing);
  EXPECT_EQ(mfsdp.activation_checkpointing, ActivationCheckpointing::kFull);
}

// ---- Rule 4: hydra meta keys ----------------------------------------------------------------

TEST(RecipeRule4Test, MetaKeysAreDroppedSilently) {
  ASSERT_OK_AND_ASSIGN(
      Recipe recipe, Parse("distributed:\n"
                           "  _target_: nemo_automodel.components.distributed.fsdp2.FSDP2Manager\n"
                           "  _recursive_: false\n"
                           "  _convert_: all\n"
                           "  tp_size: 2\n"
                           "  mp_policy:\n"
                           "    _target_: torch.distributed.fsdp.MixedPrecisionPolicy\n"
                           "    param_dtype: float32\n"));
  EXPECT_THAT(recipe.warnings, IsEmpty());
  EXPECT_EQ(recipe.request.strategy, StrategyKind::kFsdp2);
  EXPECT_EQ(recipe.request.sizes.tp, 2);
  EXPECT_EQ(std::get<FSDP2Config>(recipe.strategy_config).mp_policy.param_dtype, Dtype::kFloat32);
}

// ---- Rule 5: unknown options ----------------------------------------------------------------

TEST(RecipeRule5Test, UnknownOptionsAreSortedAndPointAtTheFirst) {
  const std::string yaml =
      "distributed:\n  tp_size: 2\n  zeta: 1\n  alpha: 2\n  sequence_parallel: true\n";
  EXPECT_THAT(Parse(yaml),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Unknown options for strategy 'fsdp2': ['alpha', 'zeta'] (" +
                                 Format(At(yaml, "zeta")) + ")")));
}

TEST(RecipeRule5Test, FieldsOfAnotherStrategyAreUnknown) {
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n  sequence_parallel: false\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Unknown options for strategy 'ddp': ['sequence_parallel']")));
  EXPECT_THAT(Parse("distributed:\n  zero_dp_strategy: 2\n  static_graph: true\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Unknown options for strategy 'fsdp2': ['static_graph', "
                                 "'zero_dp_strategy']")));
  EXPECT_THAT(Parse("distributed:\n  strategy: megatron_fsdp\n  mp_policy: {}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Unknown options for strategy 'megatron_fsdp': ['mp_policy']")));
}

TEST(RecipeRule5Test, TpPlanOnMegatronSaysUseFsdp2) {
  EXPECT_THAT(Parse("distributed:\n  strategy: megatron_fsdp\n  tp_plan:\n    a: colwise\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("['tp_plan']"), HasSubstr("FSDP2"),
                             HasSubstr(std::string(kFile) + ":3:3"))));
  // ":3:3" is where `tp_plan` starts: line 3, after two spaces of indentation.
}

// ---- Rule 6: selective checkpointing --------------------------------------------------------

TEST(RecipeRule6Test, SelectiveOnlyForFsdp2AndDdp) {
  EXPECT_THAT(Parse("distributed:\n  strategy: fsdp2\n  activation_checkpointing: selective\n"),
              IsOk());
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n  activation_checkpointing: selective\n"),
              IsOk());
  const std::string yaml =
      "distributed:\n  strategy: megatron_fsdp\n  activation_checkpointing: selective\n";
  EXPECT_THAT(Parse(yaml),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("selective activation checkpointing is supported only for "
                                       "FSDP2 and DDP"),
                             HasSubstr(Where(yaml, "checkpointing: ")))));
}

// ---- Rule 7: dropped sections ---------------------------------------------------------------

TEST(RecipeRule7Test, PipelineWithoutPipelineParallelismIsDroppedWithAWarning) {
  // §8 rule 7 (changed in 0.7.0): the warning reads "`distributed.pipeline` is set but pp_size=P
  // (<= 1): ...".
  for (const char* pp : {"", "  pp_size: 1\n", "  pp_size: null\n"}) {
    const std::string yaml = std::string("distributed:\n") + pp +
                             "  pipeline:\n    pp_schedule: gpipe\n    pp_microbatch_size: 2\n";
    ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(yaml));
    EXPECT_FALSE(recipe.pipeline.has_value()) << pp;
    ASSERT_THAT(recipe.warnings, SizeIs(1)) << pp;
    EXPECT_THAT(recipe.warnings[0],
                AllOf(HasSubstr("`distributed.pipeline` is set but pp_size=1 (<= 1): "),
                      HasSubstr(Format(At(yaml, "pipeline:")))));
  }
}

// §8 rule 7 (changed in 0.7.0): a moe section with ep <= 1 is dropped silently.
TEST(RecipeRule7Test, MoeWithoutExpertParallelismIsDroppedSilently) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe,
                       Parse("distributed:\n  ep_size: 1\n  moe:\n    wrap_outer_model: false\n"));
  EXPECT_FALSE(recipe.moe.has_value());
  EXPECT_THAT(recipe.warnings, IsEmpty());
}

// §8 rule 7 (changed in 0.7.0): a dropped section's contents are not checked.
TEST(RecipeRule7Test, DroppedSectionsAreNotChecked) {
  ASSERT_OK_AND_ASSIGN(Recipe pipeline, Parse("distributed:\n  pipeline:\n    pp_shedule: 1f1b\n"));
  EXPECT_FALSE(pipeline.pipeline.has_value());
  EXPECT_THAT(pipeline.warnings,
              ElementsAre(HasSubstr("`distributed.pipeline` is set but pp_size=1 (<= 1): ")));
  ASSERT_OK_AND_ASSIGN(Recipe moe, Parse("distributed:\n  moe:\n    wrap_outer_model: perhaps\n"));
  EXPECT_FALSE(moe.moe.has_value());
}

// ---- Rule 9: pipeline block (changed in 0.7.0) ------------------------------------------------

TEST(RecipeRule9Test, PipelineParallelismNeedsAPipelineBlock) {
  constexpr std::string_view kMessage =
      "`pp_size=2` (> 1) enables pipeline parallelism but no `distributed.pipeline` block was "
      "provided. Add a `distributed.pipeline` section (e.g. `pp_schedule`, `pp_microbatch_size`); "
      "an empty `pipeline: {}` selects defaults.";
  for (const char* yaml :
       {"distributed:\n  pp_size: 2\n", "distributed:\n  pp_size: 2\n  pipeline: null\n"}) {
    EXPECT_THAT(Parse(yaml),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(std::string(kMessage))))
        << yaml;
  }
  // It comes before the checks of §4: ddp with pp 2 gets it too.
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n  pp_size: 2\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(std::string(kMessage))));
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n  pp_size: 2\n  pipeline: {}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ddp does not support pipeline parallelism")));
}

TEST(RecipeRule9Test, EmptyPipelineBlockSelectsDefaults) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe,
                       Parse("distributed:\n  pp_size: 2\n  pipeline: {}\n  ep_size: 4\n"));
  ASSERT_TRUE(recipe.pipeline.has_value());
  PipelineConfig expected;
  expected.dtype = Dtype::kBfloat16;  // rule 10: the default mp_policy's param_dtype
  EXPECT_EQ(*recipe.pipeline, expected);
  ASSERT_TRUE(recipe.moe.has_value());
  EXPECT_EQ(*recipe.moe, MoEParallelizerConfig{});
  EXPECT_THAT(recipe.warnings, IsEmpty());

  ASSERT_OK_AND_ASSIGN(Recipe plain, Parse("distributed:\n  tp_size: 2\n"));
  EXPECT_FALSE(plain.pipeline.has_value());
  EXPECT_FALSE(plain.moe.has_value());

  ASSERT_OK_AND_ASSIGN(Recipe empty_blocks,
                       Parse("distributed:\n  pp_size: 2\n  pipeline: {}\n  ep_size: 2\n  moe:\n"));
  EXPECT_EQ(empty_blocks.pipeline, expected);
  EXPECT_EQ(empty_blocks.moe, MoEParallelizerConfig{});
}

// ---- Rule 10: the default pipeline dtype (changed in 0.7.0) -----------------------------------

TEST(RecipeRule10Test, PipelineDtypeFollowsTheMixedPrecisionPolicy) {
  ASSERT_OK_AND_ASSIGN(Recipe output,
                       Parse("distributed:\n  pp_size: 2\n  pipeline: {}\n"
                             "  mp_policy: {param_dtype: fp32, output_dtype: fp16}\n"));
  EXPECT_EQ(output.pipeline->dtype, Dtype::kFloat16);  // output_dtype first
  ASSERT_OK_AND_ASSIGN(Recipe param, Parse("distributed:\n  pp_size: 2\n  pipeline: {}\n"
                                           "  mp_policy: {param_dtype: float32}\n"));
  EXPECT_EQ(param.pipeline->dtype, Dtype::kFloat32);  // then param_dtype
  ASSERT_OK_AND_ASSIGN(Recipe differs, Parse("distributed:\n  pp_size: 2\n"
                                             "  pipeline: {dtype: float16}\n"));
  EXPECT_EQ(differs.pipeline->dtype, Dtype::kFloat16);  // kept
  EXPECT_THAT(differs.warnings, ElementsAre(HasSubstr("pipeline.dtype=")));
  EXPECT_THAT(differs.warnings, ElementsAre(HasSubstr("does not match")));
}

// ---- Rule 9: type errors --------------------------------------------------------------------

TEST(RecipeRule12Test, TypeErrorsNameKeyExpectedTypeAndPosition) {
  const std::string yaml = "distributed:\n  strategy: fsdp2\n  tp_size: two\n";
  EXPECT_THAT(Parse(yaml), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("distributed.tp_size must be a positive integer, "
                                              "got 'two' (" +
                                              Where(yaml, "tp_size: ") + ")")));
  const std::string flag = "distributed:\n  enable_compile: sometimes\n";
  EXPECT_THAT(Parse(flag), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("distributed.enable_compile must be a boolean, got "
                                              "'sometimes' (" +
                                              Where(flag, "compile: ") + ")")));
}

// ---- Typed fields ---------------------------------------------------------------------------

TEST(RecipeFieldsTest, Fsdp2FieldsAreTyped) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(R"(distributed:
  sequence_parallel: true
  tp_plan:
    model.layers.*.self_attn.q_proj: colwise
    model.embed_tokens: rowwise
  patch_is_packed_sequence: yes
  mp_policy:
    param_dtype: torch.float32
    output_dtype: half
    cast_forward_inputs: false
  offload_policy: {}
  autocast_dtype: bf16
  activation_checkpointing_scope: language+vision
  defer_fsdp_grad_sync: false
  reshard_after_forward: false
  enable_async_tensor_parallel: true
  enable_compile: true
  enable_fsdp2_prefetch: true
  fsdp2_backward_prefetch_depth: 3
  fsdp2_forward_prefetch_depth: 0
  multimodal:
    frozen_sharding: replicate
    vision: {frame_sharding: {mesh_dims: [cp], enabled: true, cost_alpha: 3}}
)"));
  const FSDP2Config& c = std::get<FSDP2Config>(recipe.strategy_config);
  EXPECT_TRUE(c.sequence_parallel);
  ASSERT_TRUE(c.tp_plan.has_value());
  EXPECT_THAT(std::get<StringMap>(*c.tp_plan),
              ElementsAre(Pair("model.layers.*.self_attn.q_proj", "colwise"),
                          Pair("model.embed_tokens", "rowwise")));
  EXPECT_TRUE(c.patch_is_packed_sequence);
  // A recipe's mp_policy starts from PyTorch's MixedPrecisionPolicy defaults.
  EXPECT_EQ(c.mp_policy.param_dtype, Dtype::kFloat32);
  EXPECT_EQ(c.mp_policy.reduce_dtype, std::nullopt);
  EXPECT_EQ(c.mp_policy.output_dtype, Dtype::kFloat16);
  EXPECT_FALSE(c.mp_policy.cast_forward_inputs);
  ASSERT_TRUE(c.offload_policy.has_value());
  EXPECT_TRUE(c.offload_policy->pin_memory);
  EXPECT_EQ(c.autocast_dtype, Dtype::kBfloat16);
  EXPECT_THAT(c.activation_checkpointing_scope, ElementsAre("language", "vision"));
  EXPECT_FALSE(c.defer_fsdp_grad_sync);
  EXPECT_EQ(c.reshard_after_forward, false);
  EXPECT_TRUE(c.enable_async_tensor_parallel);
  EXPECT_TRUE(c.enable_compile);
  EXPECT_TRUE(c.enable_fsdp2_prefetch);
  EXPECT_EQ(c.fsdp2_backward_prefetch_depth, 3);
  EXPECT_EQ(c.fsdp2_forward_prefetch_depth, 0);
  EXPECT_EQ(c.multimodal.frozen_sharding, FrozenSharding::kReplicate);
  EXPECT_THAT(c.multimodal.vision.frame_sharding.mesh_dims, ElementsAre("cp"));
  EXPECT_TRUE(c.multimodal.vision.frame_sharding.enabled);
  EXPECT_FALSE(c.multimodal.vision.frame_sharding.cost_alpha_auto);
  EXPECT_EQ(c.multimodal.vision.frame_sharding.cost_alpha, 3);
}

TEST(RecipeFieldsTest, NullKeepsDefaultsAndReshardIsTriState) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse("distributed:\n  mp_policy: null\n"
                                            "  offload_policy: None\n"
                                            "  reshard_after_forward: ~\n"
                                            "  sequence_parallel:\n"));
  EXPECT_EQ(std::get<FSDP2Config>(recipe.strategy_config), FSDP2Config{});
  ASSERT_OK_AND_ASSIGN(Recipe on, Parse("distributed:\n  reshard_after_forward: true\n"));
  EXPECT_EQ(std::get<FSDP2Config>(on.strategy_config).reshard_after_forward, true);
}

TEST(RecipeFieldsTest, MegatronFsdpFields) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(R"(distributed:
  strategy: megatron-fsdp
  megatron_fsdp_unit_modules: [a.Block, b.Layer]
  zero_dp_strategy: optim_grads
  init_fsdp_with_meta_device: true
  grad_reduce_in_fp32: true
  preserve_fp32_weights: true
  overlap_grad_reduce: false
  overlap_param_gather: false
  check_for_nan_in_grad: false
  report_nan_in_param_grad: true
  average_in_collective: true
  disable_bucketing: true
  calculate_per_token_loss: true
  keep_fp8_transpose_cache: true
  nccl_ub: true
  fsdp_double_buffer: true
)"));
  const MegatronFSDPConfig& c = std::get<MegatronFSDPConfig>(recipe.strategy_config);
  EXPECT_THAT(*c.megatron_fsdp_unit_modules, ElementsAre("a.Block", "b.Layer"));
  EXPECT_EQ(c.zero_dp_strategy, 2);
  EXPECT_TRUE(c.init_fsdp_with_meta_device && c.grad_reduce_in_fp32 && c.preserve_fp32_weights);
  EXPECT_FALSE(c.overlap_grad_reduce || c.overlap_param_gather || c.check_for_nan_in_grad);
  EXPECT_TRUE(c.report_nan_in_param_grad && c.average_in_collective && c.disable_bucketing);
  EXPECT_TRUE(c.calculate_per_token_loss && c.keep_fp8_transpose_cache && c.nccl_ub &&
              c.fsdp_double_buffer);
  ASSERT_OK_AND_ASSIGN(Recipe numeric,
                       Parse("distributed:\n  strategy: mfsdp\n  zero_dp_strategy: 1\n"));
  EXPECT_EQ(std::get<MegatronFSDPConfig>(numeric.strategy_config).zero_dp_strategy, 1);
}

TEST(RecipeFieldsTest, DdpFields) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(R"(distributed:
  strategy: ddp
  activation_checkpointing_scope: [vision, audio]
  broadcast_buffers: true
  find_unused_parameters: true
  static_graph: true
  bucket_cap_mb: 12.5
  gradient_as_bucket_view: true
  autocast_dtype: torch.float16
)"));
  const DDPConfig& c = std::get<DDPConfig>(recipe.strategy_config);
  EXPECT_THAT(c.activation_checkpointing_scope, ElementsAre("vision", "audio"));
  EXPECT_TRUE(c.broadcast_buffers && c.find_unused_parameters && c.static_graph &&
              c.gradient_as_bucket_view);
  EXPECT_EQ(c.bucket_cap_mb, 12.5);
  EXPECT_EQ(c.autocast_dtype, Dtype::kFloat16);
}

TEST(RecipeFieldsTest, PipelineFields) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(R"(distributed:
  pp_size: 4
  pipeline:
    pp_schedule: interleaved1f1b
    pp_schedule_csv: /tmp/schedule.csv
    pp_microbatch_size: 2
    pp_batch_size: 16
    layers_per_stage: 3
    round_virtual_stages_to_pp_multiple: Down
    module_fqns_per_model_part: [[model.embed, model.layers.0], [model.layers.1, lm_head]]
    patch_inner_model: false
    patch_causal_lm_model: false
    patch_stage_backward_maybe_with_nosync: true
    dtype: bf16
    scale_grads_in_schedule: true
    pp_seq_len: 4096
    loss_fn:
      _target_: my.Loss
)"));
  ASSERT_TRUE(recipe.pipeline.has_value());
  const PipelineConfig& p = *recipe.pipeline;
  EXPECT_EQ(p.pp_schedule, "interleaved1f1b");
  EXPECT_EQ(p.pp_schedule_csv, "/tmp/schedule.csv");
  EXPECT_EQ(p.pp_microbatch_size, 2);
  EXPECT_EQ(p.pp_batch_size, 16);
  EXPECT_EQ(p.layers_per_stage, 3);
  EXPECT_EQ(p.round_virtual_stages_to_pp_multiple, RoundVirtualStages::kDown);
  ASSERT_TRUE(p.module_fqns_per_model_part.has_value());
  EXPECT_THAT(*p.module_fqns_per_model_part,
              ElementsAre(ElementsAre("model.embed", "model.layers.0"),
                          ElementsAre("model.layers.1", "lm_head")));
  EXPECT_FALSE(p.patch_inner_model || p.patch_causal_lm_model);
  EXPECT_TRUE(p.patch_stage_backward_maybe_with_nosync && p.scale_grads_in_schedule);
  EXPECT_EQ(p.dtype, Dtype::kBfloat16);
  EXPECT_EQ(p.pp_seq_len, 4096);
  // loss_fn is not representable: ignored with a warning naming it.
  EXPECT_THAT(recipe.warnings, ElementsAre(HasSubstr("distributed.pipeline.loss_fn")));
}

TEST(RecipeFieldsTest, MoeFields) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(R"(distributed:
  ep_size: 8
  moe:
    ignore_router_for_ac: true
    reshard_after_forward: true
    lm_head_precision: fp32
    wrap_outer_model: false
    mp_policy:
      _target_: torch.distributed.fsdp.MixedPrecisionPolicy
      param_dtype: bfloat16
      reduce_dtype: float32
)"));
  ASSERT_TRUE(recipe.moe.has_value());
  const MoEParallelizerConfig& m = *recipe.moe;
  EXPECT_TRUE(m.ignore_router_for_ac && m.reshard_after_forward);
  EXPECT_EQ(m.lm_head_precision, Dtype::kFloat32);
  EXPECT_FALSE(m.wrap_outer_model);
  ASSERT_TRUE(m.mp_policy.has_value());
  EXPECT_EQ(m.mp_policy->param_dtype, Dtype::kBfloat16);
  EXPECT_EQ(m.mp_policy->reduce_dtype, Dtype::kFloat32);
  EXPECT_EQ(m.mp_policy->output_dtype, std::nullopt);
  // §2 (changed in 0.7.0): a MixedPrecisionPolicy map is read as FSDP2's: cast_forward_inputs
  // false.
  EXPECT_FALSE(m.mp_policy->cast_forward_inputs);
}

// ---- dist_env, teacher section, unrelated content -------------------------------------------

TEST(RecipeDistEnvTest, BackendAndTimeout) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe,
                       Parse("dist_env:\n  backend: nccl\n  timeout_minutes: 10\n  extra: 1\n"
                             "distributed: {}\n"));
  EXPECT_EQ(recipe.dist_env.backend, "nccl");
  EXPECT_EQ(recipe.dist_env.timeout_minutes, 10.0);
  EXPECT_EQ(recipe.dist_env.Timeout(), absl::Minutes(10));
  ASSERT_OK_AND_ASSIGN(Recipe fractional,
                       Parse("dist_env:\n  timeout_minutes: 0.5\ndistributed: {}\n"));
  EXPECT_EQ(fractional.dist_env.Timeout(), absl::Seconds(30));
  ASSERT_OK_AND_ASSIGN(Recipe none, Parse("distributed: {}\n"));
  EXPECT_FALSE(none.dist_env.backend.has_value());
  EXPECT_FALSE(none.dist_env.Timeout().has_value());
}

TEST(RecipeTeacherTest, TeacherSectionIsReadSeparately) {
  const std::string yaml =
      "separate_meshes: true\ndistributed:\n  dp_size: 2\n"
      "teacher_distributed:\n  tp_size: 2\n  dp_size: 1\n  activation_checkpointing: maybe\n";
  const std::string good =
      "separate_meshes: true\ndistributed:\n  dp_size: 2\n"
      "teacher_distributed:\n  tp_size: 2\n  dp_size: 1\n";
  ASSERT_OK_AND_ASSIGN(Recipe student, Parse(good));
  EXPECT_TRUE(student.has_teacher_section);
  EXPECT_EQ(student.request.sizes.dp, 2);
  EXPECT_FALSE(student.request.sizes.tp.has_value());
  ASSERT_OK_AND_ASSIGN(Recipe teacher, Parse(good, Section::kTeacherDistributed));
  EXPECT_EQ(teacher.section, Section::kTeacherDistributed);
  EXPECT_EQ(teacher.request.sizes.tp, 2);
  EXPECT_EQ(teacher.request.sizes.dp, 1);
  // Errors in the teacher section name it.
  EXPECT_THAT(Parse(yaml, Section::kTeacherDistributed),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("teacher_distributed.activation_checkpointing must be"),
                             HasSubstr(Where(yaml, "checkpointing: ")))));
  ASSERT_OK_AND_ASSIGN(Recipe alone, Parse("distributed: {}\n"));
  EXPECT_FALSE(alone.has_teacher_section);
  EXPECT_EQ(SectionName(Section::kTeacherDistributed), "teacher_distributed");
  EXPECT_EQ(*ParseSection("teacher_distributed"), Section::kTeacherDistributed);
  EXPECT_EQ(*ParseSection("distributed"), Section::kDistributed);
  EXPECT_THAT(ParseSection("student"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("teacher_distributed")));
}

TEST(RecipeTeacherTest, OverriddenSizesAreCheckedBeforeTheRanksAreSplit) {
  const std::string yaml =
      "separate_meshes: true\ndistributed:\n  dp_size: 2\n"
      "teacher_distributed:\n  tp_size: 2\n  dp_size: 1\n";
  RecipeOverrides infer;
  infer.sizes.dp = -1;  // "infer": the split would not be explicit
  EXPECT_THAT(ParseRecipe(yaml, kFile, Section::kDistributed, infer),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("distributed.dp_size must be set when separate_meshes=true")));
  RecipeOverrides negative;
  negative.sizes.dp = -5;
  EXPECT_THAT(
      ParseRecipe(yaml, kFile, Section::kDistributed, negative),
      StatusIs(absl::StatusCode::kInvalidArgument, "dp_size must be a positive integer, got -5"));
}

TEST(RecipeTest, UnrelatedSectionsAreIgnored) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(R"(recipe: Anything
model:
  _target_: not.a.real.Module
  tp_size: banana
loss_fn:
  _target_: x.Y
dataset: [1, 2, {3: 4}]
model: duplicated unrelated keys are not nmesh's business
distributed:
  tp_size: 2
)"));
  EXPECT_EQ(recipe.request.sizes.tp, 2);
  EXPECT_THAT(recipe.warnings, IsEmpty());
}

TEST(RecipeTest, MergeKeysAndAnchorsWork) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(R"(base: &base
  tp_size: 2
  cp_size: 2
  sequence_parallel: true
distributed:
  <<: *base
  cp_size: 4
)"));
  EXPECT_EQ(recipe.request.sizes.tp, 2);
  EXPECT_EQ(recipe.request.sizes.cp, 4);  // explicit keys win over merged ones
  EXPECT_TRUE(std::get<FSDP2Config>(recipe.strategy_config).sequence_parallel);
}

// ---- Positions and annotation ---------------------------------------------------------------

TEST(RecipePositionsTest, PositionsOfKeys) {
  const std::string yaml =
      "# comment\n"
      "distributed:\n"
      "  tp_size: 2\n"
      "  pipeline:\n"
      "    pp_schedule: gpipe\n"
      "  pp_size:   2\n"
      "dist_env:\n"
      "  timeout_minutes: 3\n";
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(yaml));
  EXPECT_EQ(recipe.PositionOf("distributed.tp_size"), After(yaml, "tp_size: "));
  EXPECT_EQ(recipe.PositionOf("tp_size"), After(yaml, "tp_size: "));
  EXPECT_EQ(recipe.PositionOf("distributed.pp_size"), After(yaml, "pp_size:   "));
  EXPECT_EQ(recipe.PositionOf("pipeline.pp_schedule"), After(yaml, "pp_schedule: "));
  EXPECT_EQ(recipe.PositionOf("dist_env.timeout_minutes"), After(yaml, "timeout_minutes: "));
  EXPECT_EQ(recipe.PositionOf("distributed"), (SourcePosition{2, 1}));
  EXPECT_FALSE(recipe.PositionOf("cp_size").has_value());
  EXPECT_EQ(recipe.Where("tp_size"), Where(yaml, "tp_size: "));
  EXPECT_EQ(recipe.Where("ep_size"), "");
}

TEST(RecipePositionsTest, AnnotateAppendsThePosition) {
  const std::string yaml = "distributed:\n  dp_size: 3\n  tp_size: 2\n";
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(yaml));
  const absl::Status annotated =
      recipe.Annotate(absl::InvalidArgumentError("bad tp"), "distributed.tp_size");
  EXPECT_THAT(annotated, StatusIs(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("bad tp (" + Where(yaml, "tp_size: ") + ")")));
  EXPECT_THAT(recipe.Annotate(absl::OkStatus(), "tp_size"), IsOk());
  EXPECT_EQ(recipe.Annotate(absl::InternalError("x"), "cp_size"), absl::InternalError("x"));

  // Size errors from a builder point at the first field they carry that the file sets; the
  // message text plays no part.
  EXPECT_THAT(recipe.AnnotateSizeError(
                  validate::WithFields(absl::InvalidArgumentError("the sizes disagree"), "dp_size",
                                       {"dp_size", "dp_replicate_size"})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "the sizes disagree (" + Where(yaml, "dp_size: ") + ")"));
  EXPECT_THAT(recipe.AnnotateSizeError(validate::WithFields(
                  absl::InvalidArgumentError("world_size (8) must be divisible by (tp_size * "
                                             "cp_size * pp_size) (2 * 1 * 1 = 2)"),
                  "", {"world_size", "cp_size", "tp_size", "pp_size"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(Where(yaml, "tp_size: "))));
  // No field carried (whatever the message names): the section.
  EXPECT_THAT(recipe.AnnotateSizeError(absl::InvalidArgumentError("tp_size is too large")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(std::string("tp_size is too large (") + kFile + ":1:1)")));
}

TEST(RecipePositionsTest, AnnotationIsDecidedByThePayloadNotTheMessage) {
  const std::string yaml = "distributed:\n  dp_size: 3\n  tp_size: 2\n";
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(yaml));
  const std::string where = Where(yaml, "tp_size: ");
  // Annotate marks its result, keeping the fields; annotating again adds nothing.
  const absl::Status once = recipe.Annotate(
      validate::FieldError("tp_size", "tp_size must be a positive integer, got 0"), "tp_size");
  EXPECT_TRUE(validate::IsAnnotated(once));
  EXPECT_EQ(validate::FieldsOf(once).subject, "tp_size");
  EXPECT_EQ(recipe.AnnotateSizeError(once), once);
  EXPECT_THAT(recipe.AnnotateSizeError(once),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tp_size must be a positive integer, got 0 (" + where + ")"));
  // A message that happens to contain the file's name is still annotated.
  const absl::Status names_file = validate::FieldError("tp_size", std::string("bad ") + kFile);
  EXPECT_THAT(recipe.AnnotateSizeError(names_file),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       std::string("bad ") + kFile + " (" + where + ")"));
  // Without a position nothing is added, and nothing is marked.
  EXPECT_FALSE(validate::IsAnnotated(
      recipe.Annotate(absl::InvalidArgumentError("x"), "distributed.cp_size")));
}

// ---- Overrides ------------------------------------------------------------------------------

TEST(RecipeOverridesTest, FlagsOverrideTheFileBeforeTheRules) {
  const std::string yaml =
      "distributed:\n  tp_size: two\n  pp_size: 2\n  pipeline:\n    pp_schedule: gpipe\n";
  RecipeOverrides flags;
  flags.sizes.tp = 4;  // the file's bad value is replaced, hence never read
  flags.sizes.pp = 1;  // drops the pipeline block with a warning
  flags.sizes.world_size = 8;
  ASSERT_OK_AND_ASSIGN(Recipe recipe, Parse(yaml, Section::kDistributed, flags));
  EXPECT_EQ(recipe.request.sizes.tp, 4);
  EXPECT_EQ(recipe.request.sizes.pp, 1);
  EXPECT_EQ(recipe.request.sizes.world_size, 8);
  EXPECT_FALSE(recipe.pipeline.has_value());
  EXPECT_THAT(recipe.warnings, ElementsAre(HasSubstr("pp_size=1")));
  EXPECT_FALSE(recipe.PositionOf("tp_size").has_value());
  EXPECT_TRUE(recipe.PositionOf("pipeline").has_value());
}

TEST(RecipeOverridesTest, StrategyOverrideAppliesItsRules) {
  RecipeOverrides flags;
  flags.strategy = StrategyKind::kDdp;
  ASSERT_OK_AND_ASSIGN(Recipe ddp, Parse("distributed:\n  strategy: fsdp2\n  static_graph: true\n",
                                         Section::kDistributed, flags));
  EXPECT_EQ(ddp.request.strategy, StrategyKind::kDdp);
  EXPECT_TRUE(std::get<DDPConfig>(ddp.strategy_config).static_graph);
  EXPECT_THAT(Parse("distributed:\n  sequence_parallel: true\n", Section::kDistributed, flags),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Unknown options for strategy 'ddp': ['sequence_parallel']")));
  // A conflict introduced by a flag has no file position to point at.
  RecipeOverrides tp;
  tp.sizes.tp = 2;
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n", Section::kDistributed, tp),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ddp does not support tensor parallelism")));
}

// ---- Strategy conflicts (§4 before any mesh, and §7) ------------------------------------------

TEST(RecipeConflictsTest, InTheContractOrder) {
  // dp_replicate is checked before megatron's pp.
  EXPECT_THAT(
      Parse("distributed:\n  strategy: megatron_fsdp\n  pp_size: 2\n  dp_replicate_size: 2\n"
            "  pipeline: {}\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("dp_replicate_size is only supported with FSDP2Config")));
  EXPECT_THAT(Parse("distributed:\n  strategy: megatron_fsdp\n  ep_size: 2\n  pp_size: 2\n"
                    "  pipeline: {}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("megatron_fsdp does not support pipeline parallelism")));
  EXPECT_THAT(Parse("distributed:\n  strategy: megatron_fsdp\n  ep_size: 2\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("megatron_fsdp does not support expert parallelism")));
  // §2 (changed in 0.7.0): MegatronFSDP has no sequence_parallel; it is an unknown option.
  EXPECT_THAT(Parse("distributed:\n  strategy: megatron_fsdp\n  sequence_parallel: true\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Unknown options for strategy 'megatron_fsdp': "
                                 "['sequence_parallel']")));
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n  ep_size: 2\n  cp_size: 2\n  pp_size: 2\n"
                    "  pipeline: {}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ddp does not support pipeline parallelism")));
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n  ep_size: 2\n  cp_size: 2\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ddp does not support context parallelism")));
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n  ep_size: 2\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ddp does not support expert parallelism")));
  // Size 1 everywhere is fine.
  EXPECT_THAT(Parse("distributed:\n  strategy: ddp\n  tp_size: 1\n  pp_size: 1\n  cp_size: 1\n"
                    "  ep_size: 1\n  dp_replicate_size: 1\n"),
              IsOk());
}

}  // namespace
}  // namespace nmesh::config

// ==== NeMo AutoModel 0.7.0 changes (contract paragraphs marked "changed in 0.7.0") ============
namespace nmesh::config {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<Recipe> P(const std::string& yaml, Section section = Section::kDistributed,
                         const RecipeOverrides& overrides = {}) {
  return ParseRecipe(yaml, "t.yaml", section, overrides);
}
void ExpectRejected(const std::string& yaml, const std::string& message) {
  EXPECT_THAT(P(yaml), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message))) << yaml;
}

// §2: no config has a `backend` field.
TEST(Contract070Test, BackendIsAnUnknownOptionForEveryStrategy) {
  ExpectRejected("distributed:\n  backend: nccl\n",
                 "Unknown options for strategy 'fsdp2': ['backend']");
  ExpectRejected("distributed:\n  strategy: mfsdp\n  backend: nccl\n",
                 "Unknown options for strategy 'mfsdp': ['backend']");
  ExpectRejected("distributed:\n  strategy: ddp\n  backend: gloo\n",
                 "Unknown options for strategy 'ddp': ['backend']");
}

// §2 MegatronFSDPConfig: tp_plan, sequence_parallel, mp_policy, activation_checkpointing_scope are
// unknown options.
TEST(Contract070Test, MegatronFsdpUnknownOptions) {
  for (const char* key : {"sequence_parallel: true", "tp_plan: {a: b}", "mp_policy: {}",
                          "activation_checkpointing_scope: all"}) {
    const std::string name = std::string(key).substr(0, std::string(key).find(':'));
    ExpectRejected(std::string("distributed:\n  strategy: megatron_fsdp\n  ") + key + "\n",
                   "Unknown options for strategy 'megatron_fsdp': ['" + name + "']");
  }
}

// §2 FSDP2Config: mp_policy default and map semantics; tp_plan map or string.
TEST(Contract070Test, Fsdp2MixedPrecisionAndTpPlan) {
  ASSERT_OK_AND_ASSIGN(Recipe defaults, P("distributed:\n  mp_policy: null\n"));
  const MixedPrecisionPolicy& d = std::get<FSDP2Config>(defaults.strategy_config).mp_policy;
  EXPECT_EQ(d.param_dtype, Dtype::kBfloat16);
  EXPECT_EQ(d.reduce_dtype, Dtype::kFloat32);
  EXPECT_EQ(d.output_dtype, std::nullopt);
  EXPECT_FALSE(d.cast_forward_inputs);
  ASSERT_OK_AND_ASSIGN(Recipe map,
                       P("distributed:\n  mp_policy:\n    _target_: "
                         "torch.distributed.fsdp.MixedPrecisionPolicy\n    reduce_dtype: fp32\n"));
  const MixedPrecisionPolicy& m = std::get<FSDP2Config>(map.strategy_config).mp_policy;
  EXPECT_EQ(m.param_dtype, std::nullopt);  // unset dtypes are none in a map
  EXPECT_EQ(m.reduce_dtype, Dtype::kFloat32);
  EXPECT_EQ(m.output_dtype, std::nullopt);
  EXPECT_FALSE(m.cast_forward_inputs);
  ASSERT_OK_AND_ASSIGN(Recipe plan, P("distributed:\n  tp_plan: my.module.custom_plan\n"));
  EXPECT_EQ(std::get<std::string>(*std::get<FSDP2Config>(plan.strategy_config).tp_plan),
            "my.module.custom_plan");
}

// §2 multimodal: every message.
TEST(Contract070Test, MultimodalIsTypedAndValidated) {
  const std::string d = "distributed:\n  multimodal:\n";
  ASSERT_OK_AND_ASSIGN(Recipe ok, P(d + "    frozen_sharding: Per-Layer\n"));
  EXPECT_EQ(std::get<FSDP2Config>(ok.strategy_config).multimodal.frozen_sharding,
            FrozenSharding::kPerLayer);
  ExpectRejected(d + "    frozen_sharding: 3\n",
                 "distributed.multimodal.frozen_sharding must be a string. Got int.");
  ExpectRejected(d + "    frozen_sharding: sideways\n",
                 "distributed.multimodal.frozen_sharding must be one of: root, per_layer, "
                 "replicate. Got 'sideways'.");
  const std::string fs = d + "    vision:\n      frame_sharding:\n        ";
  const std::string prefix = "distributed.multimodal.vision.frame_sharding.";
  ExpectRejected(fs + "enabled: 3\n", prefix + "enabled must be a boolean");
  ExpectRejected(fs + "mesh_dims: cp\n",
                 prefix + "mesh_dims must be a list of mesh-dimension names");
  ExpectRejected(fs + "mesh_dims: [cp, tp]\n",
                 prefix + "mesh_dims currently supports only [\"cp\"]");
  ExpectRejected(fs + "min_tokens: -1\n", prefix + "min_tokens must be a non-negative integer");
  ExpectRejected(fs + "min_frames: true\n", prefix + "min_frames must be a non-negative integer");
  ExpectRejected(fs + "min_local_patch_rows: 1.5\n",
                 prefix + "min_local_patch_rows must be a non-negative integer");
  ExpectRejected(fs + "cost_alpha: fast\n",
                 prefix + "cost_alpha must be \"auto\", null, or a non-negative integer");
  ASSERT_OK_AND_ASSIGN(Recipe alpha, P(fs + "cost_alpha: null\n"));
  EXPECT_FALSE(std::get<FSDP2Config>(alpha.strategy_config)
                   .multimodal.vision.frame_sharding.cost_alpha_auto);
  ExpectRejected("distributed:\n  multimodal: null\n",
                 "FSDP2Config.multimodal must be a MultimodalDistributedConfig instance.");
  ExpectRejected(d + "    vision: 3\n",
                 "MultimodalDistributedConfig.vision must be a MultimodalVisionConfig instance.");
  ExpectRejected(d + "    vision:\n      frame_sharding: null\n",
                 "MultimodalVisionConfig.frame_sharding must be a CpVisionFrameShardingConfig "
                 "instance.");
}

// §2 activation_checkpointing_scope: normalisation and messages.
TEST(Contract070Test, ActivationCheckpointingScope) {
  ASSERT_OK_AND_ASSIGN(Recipe r, P("distributed:\n  activation_checkpointing_scope: "
                                   "\"Vision + language, vision\"\n"));
  EXPECT_THAT(std::get<FSDP2Config>(r.strategy_config).activation_checkpointing_scope,
              ElementsAre("vision", "language"));
  ExpectRejected("distributed:\n  activation_checkpointing_scope: 3\n",
                 "activation_checkpointing_scope must be a string or list of strings.");
  ExpectRejected("distributed:\n  activation_checkpointing_scope: [vision, 3]\n",
                 "activation_checkpointing_scope entries must be strings.");
  ExpectRejected("distributed:\n  activation_checkpointing_scope: Text\n",
                 "activation_checkpointing_scope must use only: all, audio, language, multimodal, "
                 "vision. Got 'text'.");
  ExpectRejected("distributed:\n  strategy: ddp\n  activation_checkpointing_scope: [all, vision]\n",
                 "activation_checkpointing_scope='all' cannot be combined with other scopes.");
}

// §2 PipelineConfig and MoEParallelizerConfig.
TEST(Contract070Test, PipelineAndMoeFields) {
  ASSERT_OK_AND_ASSIGN(Recipe r, P("distributed:\n  pp_size: 2\n  ep_size: 2\n  pipeline:\n"
                                   "    pp_recv_buffer_pool: true\n"
                                   "    pp_recv_buffer_pool_slack: 0\n"
                                   "  moe:\n    mp_policy:\n      _target_: "
                                   "torch.distributed.fsdp.MixedPrecisionPolicy\n"
                                   "      param_dtype: bf16\n"));
  EXPECT_TRUE(r.pipeline->pp_recv_buffer_pool);
  EXPECT_EQ(r.pipeline->pp_recv_buffer_pool_slack, 0);
  EXPECT_TRUE(r.moe->ignore_router_for_ac);
  EXPECT_EQ(r.moe->mp_policy->param_dtype, Dtype::kBfloat16);
  EXPECT_EQ(r.moe->mp_policy->reduce_dtype, std::nullopt);
  EXPECT_FALSE(r.moe->mp_policy->cast_forward_inputs);
  ExpectRejected("distributed:\n  pp_size: 2\n  pipeline:\n    pp_recv_buffer_pool_slack: -1\n",
                 "pp_recv_buffer_pool_slack must be >= 0, got -1");
}

// §2 dtype strings in a recipe.
TEST(Contract070Test, DtypeStrings) {
  ASSERT_OK_AND_ASSIGN(Recipe r, P("distributed:\n  autocast_dtype: TORCH.FP16\n"));
  EXPECT_EQ(std::get<FSDP2Config>(r.strategy_config).autocast_dtype, Dtype::kFloat16);
  ExpectRejected("distributed:\n  autocast_dtype: fp8\n", "Unknown dtype string: fp8");
  ExpectRejected("distributed:\n  mp_policy: {param_dtype: float64}\n",
                 "distributed.mp_policy.param_dtype");
}

// §3: null and the strings none/None are null; a quoted "null" is a string.
TEST(Contract070Test, NullSpellings) {
  for (const char* null : {"null", "~", "none", "None", "'None'"}) {
    ASSERT_OK_AND_ASSIGN(Recipe r, P(std::string("distributed:\n  tp_size: ") + null + "\n"));
    EXPECT_FALSE(r.request.sizes.tp.has_value()) << null;
  }
  ExpectRejected("distributed:\n  tp_size: \"null\"\n", "tp_size must be a positive integer");
}

// §8 rule 5: mp_policy etc. are built for every strategy, before the unknown-options check.
TEST(Contract070Test, Rule5BuildsBeforeTheStrategyCheck) {
  ExpectRejected("distributed:\n  strategy: megatron_fsdp\n  mp_policy: {param_dtype: fp8}\n",
                 "Unknown dtype string: fp8");
  ExpectRejected("distributed:\n  strategy: ddp\n  multimodal: {frozen_sharding: x}\n",
                 "distributed.multimodal.frozen_sharding must be one of: root, per_layer, "
                 "replicate. Got 'x'.");
}

// §8 rule 6: only fsdp2 and ddp, on the name before it is resolved.
TEST(Contract070Test, Rule6SelectiveOnlyFsdp2AndDdp) {
  const std::string message =
      "selective activation checkpointing is supported only for FSDP2 and DDP configs.";
  ExpectRejected("distributed:\n  strategy: mfsdp\n  activation_checkpointing: selective\n",
                 message);
  ExpectRejected("distributed:\n  strategy: bogus\n  activation_checkpointing: selective\n",
                 message);
  EXPECT_OK(P("distributed:\n  strategy: ddp\n  activation_checkpointing: selective\n").status());
}

// §8 knowledge distillation in the recipe layer.
TEST(Contract070Test, KnowledgeDistillation) {
  ExpectRejected("distributed: {dp_size: 2}\nteacher_distributed: {dp_size: 2}\n",
                 "teacher_distributed requires separate_meshes=true");
  ExpectRejected("separate_meshes: true\ndistributed: {dp_size: 2}\n",
                 "separate_meshes=true requires a teacher_distributed section");
  ExpectRejected(
      "separate_meshes: true\ndistributed: {tp_size: 2}\n"
      "teacher_distributed: {dp_size: 2}\n",
      "distributed.dp_size must be set when separate_meshes=true so the "
      "non-overlapping rank split is explicit");
  // An error in the teacher rejects the student too.
  ExpectRejected(
      "separate_meshes: true\ndistributed: {dp_size: 2}\n"
      "teacher_distributed: {dp_size: 2, bogus: 1}\n",
      "Unknown options for strategy 'fsdp2': ['bogus']");
  ExpectRejected(
      "separate_meshes: true\ndistributed: {dp_size: 2, strategy: ddp}\n"
      "teacher_distributed: {dp_size: 2}\n",
      "Separate KD meshes currently require mesh-backed strategies; DDP is not "
      "supported");
  RecipeOverrides world;
  world.job_world_size = 8;
  EXPECT_THAT(P("separate_meshes: true\ndistributed: {dp_size: 2, tp_size: 2}\n"
                "teacher_distributed: {dp_size: 1, pp_size: 2, pipeline: {}, ep_size: 2}\n",
                Section::kDistributed, world),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Separate KD mesh sizes must use every rank exactly once: "
                                 "student=4 + teacher=2 != world_size=8")));
  world.job_world_size = 6;
  const std::string ok =
      "separate_meshes: true\ndistributed: {dp_size: 2, tp_size: 2}\n"
      "teacher_distributed: {dp_size: 1, pp_size: 2, pipeline: {}}\n";
  ASSERT_OK_AND_ASSIGN(Recipe student, P(ok, Section::kDistributed, world));
  EXPECT_EQ(student.request.ranks, (std::vector<int64_t>{0, 1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(Recipe teacher, P(ok, Section::kTeacherDistributed, world));
  EXPECT_EQ(teacher.request.ranks, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(teacher.request.job_world_size, 6);
}

}  // namespace
}  // namespace nmesh::config
