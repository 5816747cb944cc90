#include "nmesh/tools/mesh_options.h"

#include <numeric>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/config/strategy.h"

namespace nmesh::tools {
namespace {

// CLI11's own conversion saturates out-of-range values to the int64 limits and then reports a
// different value; parse exactly instead, so the error names the flag and the value as given.
int64_t ParseInt64(const std::string& text) {
  int64_t value = 0;
  NMESH_CHECK(absl::SimpleAtoi(text, &value)) << text;  // validated by Int64Validator
  return value;
}

std::string Int64Error(const std::string& text) {
  if (text.empty()) return "needs a value, got an empty string";
  int64_t value = 0;
  if (absl::SimpleAtoi(text, &value)) return "";
  return "'" + Abbreviate(text) + "' is not an integer (64-bit)";
}

const CLI::Validator& Int64Validator() {
  static const auto* validator = new CLI::Validator(
      [](std::string& text) -> std::string { return Int64Error(text); }, "", "INT64");
  return *validator;
}

// "0,1,2" -> {0, 1, 2}. Throws a CLI11 error naming --ranks on an empty list, an empty item
// ("0,,1", "0,1,") or a non-integer.
std::vector<int64_t> ParseRankList(const std::string& text) {
  if (text.empty()) throw CLI::ValidationError("--ranks", "needs a value, got an empty string");
  std::vector<int64_t> ranks;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    const std::string word(item);
    if (word.empty()) {
      throw CLI::ValidationError("--ranks", absl::StrFormat("empty rank at position %d in '%s'",
                                                            ranks.size() + 1, Abbreviate(text)));
    }
    if (const std::string error = Int64Error(word); !error.empty()) {
      throw CLI::ValidationError("--ranks", error);
    }
    ranks.push_back(ParseInt64(word));
  }
  return ranks;
}

}  // namespace

CLI::Option* AddInt64Option(CLI::App& app, const std::string& flag, std::optional<int64_t>& value,
                            const std::string& help) {
  return app
      .add_option_function<std::string>(
          flag, [&value](const std::string& v) { value = ParseInt64(v); }, help)
      ->check(Int64Validator())
      ->type_name("N");
}

void AddMeshOptions(CLI::App& app, MeshOptions& options) {
  app.add_option_function<std::string>(
         "--config", [&options](const std::string& v) { options.config_path = v; },
         "Recipe YAML: reads distributed:, teacher_distributed: and dist_env:; flags override it")
      ->type_name("FILE");
  app.add_option_function<std::string>(
         "--section", [&options](const std::string& v) { options.section = v; },
         "Recipe section to use: distributed (default) or teacher_distributed")
      ->type_name("S");
  app.add_option_function<std::string>(
         "--strategy", [&options](const std::string& v) { options.strategy = v; },
         "fsdp2 (default), megatron_fsdp (megatron-fsdp, mfsdp) or ddp")
      ->type_name("S");
  AddInt64Option(app, "--world", options.sizes.world_size,
                 "World size: the mesh's size, or with --ranks the job's (default max(rank)+1)");
  AddInt64Option(app, "--dp", options.sizes.dp, "Data-parallel size (default or -1: inferred)");
  AddInt64Option(app, "--dp-replicate", options.sizes.dp_replicate,
                 "HSDP replica size (FSDP2 only)");
  AddInt64Option(app, "--tp", options.sizes.tp, "Tensor-parallel size");
  AddInt64Option(app, "--pp", options.sizes.pp, "Pipeline-parallel size");
  AddInt64Option(app, "--cp", options.sizes.cp, "Context-parallel size");
  AddInt64Option(app, "--ep", options.sizes.ep, "Expert-parallel size (FSDP2 moe mesh)");
  app.add_option_function<std::string>(
         "--placement",
         [&options](const std::string& v) {
           absl::StatusOr<job::Placement> placement = job::ParsePlacement(v);
           if (!placement.ok()) {
             throw CLI::ValidationError("--placement", std::string(placement.status().message()));
           }
           options.placement = *placement;
         },
         "as-launched (default: the launcher's rank order) or pack (ranks ordered by host, then "
         "local rank, so that each host holds whole groups of the innermost axes)")
      ->type_name("P");
  app.add_option_function<std::string>(
         "--comm-sharing",
         [&options](const std::string& v) {
           std::optional<config::CommSharing> sharing =
               ValueNamed<config::CommSharing>(config::kCommSharingNames, v);
           if (!sharing.has_value()) {
             throw CLI::ValidationError(
                 "--comm-sharing",
                 absl::StrFormat("must be %s, got '%s'",
                                 NameList<config::CommSharing>(config::kCommSharingNames), v));
           }
           options.comm_sharing = *sharing;
         },
         "partition (default: names that split the ranks alike share one communicator) or name "
         "(one communicator per axis or group name); over the recipe's comm_sharing: key")
      ->type_name("S");
  app.add_option_function<std::vector<std::string>>(
         "--nccl",
         [&options](const std::vector<std::string>& v) {
           for (const std::string& assignment : v) {
             if (absl::Status s = comm::ParseNcclAssignment(assignment, options.nccl); !s.ok()) {
               throw CLI::ValidationError("--nccl", std::string(s.message()));
             }
           }
         },
         "NCCL setting of one axis or group, repeatable: NAME.FIELD=VALUE, e.g. tp.max_ctas=16 "
         "(fields: " +
             comm::NcclFieldNames() +
             "); over the recipe's nccl: key; reported as not applicable on the MPI backend")
      ->type_name("AXIS.FIELD=V")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option_function<std::vector<std::string>>(
         "--ranks",
         [&options](const std::vector<std::string>& v) {
           // Each occurrence takes one word; a second --ranks would silently extend the first.
           if (v.size() != 1) {
             throw CLI::ValidationError(
                 "--ranks", absl::StrFormat("given %d times; give the mesh's ranks once, "
                                            "comma-separated",
                                            v.size()));
           }
           options.ranks = ParseRankList(v.front());
         },
         "The mesh's ordered global ranks (a subset of the job), comma-separated")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->type_name("r0,r1,...");
}

}  // namespace nmesh::tools
