#include "nmesh/validate/validate.h"

#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nmesh::validate {
namespace {

// Python's repr of a string as the reference prints it in sets and lists: 'name'.
std::string Quoted(std::string_view name) { return absl::StrFormat("'%s'", name); }

absl::Status Unsupported(std::string_view what, std::string_view field, int64_t value) {
  return absl::InvalidArgumentError(absl::StrFormat("%s, got %s=%d", what, field, value));
}

absl::Status CheckMegatronFsdp(const SetupSizes& s) {
  if (s.pp > 1) {
    return Unsupported("megatron_fsdp does not support pipeline parallelism", "pp_size", s.pp);
  }
  if (s.ep > 1) {
    return Unsupported("megatron_fsdp does not support expert parallelism", "ep_size", s.ep);
  }
  return absl::OkStatus();
}

absl::Status CheckDdp(const SetupSizes& s) {
  struct Axis {
    const char* what;
    const char* field;
    int64_t value;
  };
  for (const Axis& a : {Axis{"tensor", "tp_size", s.tp}, Axis{"pipeline", "pp_size", s.pp},
                        Axis{"context", "cp_size", s.cp}, Axis{"expert", "ep_size", s.ep}}) {
    if (a.value > 1) {
      return Unsupported(absl::StrFormat("ddp does not support %s parallelism", a.what), a.field,
                         a.value);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateAxisNames(std::string_view mesh, absl::Span<const std::string> names,
                               absl::Span<const std::string_view> allowed) {
  const std::set<std::string_view> allowed_set(allowed.begin(), allowed.end());
  std::set<std::string_view> unknown;
  for (const std::string& name : names) {
    if (allowed_set.count(name) == 0) unknown.insert(name);
  }
  if (unknown.empty()) return absl::OkStatus();
  std::vector<std::string> unknown_text, allowed_text;
  for (std::string_view name : unknown) unknown_text.push_back(Quoted(name));
  for (std::string_view name : allowed_set) allowed_text.push_back(Quoted(name));
  return absl::InvalidArgumentError(
      absl::StrFormat("%s contains unknown axis names {%s}; allowed names are [%s]", mesh,
                      absl::StrJoin(unknown_text, ", "), absl::StrJoin(allowed_text, ", ")));
}

absl::Status ValidateDistributedSetup(const DistributedSetup& setup) {
  const SetupSizes& s = setup.sizes;
  if (setup.has_pipeline && s.pp <= 1) {
    return Unsupported("pipeline_config requires pp_size > 1", "pp_size", s.pp);
  }
  if (setup.has_moe && s.ep <= 1) {
    return Unsupported("moe_parallel_config requires ep_size > 1", "ep_size", s.ep);
  }
  if (setup.strategy == nullptr) return absl::OkStatus();
  if (!std::holds_alternative<config::FSDP2Config>(*setup.strategy) &&
      s.dp_replicate.value_or(1) > 1) {
    return Unsupported("dp_replicate_size is only supported with FSDP2Config", "dp_replicate_size",
                       *s.dp_replicate);
  }
  if (std::holds_alternative<config::MegatronFSDPConfig>(*setup.strategy))
    return CheckMegatronFsdp(s);
  if (std::holds_alternative<config::DDPConfig>(*setup.strategy)) return CheckDdp(s);
  return absl::OkStatus();
}

}  // namespace nmesh::validate
