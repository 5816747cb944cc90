#include "nmesh/comm/nccl_settings.h"

#include <climits>
#include <type_traits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nmesh::comm {
namespace {

using Kind = NcclField::Kind;

// The versions are those of the first ncclConfig_t that has the field in NCCL's public header
// (ncclConfig_v21700, splitShare in 2.18, then the v22700 and v22800 layouts); applying a field to
// an older NCCL is refused by the backend rather than silently ignored.
const NcclField kFields[] = {
    {"cga_cluster_size", "cgaClusterSize", Kind::kInt, 0, 8, 21700,
     "cooperative group array cluster size of NCCL's kernels", &NcclSettings::cga_cluster_size},
    {"min_ctas", "minCTAs", Kind::kInt, 1, 32, 21700, "minimum number of CTAs per kernel",
     &NcclSettings::min_ctas},
    {"max_ctas", "maxCTAs", Kind::kInt, 1, 32, 21700, "maximum number of CTAs per kernel",
     &NcclSettings::max_ctas},
    {"net_name", "netName", Kind::kString, 0, 0, 21700,
     "network module to use (e.g. IB, Socket; case-insensitive)", &NcclSettings::net_name},
    {"split_share", "splitShare", Kind::kBool, 0, 0, 21800,
     "share the parent's resources with the communicators split from this one (nmesh: true)",
     &NcclSettings::split_share},
    {"traffic_class", "trafficClass", Kind::kInt, 0, INT_MAX, 22700,
     "network traffic class (QoS) of the communicator's traffic", &NcclSettings::traffic_class},
    {"comm_name", "commName", Kind::kString, 0, 0, 22700,
     "name NCCL gives the communicator in its logs and profiler", &NcclSettings::comm_name},
    {"collnet_enable", "collnetEnable", Kind::kBool, 0, 0, 22700,
     "use CollNet (in-network reductions) where available", &NcclSettings::collnet_enable},
    {"cta_policy", "CTAPolicy", Kind::kInt, 0, 2, 22700,
     "CTA policy: 0 default, 1 efficiency, 2 zero (NCCL 2.28)", &NcclSettings::cta_policy},
    {"shrink_share", "shrinkShare", Kind::kBool, 0, 0, 22700,
     "share resources with communicators made by ncclCommShrink", &NcclSettings::shrink_share},
    {"nvls_ctas", "nvlsCTAs", Kind::kInt, 1, INT_MAX, 22700,
     "number of CTAs of NVLS (NVLink SHARP) kernels", &NcclSettings::nvls_ctas},
    {"n_channels_per_net_peer", "nChannelsPerNetPeer", Kind::kInt, 1, INT_MAX, 22800,
     "channels per network peer (all-to-all and point-to-point)",
     &NcclSettings::n_channels_per_net_peer},
    {"nvlink_centric_sched", "nvlinkCentricSched", Kind::kBool, 0, 0, 22800,
     "NVLink-centric scheduling", &NcclSettings::nvlink_centric_sched},
};

std::string Quoted(const NcclValue& value) {
  if (const int64_t* i = std::get_if<int64_t>(&value)) return absl::StrCat(*i);
  if (const bool* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  return absl::StrCat("'", std::get<std::string>(value), "'");
}

std::string ValueText(const NcclValue& value) {
  if (const std::string* s = std::get_if<std::string>(&value)) return *s;
  return Quoted(value);
}

std::string RangeText(const NcclField& field) {
  if (field.max == INT_MAX) return absl::StrFormat("an integer >= %d", field.min);
  return absl::StrFormat("an integer from %d to %d", field.min, field.max);
}

}  // namespace

bool NcclSettings::empty() const { return *this == NcclSettings{}; }

absl::Span<const NcclField> NcclFields() { return kFields; }

const NcclField* FindNcclField(std::string_view name) {
  for (const NcclField& field : kFields) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

std::string NcclFieldNames() {
  std::vector<std::string> names;
  for (const NcclField& field : kFields) names.emplace_back(field.name);
  return absl::StrJoin(names, ", ");
}

absl::Status SetNcclField(NcclSettings& settings, std::string_view field, const NcclValue& value,
                          std::string_view key) {
  const NcclField* row = FindNcclField(field);
  if (row == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: unknown NCCL setting '%s'; known settings are %s", key, field, NcclFieldNames()));
  }
  switch (row->kind) {
    case Kind::kInt: {
      const int64_t* i = std::get_if<int64_t>(&value);
      if (i == nullptr || *i < row->min || *i > row->max) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s must be %s, got %s", key, RangeText(*row), Quoted(value)));
      }
      settings.*std::get<std::optional<int> NcclSettings::*>(row->member) = static_cast<int>(*i);
      return absl::OkStatus();
    }
    case Kind::kBool: {
      std::optional<bool> b;
      if (const bool* v = std::get_if<bool>(&value)) b = *v;
      if (const int64_t* i = std::get_if<int64_t>(&value); i != nullptr && (*i == 0 || *i == 1)) {
        b = *i == 1;
      }
      if (!b.has_value()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s must be a boolean (true/false or 1/0), got %s", key, Quoted(value)));
      }
      settings.*std::get<std::optional<bool> NcclSettings::*>(row->member) = *b;
      return absl::OkStatus();
    }
    case Kind::kString: {
      const std::string* s = std::get_if<std::string>(&value);
      if (s == nullptr || s->empty()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s must be a non-empty string, got %s", key, Quoted(value)));
      }
      settings.*std::get<std::optional<std::string> NcclSettings::*>(row->member) = *s;
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unreachable");
}

absl::Status SetNcclFieldFromText(NcclSettings& settings, std::string_view field,
                                  std::string_view text, std::string_view key) {
  const NcclField* row = FindNcclField(field);
  NcclValue value = std::string(text);
  if (row != nullptr && row->kind != Kind::kString) {
    int64_t i = 0;
    if (absl::SimpleAtoi(std::string(text), &i)) {
      value = i;
    } else if (row->kind == Kind::kBool && (text == "true" || text == "false")) {
      value = text == "true";
    }
  }
  return SetNcclField(settings, field, value, key);
}

absl::Status CheckNcclSettings(const NcclSettings& settings, std::string_view key) {
  if (settings.min_ctas.has_value() && settings.max_ctas.has_value() &&
      *settings.min_ctas > *settings.max_ctas) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: min_ctas (%d) must not exceed max_ctas (%d)", key, *settings.min_ctas,
                        *settings.max_ctas));
  }
  return absl::OkStatus();
}

