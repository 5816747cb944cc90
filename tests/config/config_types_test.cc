// Dtype spellings, activation-checkpointing normalisation and every default of contract §2.
#include <string>
#include <variant>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/config/dtype.h"
#include "nmesh/config/parallelizer_config.h"
#include "nmesh/config/recipe.h"
#include "nmesh/config/strategy_config.h"

namespace nmesh::config {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

MATCHER_P(IsOkAndHoldsValue, expected, "") { return arg.ok() && *arg == expected; }

TEST(DtypeTest, AliasesOfEachDtype) {
  struct Case {
    const char* spelling;
    Dtype dtype;
  };
  const Case cases[] = {
      {"bf16", Dtype::kBfloat16},
      {"bfloat16", Dtype::kBfloat16},
      {"torch.bfloat16", Dtype::kBfloat16},
      {"torch.bf16", Dtype::kBfloat16},
      {"BF16", Dtype::kBfloat16},
      {"fp16", Dtype::kFloat16},
      {"float16", Dtype::kFloat16},
      {"half", Dtype::kFloat16},
      {"torch.float16", Dtype::kFloat16},
      {"torch.half", Dtype::kFloat16},
      {"fp32", Dtype::kFloat32},
      {"float32", Dtype::kFloat32},
      {"float", Dtype::kFloat32},
      {"torch.float32", Dtype::kFloat32},
      {"torch.float", Dtype::kFloat32},
      {"Torch.Float32", Dtype::kFloat32},
      // (nmesh, changed in 0.7.0) the torch. forms of fp32/fp16/bf16, any case.
      {"torch.fp32", Dtype::kFloat32},
      {"TORCH.FP16", Dtype::kFloat16},
      {"Torch.Bf16", Dtype::kBfloat16},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Dtype> parsed = ParseDtype(c.spelling);
    ASSERT_TRUE(parsed.ok()) << c.spelling << ": " << parsed.status();
    EXPECT_EQ(*parsed, c.dtype) << c.spelling;
  }
}

// §2 dtype strings (changed in 0.7.0): a string dtype_from_str does not know gives
// "Unknown dtype string: <value>".
TEST(DtypeTest, UnknownDtypesAreRejectedByName) {
  for (const char* bad : {"fp8", "torch.", "", "bfloat", "torch.fp64", "float8"}) {
    EXPECT_THAT(ParseDtype(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr(std::string("Unknown dtype string: ") + bad)))
        << bad;
  }
}

// §8 rule 12 (nmesh): a dtype 0.7.0 knows but no dtype field can hold (float64, integers, bool)
// is rejected too, naming the value, not as an unknown string.
TEST(DtypeTest, NonFloatingDtypesAreRejected) {
  for (const char* bad : {"int8", "float64", "torch.int32", "DOUBLE", "bool", "torch.long"}) {
    EXPECT_THAT(ParseDtype(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                          AllOf(HasSubstr(std::string("'") + bad + "'"),
                                                Not(HasSubstr("Unknown dtype string")))))
        << bad;
  }
}

TEST(DtypeTest, CanonicalNamesRoundTrip) {
  for (Dtype dtype : {Dtype::kBfloat16, Dtype::kFloat16, Dtype::kFloat32}) {
    ASSERT_OK_AND_ASSIGN(Dtype parsed, ParseDtype(DtypeName(dtype)));
    EXPECT_EQ(parsed, dtype);
  }
  EXPECT_EQ(DtypeName(Dtype::kBfloat16), "bfloat16");
  EXPECT_EQ(DtypeName(Dtype::kFloat16), "float16");
  EXPECT_EQ(DtypeName(Dtype::kFloat32), "float32");
}

TEST(ActivationCheckpointingTest, NormalisesLikeTheReference) {
  for (const char* off : {"false", "False", "OFF", "none", "Disabled", "no"}) {
    ASSERT_OK_AND_ASSIGN(ActivationCheckpointing mode, ParseActivationCheckpointing(off));
    EXPECT_EQ(mode, ActivationCheckpointing::kFalse) << off;
  }
  for (const char* on : {"true", "ON", "full", "Full", "enabled", "YES"}) {
    ASSERT_OK_AND_ASSIGN(ActivationCheckpointing mode, ParseActivationCheckpointing(on));
    EXPECT_EQ(mode, ActivationCheckpointing::kFull) << on;
  }
  for (const char* selective : {"selective", "SELECTIVE", "Selective"}) {
    ASSERT_OK_AND_ASSIGN(ActivationCheckpointing mode, ParseActivationCheckpointing(selective));
    EXPECT_EQ(mode, ActivationCheckpointing::kSelective) << selective;
  }
  for (const char* bad : {"partial", "1", "", "full-ish", "sel"}) {
    EXPECT_THAT(ParseActivationCheckpointing(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("activation_checkpointing must be a boolean or one of 'full', "
                                   "'selective', 'false'.")))
        << bad;
  }
  EXPECT_EQ(ActivationCheckpointingName(ActivationCheckpointing::kFalse), "false");
  EXPECT_EQ(ActivationCheckpointingName(ActivationCheckpointing::kFull), "full");
  EXPECT_EQ(ActivationCheckpointingName(ActivationCheckpointing::kSelective), "selective");
}

TEST(ActivationCheckpointingScopeTest, Normalises) {
  EXPECT_THAT(*NormalizeActivationCheckpointingScope({}), ElementsAre("all"));
  EXPECT_THAT(*NormalizeActivationCheckpointingScope({"default"}), ElementsAre("all"));
  EXPECT_THAT(*NormalizeActivationCheckpointingScope({"Language+Vision"}),
              ElementsAre("language", "vision"));
  EXPECT_THAT(*NormalizeActivationCheckpointingScope({"audio", "audio, multimodal", ""}),
              ElementsAre("audio", "multimodal"));
  EXPECT_THAT(NormalizeActivationCheckpointingScope({"text"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'text'")));
  EXPECT_THAT(NormalizeActivationCheckpointingScope({"all", "vision"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot be combined")));
}

TEST(StrategyConfigDefaultsTest, Fsdp2) {
  const FSDP2Config c;
  EXPECT_FALSE(c.sequence_parallel);
  EXPECT_FALSE(c.tp_plan.has_value());
  EXPECT_FALSE(c.patch_is_packed_sequence);
  EXPECT_EQ(c.mp_policy.param_dtype, Dtype::kBfloat16);
  EXPECT_EQ(c.mp_policy.reduce_dtype, Dtype::kFloat32);
  // Contract §2 (changed in 0.7.0): output_dtype none, cast_forward_inputs false.
  EXPECT_FALSE(c.mp_policy.output_dtype.has_value());
  EXPECT_FALSE(c.mp_policy.cast_forward_inputs);
  EXPECT_FALSE(c.offload_policy.has_value());
  EXPECT_TRUE(OffloadPolicy{}.pin_memory);
  EXPECT_FALSE(c.autocast_dtype.has_value());
  EXPECT_EQ(c.activation_checkpointing, ActivationCheckpointing::kFalse);
  EXPECT_THAT(c.activation_checkpointing_scope, ElementsAre("all"));
  EXPECT_TRUE(c.defer_fsdp_grad_sync);
  EXPECT_FALSE(c.reshard_after_forward.has_value());
  EXPECT_FALSE(c.enable_async_tensor_parallel);
  EXPECT_FALSE(c.enable_compile);
  EXPECT_FALSE(c.enable_fsdp2_prefetch);
  EXPECT_EQ(c.fsdp2_backward_prefetch_depth, 2);
  EXPECT_EQ(c.fsdp2_forward_prefetch_depth, 1);
  EXPECT_EQ(c.multimodal.frozen_sharding, FrozenSharding::kRoot);
  const CpVisionFrameShardingConfig& fs = c.multimodal.vision.frame_sharding;
  EXPECT_FALSE(fs.enabled);
  EXPECT_THAT(fs.mesh_dims, ElementsAre("cp"));
  EXPECT_EQ(fs.min_tokens, 2048);
  EXPECT_EQ(fs.min_frames, 32);
  EXPECT_EQ(fs.min_local_patch_rows, 96);
  EXPECT_TRUE(fs.cost_alpha_auto);
  EXPECT_FALSE(fs.cost_alpha.has_value());
}

TEST(StrategyConfigDefaultsTest, MegatronFsdp) {
  const MegatronFSDPConfig c;
  EXPECT_FALSE(c.megatron_fsdp_unit_modules.has_value());
  EXPECT_EQ(c.zero_dp_strategy, 3);
  EXPECT_FALSE(c.init_fsdp_with_meta_device);
  EXPECT_FALSE(c.grad_reduce_in_fp32);
  EXPECT_FALSE(c.preserve_fp32_weights);
  EXPECT_TRUE(c.overlap_grad_reduce);
  EXPECT_TRUE(c.overlap_param_gather);
  EXPECT_TRUE(c.check_for_nan_in_grad);
  EXPECT_FALSE(c.report_nan_in_param_grad);
  EXPECT_FALSE(c.average_in_collective);
  EXPECT_FALSE(c.disable_bucketing);
  EXPECT_FALSE(c.calculate_per_token_loss);
  EXPECT_FALSE(c.keep_fp8_transpose_cache);
  EXPECT_FALSE(c.nccl_ub);
  EXPECT_FALSE(c.fsdp_double_buffer);
  EXPECT_FALSE(c.activation_checkpointing);
}

TEST(StrategyConfigDefaultsTest, Ddp) {
  const DDPConfig c;
  EXPECT_EQ(c.activation_checkpointing, ActivationCheckpointing::kFalse);
  EXPECT_THAT(c.activation_checkpointing_scope, ElementsAre("all"));
  EXPECT_FALSE(c.broadcast_buffers);
  EXPECT_FALSE(c.find_unused_parameters);
  EXPECT_FALSE(c.static_graph);
  EXPECT_FALSE(c.bucket_cap_mb.has_value());
  EXPECT_FALSE(c.gradient_as_bucket_view);
  EXPECT_FALSE(c.autocast_dtype.has_value());
}

TEST(StrategyConfigDefaultsTest, Pipeline) {
  const PipelineConfig c;
  EXPECT_EQ(c.pp_schedule, "1f1b");
  EXPECT_FALSE(c.pp_schedule_csv.has_value());
  EXPECT_EQ(c.pp_microbatch_size, 1);
  EXPECT_EQ(c.pp_batch_size, 1);
  EXPECT_FALSE(c.layers_per_stage.has_value());
  EXPECT_FALSE(c.round_virtual_stages_to_pp_multiple.has_value());
  EXPECT_FALSE(c.module_fqns_per_model_part.has_value());
  EXPECT_TRUE(c.patch_inner_model);
  EXPECT_TRUE(c.patch_causal_lm_model);
  EXPECT_FALSE(c.patch_stage_backward_maybe_with_nosync);
  EXPECT_FALSE(c.dtype.has_value());
  EXPECT_FALSE(c.scale_grads_in_schedule);
  EXPECT_FALSE(c.pp_seq_len.has_value());
  EXPECT_FALSE(c.pp_recv_buffer_pool);
  EXPECT_EQ(c.pp_recv_buffer_pool_slack, 2);
  EXPECT_EQ(RoundVirtualStagesName(RoundVirtualStages::kUp), "up");
  EXPECT_EQ(RoundVirtualStagesName(RoundVirtualStages::kDown), "down");
}

TEST(StrategyConfigDefaultsTest, Moe) {
  const MoEParallelizerConfig c;
  EXPECT_TRUE(c.ignore_router_for_ac);  // changed in 0.7.0
  EXPECT_FALSE(c.reshard_after_forward);
  EXPECT_FALSE(c.lm_head_precision.has_value());
  EXPECT_TRUE(c.wrap_outer_model);
  EXPECT_FALSE(c.mp_policy.has_value());
}

TEST(StrategyConfigTest, DefaultConfigMatchesKind) {
  for (StrategyKind kind :
       {StrategyKind::kFsdp2, StrategyKind::kMegatronFsdp, StrategyKind::kDdp}) {
    EXPECT_EQ(StrategyKindOf(DefaultStrategyConfig(kind)), kind);
  }
  EXPECT_TRUE(std::holds_alternative<FSDP2Config>(DefaultStrategyConfig(StrategyKind::kFsdp2)));
  EXPECT_TRUE(std::holds_alternative<DDPConfig>(DefaultStrategyConfig(StrategyKind::kDdp)));
  EXPECT_EQ(std::get<FSDP2Config>(DefaultStrategyConfig(StrategyKind::kFsdp2)), FSDP2Config{});
}

// Each name table: every name parses to its value, and each value prints as its first name.
TEST(NameTablesTest, PrintingAndParsingUseOneTable) {
  for (const NamedValue<Dtype>& entry : kDtypeNames) {
    EXPECT_THAT(ParseDtype(entry.name), IsOkAndHoldsValue(entry.value)) << entry.name;
  }
  for (const NamedValue<ActivationCheckpointing>& entry : kActivationCheckpointingNames) {
    EXPECT_THAT(ParseActivationCheckpointing(entry.name), IsOkAndHoldsValue(entry.value))
        << entry.name;
  }
  for (const NamedValue<StrategyKind>& entry : kStrategyNames) {
    EXPECT_THAT(ParseStrategy(entry.name), IsOkAndHoldsValue(entry.value)) << entry.name;
  }
  for (const NamedValue<Section>& entry : kSectionNames) {
    EXPECT_THAT(ParseSection(entry.name), IsOkAndHoldsValue(entry.value)) << entry.name;
    EXPECT_EQ(SectionName(entry.value), entry.name);
  }
  EXPECT_EQ(FrozenShardingName(FrozenSharding::kPerLayer), "per_layer");
  EXPECT_EQ(NameList<FrozenSharding>(kFrozenShardingNames, ", "), "root, per_layer, replicate");
  EXPECT_EQ(StrategyName(StrategyKind::kMegatronFsdp), "megatron_fsdp");
  // A value outside the enum has no name.
  EXPECT_EQ(DtypeName(static_cast<Dtype>(9)), "unknown");
}

}  // namespace
}  // namespace nmesh::config
