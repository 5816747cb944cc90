#include "nmesh/config/internal/parallelizer_config_fields.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/internal/strategy_config_fields.h"

namespace nmesh::config::internal {

absl::Status Read(const Value& v, std::optional<RoundVirtualStages>& out) {
  const std::optional<RoundVirtualStages> rounding =
      v.IsScalar() ? ValueNamed<RoundVirtualStages>(kRoundVirtualStagesNames,
                                                    absl::AsciiStrToLower(v.Text()))
                   : std::nullopt;
  if (!rounding.has_value()) return v.Invalid("'up' or 'down'");
  out = rounding;
  return absl::OkStatus();
}

namespace {

absl::Status ReadRecvBufferPoolSlack(const Value& v, PipelineConfig& config) {
  if (v.IsNull()) return v.Invalid("an integer >= 0");
  NMESH_ASSIGN_OR_RETURN(int64_t slack, v.Int(IntRule::kAny));
  if (slack < 0) {
    return v.Error(absl::StrFormat("pp_recv_buffer_pool_slack must be >= 0, got %d", slack));
  }
  config.pp_recv_buffer_pool_slack = slack;
  return absl::OkStatus();
}

}  // namespace

const Fields<PipelineConfig>& PipelineFieldTable() {
  using C = PipelineConfig;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(pp_schedule),
      NMESH_FIELD(pp_schedule_csv),
      NMESH_FIELD(pp_microbatch_size, IntRule::kPositive),
      NMESH_FIELD(pp_batch_size, IntRule::kPositive),
      NMESH_FIELD(layers_per_stage, IntRule::kPositive),
      NMESH_FIELD(round_virtual_stages_to_pp_multiple),
      NMESH_FIELD(module_fqns_per_model_part),
      NMESH_FIELD(patch_inner_model),
      NMESH_FIELD(patch_causal_lm_model),
      NMESH_FIELD(patch_stage_backward_maybe_with_nosync),
      NMESH_FIELD(dtype),
      NMESH_FIELD(scale_grads_in_schedule),
      NMESH_FIELD(pp_seq_len, IntRule::kPositive),
      NMESH_FIELD(pp_recv_buffer_pool),
      Field<C>{"pp_recv_buffer_pool_slack", ReadRecvBufferPoolSlack},
  };
  return *fields;
}

const Fields<MoEParallelizerConfig>& MoeFieldTable() {
  using C = MoEParallelizerConfig;
  static const auto* fields = new Fields<C>{
      NMESH_FIELD(ignore_router_for_ac),
      NMESH_FIELD(reshard_after_forward),
      NMESH_FIELD(lm_head_precision),
      NMESH_FIELD(wrap_outer_model),
      NMESH_FIELD(mp_policy),
  };
  return *fields;
}

}  // namespace nmesh::config::internal
