#include "nmesh/comm/nccl/config.h"

#include <mutex>
#include <set>
#include <string>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"

namespace nmesh::comm::nccl {
namespace {

std::string VersionText(int code) {
  return absl::StrFormat("%d.%d.%d", code / 10000, code / 100 % 100, code % 100);
}

// NCCL's handling of the lifetime of netName and commName is not documented; the pool keeps
// every distinct string alive for the process (a handful of short names).
const char* Interned(const std::string& text) {
  static std::mutex mu;
  static auto* pool = new std::set<std::string>();
  std::lock_guard<std::mutex> lock(mu);
  return pool->insert(text).first->c_str();
}

}  // namespace

absl::Status CheckNcclSettingsSupported(const NcclSettings& settings, int version,
                                        std::string_view name) {
  for (const auto& [field_name, value] : NcclSettingsItems(settings)) {
    const NcclField* field = FindNcclField(field_name);
    if (field->since_version > version) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "NCCL setting %s of '%s' needs NCCL %d.%d or later (ncclConfig_t field %s); this "
          "process has NCCL %s",
          field->name, name, field->since_version / 10000, field->since_version / 100 % 100,
          field->nccl_name, VersionText(version)));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyNcclSettings(const NcclSettings& settings, int runtime_version,
                               std::string_view name, ncclConfig_t& config) {
  if (settings.empty()) return absl::OkStatus();
  NMESH_RETURN_IF_ERROR(CheckNcclSettingsSupported(settings, NCCL_VERSION_CODE, name));
  NMESH_RETURN_IF_ERROR(CheckNcclSettingsSupported(settings, runtime_version, name));
  const NcclSettings& s = settings;
  if (s.cga_cluster_size) config.cgaClusterSize = *s.cga_cluster_size;
  if (s.min_ctas) config.minCTAs = *s.min_ctas;
  if (s.max_ctas) config.maxCTAs = *s.max_ctas;
  if (s.net_name) config.netName = Interned(*s.net_name);
#if NCCL_VERSION_CODE >= 21800
  if (s.split_share) config.splitShare = *s.split_share ? 1 : 0;
#endif
#if NCCL_VERSION_CODE >= 22700
  if (s.traffic_class) config.trafficClass = *s.traffic_class;
  if (s.comm_name) config.commName = Interned(*s.comm_name);
  if (s.collnet_enable) config.collnetEnable = *s.collnet_enable ? 1 : 0;
  if (s.cta_policy) config.CTAPolicy = *s.cta_policy;
  if (s.shrink_share) config.shrinkShare = *s.shrink_share ? 1 : 0;
  if (s.nvls_ctas) config.nvlsCTAs = *s.nvls_ctas;
#endif
#if NCCL_VERSION_CODE >= 22800
  if (s.n_channels_per_net_peer) config.nChannelsPerNetPeer = *s.n_channels_per_net_peer;
  if (s.nvlink_centric_sched) config.nvlinkCentricSched = *s.nvlink_centric_sched ? 1 : 0;
#endif
  return absl::OkStatus();
}

}  // namespace nmesh::comm::nccl
