// The NCCL settings of comm/nccl_settings.h applied to an ncclConfig_t. Internal to comm/nccl (it
// includes nccl.h, so it is not installed).
//
//   ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
//   config.blocking = 0;
//   NMESH_RETURN_IF_ERROR(ApplyNcclSettings(options.nccl, LinkedNcclVersionCode(), "tp", config));
//   ncclCommSplit(parent, color, key, &child, &config);
#ifndef NMESH_COMM_NCCL_CONFIG_H_
#define NMESH_COMM_NCCL_CONFIG_H_

#include <nccl.h>

#include <string_view>

#include "absl/status/status.h"
#include "nmesh/comm/nccl_settings.h"

namespace nmesh::comm::nccl {

// InvalidArgument when `settings` sets a field that NCCL `version` (NCCL_VERSION_CODE's count,
// e.g. 22809) predates: "NCCL setting nvls_ctas of 'tp' needs NCCL 2.27 or later (ncclConfig_t
// field nvlsCTAs); this process has NCCL 2.18.5". `name` is the communicator's. Pure.
absl::Status CheckNcclSettingsSupported(const NcclSettings& settings, int version,
                                        std::string_view name);

// Sets every field `settings` sets on `config` (the others keep their value), after
// CheckNcclSettingsSupported against both the NCCL nmesh was compiled with (NCCL_VERSION_CODE)
// and `runtime_version`, the one loaded (a config NCCL cannot read would be ignored silently).
// Strings (net_name, comm_name) point into a process-wide pool that is never freed, so that the
// config stays valid however long NCCL reads it. Thread-safe.
absl::Status ApplyNcclSettings(const NcclSettings& settings, int runtime_version,
                               std::string_view name, ncclConfig_t& config);

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_CONFIG_H_
