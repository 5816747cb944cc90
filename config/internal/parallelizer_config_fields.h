// Internal: the field tables of the pipeline and MoE configs (config/parallelizer_config.h): which
// key of a section's `pipeline:` or `moe:` map reads which field, and how its value is checked.
//
//   PipelineConfig pipeline;
//   NMESH_RETURN_IF_ERROR(ReadFields(entries, PipelineFieldTable(), pipeline));
//
// Thread-safe (the tables are built once, on first use).
#ifndef NMESH_CONFIG_INTERNAL_PARALLELIZER_CONFIG_FIELDS_H_
#define NMESH_CONFIG_INTERNAL_PARALLELIZER_CONFIG_FIELDS_H_

#include <optional>

#include "absl/status/status.h"
#include "nmesh/config/internal/field_binding.h"
#include "nmesh/config/internal/yaml_value.h"
#include "nmesh/config/parallelizer_config.h"

namespace nmesh::config::internal {

// PipelineConfig's fields (the reference's `loss_fn` is not one: the parser warns about it).
const Fields<PipelineConfig>& PipelineFieldTable();

// MoEParallelizerConfig's fields.
const Fields<MoEParallelizerConfig>& MoeFieldTable();

// round_virtual_stages_to_pp_multiple: 'up' or 'down', any case (for the table: Member finds it by
// its type).
absl::Status Read(const Value& v, std::optional<RoundVirtualStages>& out);

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_PARALLELIZER_CONFIG_FIELDS_H_
