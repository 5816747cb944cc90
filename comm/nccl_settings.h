// Per-communicator NCCL settings: the fields of NCCL's ncclConfig_t that a user may tune, kept
// backend-neutral (this header includes no NCCL header), so that a recipe, a command line or an
// engine can give them per mesh axis or group and every backend can carry them. The NCCL backend
// applies them to the ncclConfig_t of the communicator it creates (ncclCommSplit,
// ncclCommInitRankConfig/Scalable); the MPI and self backends ignore them.
//
//   NcclSettings tp;
//   NMESH_RETURN_IF_ERROR(SetNcclField(tp, "max_ctas", NcclValue{int64_t{16}}, "tp.max_ctas"));
//   NMESH_RETURN_IF_ERROR(SetNcclField(tp, "net_name", NcclValue{std::string("IB")},
//                                      "tp.net_name"));
//   NMESH_RETURN_IF_ERROR(CheckNcclSettings(tp, "tp"));   // min_ctas <= max_ctas
//   const std::string text = NcclSettingsText(tp);          // "max_ctas=16 net_name=IB"
//
// A communicator gets them through its options: world->Split(color, key, {.name = "tp", .nccl =
// tp}) (comm/communicator.h CommOptions::nccl); a mesh per axis through
// mesh::DeviceMeshOptions::nccl.
//
// The field names are NCCL's in snake case, as nccl4py and Megatron-LM's per-group NCCL config
// spell them (cga_cluster_size, min_ctas, max_ctas, net_name, ...). One table (NcclFields) holds
// every field with its kind, its valid range and the NCCL version that introduced it; parsing,
// validation, printing and the NCCL backend all read it. `blocking` is not a setting: nmesh's NCCL
// communicators are always nonblocking (polled against their timeout).
//
// Every function here is pure and thread-safe.
#ifndef NMESH_COMM_NCCL_SETTINGS_H_
#define NMESH_COMM_NCCL_SETTINGS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace nmesh::comm {

// The settings of one communicator; unset fields keep NCCL's default (NCCL_CONFIG_UNDEF_*).
struct NcclSettings {
  std::optional<int> cga_cluster_size = std::nullopt;         // cgaClusterSize
  std::optional<int> min_ctas = std::nullopt;                 // minCTAs
  std::optional<int> max_ctas = std::nullopt;                 // maxCTAs
  std::optional<std::string> net_name = std::nullopt;         // netName
  std::optional<bool> split_share = std::nullopt;             // splitShare (nmesh's default: true)
  std::optional<int> traffic_class = std::nullopt;            // trafficClass
  std::optional<std::string> comm_name = std::nullopt;        // commName
  std::optional<bool> collnet_enable = std::nullopt;          // collnetEnable
  std::optional<int> cta_policy = std::nullopt;               // CTAPolicy
  std::optional<bool> shrink_share = std::nullopt;            // shrinkShare
  std::optional<int> nvls_ctas = std::nullopt;                // nvlsCTAs
  std::optional<int> n_channels_per_net_peer = std::nullopt;  // nChannelsPerNetPeer
  std::optional<bool> nvlink_centric_sched = std::nullopt;    // nvlinkCentricSched

  // Whether no field is set.
  bool empty() const;
  friend bool operator==(const NcclSettings&, const NcclSettings&) = default;
};

// Settings per mesh axis or group name ("tp", "dp_shard_cp", "ep", ...).
using NcclSettingsMap = std::map<std::string, NcclSettings, std::less<>>;

// A field's value as read from a recipe or a flag.
using NcclValue = std::variant<int64_t, bool, std::string>;

// One row of the field table.
struct NcclField {
  enum class Kind { kInt, kBool, kString };
  using Member =
      std::variant<std::optional<int> NcclSettings::*, std::optional<bool> NcclSettings::*,
                   std::optional<std::string> NcclSettings::*>;

  std::string_view name;       // "max_ctas"
  std::string_view nccl_name;  // "maxCTAs", the ncclConfig_t field
  Kind kind;
  // Integers: the valid range, inclusive. Booleans and strings: unused.
  int64_t min = 0;
  int64_t max = 0;
  // The first NCCL version whose ncclConfig_t has the field, as NCCL_VERSION_CODE counts
  // (e.g. 21700 for 2.17.0).
  int since_version = 0;
  std::string_view help;
  Member member;
};

// Every field, in ncclConfig_t order.
absl::Span<const NcclField> NcclFields();

// The field named `name`, or nullptr.
const NcclField* FindNcclField(std::string_view name);

// "cga_cluster_size, min_ctas, ..., nvlink_centric_sched": every field name, for messages.
std::string NcclFieldNames();

// Sets field `field` of `settings` to `value`. `key` names the value in messages (e.g.
// "distributed.nccl.tp.max_ctas" or "--nccl tp.max_ctas"). InvalidArgument:
//   - "<key>: unknown NCCL setting 'x'; known settings are cga_cluster_size, ..." (unknown field);
//   - "<key> must be an integer from 1 to 32, got 33" (integer out of range, or not an integer);
//   - "<key> must be a boolean (true/false or 1/0), got 'yes'";
//   - "<key> must be a non-empty string, got ''".
// Booleans accept the integers 0 and 1 too; integer fields do not accept booleans.
absl::Status SetNcclField(NcclSettings& settings, std::string_view field, const NcclValue& value,
                          std::string_view key);

// Parses `text` (a command-line value) as field `field`'s kind: a decimal integer, true/false/1/0,
// or the string as given; then SetNcclField. Same errors.
absl::Status SetNcclFieldFromText(NcclSettings& settings, std::string_view field,
                                  std::string_view text, std::string_view key);

// Checks the settings as a whole: min_ctas <= max_ctas when both are set. `key` names them in
// the message ("<key>: min_ctas (8) must not exceed max_ctas (4)").
absl::Status CheckNcclSettings(const NcclSettings& settings, std::string_view key);

// `base` with every field that `over` sets replaced by `over`'s value.
NcclSettings MergeNcclSettings(const NcclSettings& base, const NcclSettings& over);

// The set fields, in table order, with their values.
std::vector<std::pair<std::string_view, NcclValue>> NcclSettingsItems(const NcclSettings& settings);

// "max_ctas=16 net_name=IB split_share=false" (table order); empty when none is set.
std::string NcclSettingsText(const NcclSettings& settings);

// "tp{max_ctas=16} dp{net_name=IB}" (map order); empty when no name has a setting.
std::string NcclSettingsMapText(const NcclSettingsMap& settings);

// Parses one command-line assignment "NAME.FIELD=VALUE" (e.g. "tp.max_ctas=16") into `settings`
// under NAME, over what NAME already has. The name is not checked here (only a mesh knows its
// axes). InvalidArgument "expected AXIS.SETTING=VALUE (e.g. tp.max_ctas=16), got 'x'" for a missing
// '.', '=' or name, and SetNcclFieldFromText's errors with key "NAME.FIELD"; `settings` is
// unchanged on error.
absl::Status ParseNcclAssignment(std::string_view text, NcclSettingsMap& settings);

}  // namespace nmesh::comm

#endif  // NMESH_COMM_NCCL_SETTINGS_H_
