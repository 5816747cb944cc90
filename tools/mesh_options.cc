#include "tools/mesh_options.h"

#include "absl/strings/numbers.h"
#include "base/status_macros.h"
#include "config/strategy.h"

namespace nmesh::tools {
namespace {

// CLI11's own conversion saturates out-of-range values to the int64 limits and then reports a
// different value; parse exactly instead, so the error names the flag and the value as given.
int64_t ParseInt64(const std::string& text) {
  int64_t value = 0;
  NMESH_CHECK(absl::SimpleAtoi(text, &value)) << text;  // validated by Int64Validator
  return value;
}

const CLI::Validator& Int64Validator() {
  static const auto* validator = new CLI::Validator(
      [](std::string& text) -> std::string {
        int64_t value = 0;
        if (absl::SimpleAtoi(text, &value)) return "";
        return "'" + text + "' is not an integer (64-bit)";
      },
      "", "INT64");
  return *validator;
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
  app.add_option_function<std::vector<std::string>>(
         "--ranks",
         [&options](const std::vector<std::string>& v) {
           options.ranks.emplace();
           for (const std::string& rank : v) options.ranks->push_back(ParseInt64(rank));
         },
         "The mesh's ordered global ranks (a subset of the job), comma-separated")
      ->delimiter(',')
      ->check(Int64Validator())
      ->type_name("r0,r1,...");
}

absl::Status ApplyMeshOptions(const MeshOptions& options, config::MeshRequest& request) {
  if (options.strategy.has_value()) {
    NMESH_ASSIGN_OR_RETURN(request.strategy, config::ParseStrategy(*options.strategy));
  }
  const config::ParallelSizes& flags = options.sizes;
  config::ParallelSizes& sizes = request.sizes;
  for (auto [flag, field] :
       {std::pair{&flags.dp, &sizes.dp}, std::pair{&flags.dp_replicate, &sizes.dp_replicate},
        std::pair{&flags.tp, &sizes.tp}, std::pair{&flags.pp, &sizes.pp},
        std::pair{&flags.cp, &sizes.cp}, std::pair{&flags.ep, &sizes.ep}}) {
    if (flag->has_value()) *field = *flag;
  }
  if (options.ranks.has_value()) request.ranks = options.ranks;
  if (flags.world_size.has_value()) {
    if (request.ranks.has_value()) {
      request.job_world_size = flags.world_size;
    } else {
      sizes.world_size = flags.world_size;
    }
  }
  return absl::OkStatus();
}

}  // namespace nmesh::tools