NcclSettings MergeNcclSettings(const NcclSettings& base, const NcclSettings& over) {
  NcclSettings merged = base;
  for (const NcclField& field : kFields) {
    std::visit(
        [&](auto member) {
          if ((over.*member).has_value()) merged.*member = over.*member;
        },
        field.member);
  }
  return merged;
}

std::vector<std::pair<std::string_view, NcclValue>> NcclSettingsItems(
    const NcclSettings& settings) {
  std::vector<std::pair<std::string_view, NcclValue>> items;
  for (const NcclField& field : kFields) {
    std::visit(
        [&](auto member) {
          const auto& value = settings.*member;
          if (!value.has_value()) return;
          using T = std::decay_t<decltype(*value)>;
          if constexpr (std::is_same_v<T, int>) {
            items.emplace_back(field.name, NcclValue{static_cast<int64_t>(*value)});
          } else {
            items.emplace_back(field.name, NcclValue{*value});
          }
        },
        field.member);
  }
  return items;
}

std::string NcclSettingsText(const NcclSettings& settings) {
  std::vector<std::string> parts;
  for (const auto& [name, value] : NcclSettingsItems(settings)) {
    parts.push_back(absl::StrCat(std::string(name), "=", ValueText(value)));
  }
  return absl::StrJoin(parts, " ");
}

std::string NcclSettingsMapText(const NcclSettingsMap& settings) {
  std::vector<std::string> parts;
  for (const auto& [name, group] : settings) {
    if (group.empty()) continue;
    parts.push_back(absl::StrCat(name, "{", NcclSettingsText(group), "}"));
  }
  return absl::StrJoin(parts, " ");
}

absl::Status ParseNcclAssignment(std::string_view text, NcclSettingsMap& settings) {
  const size_t dot = text.find('.');
  const size_t equals = text.find('=');
  if (dot == std::string_view::npos || equals == std::string_view::npos || dot == 0 ||
      dot > equals) {
    return absl::InvalidArgumentError(
        absl::StrFormat("expected AXIS.SETTING=VALUE (e.g. tp.max_ctas=16), got '%s'", text));
  }
  const std::string_view name = text.substr(0, dot);
  const std::string_view field = text.substr(dot + 1, equals - dot - 1);
  const std::string_view value = text.substr(equals + 1);
  NcclSettings group;
  if (auto it = settings.find(name); it != settings.end()) group = it->second;
  if (absl::Status s = SetNcclFieldFromText(group, field, value, text.substr(0, equals)); !s.ok()) {
    return s;
  }
  settings[std::string(name)] = std::move(group);
  return absl::OkStatus();
}

}  // namespace nmesh::comm
