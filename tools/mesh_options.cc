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

void AddSize(CLI::App& app, const std::string& flag, std::optional<int64_t>& value,
             const std::string& help) {
  app.add_option_function<std::string>(
         flag, [&value](const std::string& v) { value = ParseInt64(v); }, help)
      ->check(Int64Validator())
      ->type_name("N");
}

}  // namespace

CLI::Option* AddRankOption(CLI::App& app, const std::string& flag, std::optional<int64_t>& value,
                           const std::string& help) {
  return app
      .add_option_function<std::string>(
          flag, [&value](const std::string& v) { value = ParseInt64(v); }, help)
      ->check(Int64Validator())
      ->type_name("R");
}

void AddMeshOptions(CLI::App& app, MeshOptions& options) {
  app.add_option_function<std::string>(
         "--strategy", [&options](const std::string& v) { options.strategy = v; },
         "fsdp2 (default), megatron_fsdp (megatron-fsdp, mfsdp) or ddp")
      ->type_name("S");
  AddSize(app, "--world", options.world,
          "World size: the mesh's size, or with --ranks the job's (default max(rank)+1)");
  AddSize(app, "--dp", options.dp, "Data-parallel size (default or -1: inferred)");
  AddSize(app, "--dp-replicate", options.dp_replicate, "HSDP replica size (FSDP2 only)");
  AddSize(app, "--tp", options.tp, "Tensor-parallel size");
  AddSize(app, "--pp", options.pp, "Pipeline-parallel size");
  AddSize(app, "--cp", options.cp, "Context-parallel size");
  AddSize(app, "--ep", options.ep, "Expert-parallel size (FSDP2 moe mesh)");
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
  config::ParallelSizes& sizes = request.sizes;
  for (auto [flag, field] :
       {std::pair{&options.dp, &sizes.dp}, std::pair{&options.dp_replicate, &sizes.dp_replicate},
        std::pair{&options.tp, &sizes.tp}, std::pair{&options.pp, &sizes.pp},
        std::pair{&options.cp, &sizes.cp}, std::pair{&options.ep, &sizes.ep}}) {
    if (flag->has_value()) *field = *flag;
  }
  if (options.ranks.has_value()) request.ranks = options.ranks;
  if (options.world.has_value()) {
    if (request.ranks.has_value()) {
      request.job_world_size = options.world;
    } else {
      sizes.world_size = options.world;
    }
  }
  return absl::OkStatus();
}

}  // namespace nmesh::tools
