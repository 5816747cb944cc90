// Typed configs for pipeline parallelism and MoE parallelization (NeMo AutoModel's PipelineConfig
// and MoEParallelizerConfig), with the reference's defaults. A MeshContext carries them next to the
// strategy config.
//
//   PipelineConfig pipeline;               // pp_schedule "1f1b", microbatch 1, ...
//   pipeline.pp_microbatch_size = 4;
//   MoEParallelizerConfig moe;             // wrap_outer_model = true, ...
//
// Plain values: copyable, comparable with ==, thread-compatible.
#ifndef NMESH_CONFIG_PARALLELIZER_CONFIG_H_
#define NMESH_CONFIG_PARALLELIZER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nmesh/base/enum_names.h"
#include "nmesh/config/dtype.h"
#include "nmesh/config/strategy_config.h"

namespace nmesh::config {

// `round_virtual_stages_to_pp_multiple`: round the number of virtual stages up or down to a
// multiple of pp_size.
enum class RoundVirtualStages { kUp, kDown };

inline constexpr NamedValue<RoundVirtualStages> kRoundVirtualStagesNames[] = {
    {RoundVirtualStages::kUp, "up"},
    {RoundVirtualStages::kDown, "down"},
};

// "up" or "down".
std::string_view RoundVirtualStagesName(RoundVirtualStages rounding);

// The reference's `loss_fn` (a Python callable) is not representable and is not a field; the recipe
// layer ignores it with a warning.
struct PipelineConfig {
  std::optional<std::string> pp_schedule = "1f1b";
  std::optional<std::string> pp_schedule_csv;
  int64_t pp_microbatch_size = 1;
  int64_t pp_batch_size = 1;
  std::optional<int64_t> layers_per_stage;
  std::optional<RoundVirtualStages> round_virtual_stages_to_pp_multiple;
  std::optional<std::vector<std::vector<std::string>>> module_fqns_per_model_part;
  bool patch_inner_model = true;
  bool patch_causal_lm_model = true;
  bool patch_stage_backward_maybe_with_nosync = false;
  std::optional<Dtype> dtype;
  bool scale_grads_in_schedule = false;
  std::optional<int64_t> pp_seq_len;
  bool pp_recv_buffer_pool = false;
  // Must be >= 0.
  int64_t pp_recv_buffer_pool_slack = 2;

  friend bool operator==(const PipelineConfig&, const PipelineConfig&) = default;
};

struct MoEParallelizerConfig {
  bool ignore_router_for_ac = true;
  bool reshard_after_forward = false;
  std::optional<Dtype> lm_head_precision;
  bool wrap_outer_model = true;
  // A map, read as FSDP2's mp_policy map (unset dtypes none, cast_forward_inputs false).
  std::optional<MixedPrecisionPolicy> mp_policy;

  friend bool operator==(const MoEParallelizerConfig&, const MoEParallelizerConfig&) = default;
};

}  // namespace nmesh::config

#endif  // NMESH_CONFIG_PARALLELIZER_CONFIG_H_
