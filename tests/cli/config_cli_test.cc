// `nmesh plan --config`: recipes through the command line — flags override the file, student and
// teacher meshes get disjoint ranks, every shared recipe plans as the contract says, and a table of
// bad inputs each exits 2 with a message naming the culprit.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nmesh/tests/cli/run_cli.h"
#include "yaml-cpp/yaml.h"

namespace nmesh::tools {
namespace {

using ::nmesh::tools::testing::CliResult;
using ::nmesh::tools::testing::RunNmesh;
using ::testing::HasSubstr;
using json = nlohmann::json;

// Writes `text` to a fresh file under the test's temporary directory and returns its path.
std::string WriteRecipe(const std::string& name, const std::string& text) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "nmesh_config_cli";
  std::filesystem::create_directories(dir);
  std::filesystem::path path = dir / name;
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

json PlanJson(const std::vector<std::string>& args) {
  std::vector<std::string> full = {"plan", "--format", "json"};
  full.insert(full.end(), args.begin(), args.end());
  CliResult r = RunNmesh(full);
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out);
}

TEST(ConfigCliTest, RecipeSizesAndFlagOverrides) {
  const std::string path = WriteRecipe("tp2.yaml",
                                       "model:\n  _target_: some.Model\n"
                                       "distributed:\n  strategy: fsdp2\n  tp_size: 2\n"
                                       "  cp_size: 2\n  dp_size: none\n");
  json plan = PlanJson({"--config", path, "--world", "16"});
  EXPECT_EQ(plan["sizes"]["tp"], 2);
  EXPECT_EQ(plan["sizes"]["cp"], 2);
  EXPECT_EQ(plan["sizes"]["dp"], 16 / (2 * 2));
  // A flag replaces the file's value; the rest of the file still applies.
  json overridden = PlanJson({"--config", path, "--world", "16", "--tp", "4"});
  EXPECT_EQ(overridden["sizes"]["tp"], 4);
  EXPECT_EQ(overridden["sizes"]["cp"], 2);
  EXPECT_EQ(overridden["sizes"]["dp"], 16 / (4 * 2));
  // --strategy replaces the file's strategy.
  json mfsdp = PlanJson({"--config", path, "--world", "16", "--strategy", "mfsdp"});
  EXPECT_EQ(mfsdp["strategy"], "megatron_fsdp");
}

TEST(ConfigCliTest, WarningsGoToStderr) {
  const std::string path =
      WriteRecipe("pp1.yaml", "distributed:\n  pp_size: 1\n  pipeline:\n    pp_schedule: 1f1b\n");
  CliResult r = RunNmesh({"plan", "--config", path, "--world", "4"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("nmesh: warning:"));
  EXPECT_THAT(r.err, HasSubstr("pipeline"));
}

// §8 knowledge distillation and §9 `ranks` (changed in 0.7.0): with separate_meshes the student
// takes ranks 0..S-1 and the teacher S..W-1, and `ranks` is the section's rank list.
TEST(ConfigCliTest, StudentAndTeacherGetDisjointRanks) {
  const std::string path = WriteRecipe("kd.yaml",
                                       "separate_meshes: true\n"
                                       "distributed:\n  dp_size: 2\n  tp_size: 1\n"
                                       "teacher_distributed:\n  dp_size: 1\n  tp_size: 2\n");
  json student = PlanJson({"--config", path});
  json teacher = PlanJson({"--config", path, "--section", "teacher_distributed"});
  EXPECT_EQ(student["ranks"], json({0, 1}));
  EXPECT_EQ(teacher["ranks"], json({2, 3}));
  EXPECT_EQ(student["world_size"], 4);
  EXPECT_EQ(teacher["sizes"]["tp"], 2);
  json at_world = PlanJson({"--config", path, "--section", "teacher_distributed", "--world", "4"});
  EXPECT_EQ(at_world["ranks"], json({2, 3}));

  // The sizes must fill the job's world.
  CliResult mismatch = RunNmesh({"plan", "--config", path, "--world", "6"});
  EXPECT_EQ(mismatch.code, 2);
  EXPECT_THAT(mismatch.err,
              HasSubstr("Separate KD mesh sizes must use every rank exactly once: student=2 + "
                        "teacher=2 != world_size=6"));

  // Each section must give dp_size.
  const std::string inferred = WriteRecipe("kd_infer.yaml",
                                           "separate_meshes: true\n"
                                           "distributed:\n  dp_size: 2\n"
                                           "teacher_distributed:\n  tp_size: 2\n");
  CliResult no_dp = RunNmesh({"plan", "--config", inferred, "--world", "6"});
  EXPECT_EQ(no_dp.code, 2);
  EXPECT_THAT(no_dp.err, HasSubstr("teacher_distributed.dp_size must be set when "
                                   "separate_meshes=true so the non-overlapping rank split is "
                                   "explicit"));
}

// §8 knowledge distillation (changed in 0.7.0): the switch and the section go together.
TEST(ConfigCliTest, TeacherSectionNeedsSeparateMeshes) {
  const std::string path = WriteRecipe("kd_noswitch.yaml",
                                       "distributed:\n  dp_size: 2\n"
                                       "teacher_distributed:\n  dp_size: 2\n");
  CliResult r = RunNmesh({"plan", "--config", path, "--world", "4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("teacher_distributed requires separate_meshes=true"));
  const std::string no_teacher =
      WriteRecipe("kd_noteacher.yaml", "separate_meshes: true\ndistributed:\n  dp_size: 2\n");
  CliResult r2 = RunNmesh({"plan", "--config", no_teacher, "--world", "2"});
  EXPECT_EQ(r2.code, 2);
  EXPECT_THAT(r2.err, HasSubstr("separate_meshes=true requires a teacher_distributed section"));
}

// Every real recipe plans at a world that fits it; sizes follow §3/§4, computed here from the
// YAML read independently.
TEST(ConfigCliTest, EverySharedRecipePlans) {
  const std::filesystem::path dir = NMESH_SHARED_RECIPES_DIR;
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no ../shared/recipes";
  int planned = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    YAML::Node root = YAML::LoadFile(entry.path().string());
    YAML::Node d = root["distributed"];
    ASSERT_TRUE(d.IsMap());
    auto size = [&](const char* key) -> std::optional<int64_t> {
      if (!d[key] || d[key].IsNull()) return std::nullopt;
      std::string text = d[key].as<std::string>();
      if (text == "none" || text == "None" || text == "null") return std::nullopt;
      return d[key].as<int64_t>();
    };
    const int64_t tp = size("tp_size").value_or(1), cp = size("cp_size").value_or(1),
                  pp = size("pp_size").value_or(1), ep = size("ep_size").value_or(1);
    const std::optional<int64_t> dp = size("dp_size");
    std::string strategy = d["strategy"] ? d["strategy"].as<std::string>() : "fsdp2";
    // The smallest world that fits: non_pp must be a multiple of tp*cp (and of ep).
    int64_t non_pp = std::lcm(tp * cp * dp.value_or(1), ep);
    const int64_t world = strategy == "ddp" ? dp.value_or(4) : non_pp * pp;
    const int64_t expected_dp = strategy == "ddp" ? world : world / (tp * cp * pp);
    std::vector<std::string> args = {"--config", entry.path().string(), "--world",
                                     std::to_string(world)};
    if (root["teacher_distributed"]) args = {"--config", entry.path().string()};
    json plan = PlanJson(args);
    if (::testing::Test::HasFailure()) return;
    EXPECT_EQ(plan["sizes"]["dp"], expected_dp);
    if (strategy != "ddp") {
      EXPECT_EQ(plan["sizes"]["tp"], tp);
      EXPECT_EQ(plan["sizes"]["cp"], cp);
    }
    if (ep > 1) {
      EXPECT_EQ(plan["moe_mesh"]["shape"], json({world / pp / ep, ep}));
      EXPECT_EQ(plan["moe_mesh"]["stages"], pp);
    } else {
      EXPECT_TRUE(plan["moe_mesh"].is_null());
    }
    ++planned;
  }
  EXPECT_GE(planned, 1);
}

struct BadInput {
  std::string name;
  std::string yaml;                 // written to <name>.yaml; empty: no file is written
  std::vector<std::string> flags;   // after "plan --config <file>"
  std::vector<std::string> expect;  // substrings of the error message
};

std::string Pos(const std::string& name, int line, int col) {
  return name + ".yaml:" + std::to_string(line) + ":" + std::to_string(col);
}

std::vector<BadInput> BadInputs() {
  const std::string d = "distributed:\n";
  std::vector<BadInput> cases = {
      {"tp_zero", d + "  tp_size: 0\n", {}, {"tp_size must be a positive integer, got 0"}},
      {"tp_negative", d + "  tp_size: -2\n", {}, {"tp_size", "-2"}},
      {"pp_float", d + "  pp_size: 2.5\n", {}, {"pp_size", "2.5"}},
      {"cp_word", d + "  cp_size: two\n", {}, {"cp_size", "two"}},
      {"ep_bool", d + "  ep_size: true\n", {}, {"ep_size", "true"}},
      {"dp_list", d + "  dp_size: [1, 2]\n", {}, {"dp_size"}},
      {"dp_map", d + "  dp_size: {a: 1}\n", {}, {"dp_size"}},
      {"tp_overflow", d + "  tp_size: 99999999999999999999\n", {}, {"tp_size"}},
      {"dp_replicate_zero", d + "  dp_replicate_size: 0\n", {}, {"dp_replicate_size"}},
      {"dp_minus_two", d + "  dp_size: -2\n", {}, {"dp_size", "-2"}},
      {"unknown_strategy", d + "  strategy: zero3\n", {}, {"Unknown strategy: zero3"}},
      {"unknown_option",
       d + "  strategy: fsdp2\n  bogus_knob: 1\n  another: 2\n",
       {},
       {"Unknown options for strategy 'fsdp2': ['another', 'bogus_knob']"}},
      {"unknown_option_ddp",
       d + "  strategy: ddp\n  reshard_after_forward: true\n",
       {},
       {"Unknown options for strategy 'ddp'", "reshard_after_forward"}},
      {"unknown_pipeline_option",
       d + "  pp_size: 2\n  pipeline:\n    pp_shedule: 1f1b\n",
       {},
       {"pp_shedule"}},
      {"unknown_moe_option",
       d + "  ep_size: 2\n  moe:\n    wrap_outer: true\n",
       {},
       {"wrap_outer"}},
      {"ac_bad_word",
       d + "  activation_checkpointing: sometimes\n",
       {},
       {"distributed.activation_checkpointing must be a boolean or one of 'full', 'selective', "
        "'false'."}},
      {"ac_number", d + "  activation_checkpointing: 3\n", {}, {"activation_checkpointing"}},
      {"ac_list", d + "  activation_checkpointing: [full]\n", {}, {"activation_checkpointing"}},
      {"bad_param_dtype", d + "  mp_policy:\n    param_dtype: bf17\n", {}, {"bf17"}},
      {"bad_autocast_dtype", d + "  autocast_dtype: int3\n", {}, {"int3"}},
      {"dp_replicate_megatron",
       d + "  strategy: megatron_fsdp\n  dp_replicate_size: 2\n",
       {},
       {"dp_replicate_size is only supported with FSDP2Config"}},
      {"dp_replicate_ddp",
       d + "  strategy: ddp\n  dp_replicate_size: 2\n",
       {},
       {"dp_replicate_size is only supported with FSDP2Config"}},
      {"tp_plan_megatron",
       d + "  strategy: megatron_fsdp\n  tp_plan:\n    a: b\n",
       {},
       {"tp_plan"}},
      {"selective_megatron",
       d + "  strategy: megatron_fsdp\n  activation_checkpointing: selective\n",
       {},
       {"selective"}},
      {"ddp_tp",
       d + "  strategy: ddp\n  tp_size: 2\n",
       {},
       {"ddp does not support tensor parallelism"}},
      {"ddp_pp",
       d + "  strategy: ddp\n  pp_size: 2\n  pipeline: {}\n",
       {},
       {"ddp does not support pipeline parallelism"}},
      // §8 rule 9 (changed in 0.7.0): no pipeline block with pp > 1, before the §4 checks.
      {"ddp_pp_no_pipeline",
       d + "  strategy: ddp\n  pp_size: 2\n",
       {},
       {"`pp_size=2` (> 1) enables pipeline parallelism but no `distributed.pipeline` block was "
        "provided."}},
      {"ddp_cp",
       d + "  strategy: ddp\n  cp_size: 2\n",
       {},
       {"ddp does not support context parallelism"}},
      {"megatron_pp",
       d + "  strategy: megatron_fsdp\n  pp_size: 2\n  pipeline: {}\n",
       {},
       {"megatron_fsdp does not support pipeline parallelism"}},
      {"megatron_ep",
       d + "  strategy: megatron_fsdp\n  ep_size: 2\n",
       {},
       {"megatron_fsdp does not support expert parallelism"}},
      {"malformed_yaml", "distributed:\n  tp_size: [1, 2\n", {}, {"malformed"}},
      {"distributed_scalar", "distributed: 4\n", {}, {"distributed"}},
      {"distributed_list", "distributed:\n  - tp_size\n", {}, {"distributed"}},
      {"missing_section", "model:\n  name: x\n", {}, {"distributed"}},
      {"missing_teacher",
       d + "  tp_size: 1\n",
       {"--section", "teacher_distributed"},
       {"teacher_distributed"}},
      {"bad_section_flag", d + "  tp_size: 1\n", {"--section", "student"}, {"student"}},
      {"binary_garbage",
       std::string("\x00\x01\xff\xfe\x7f\x80 distributed\x00", 16),
       {},
       {"binary_garbage.yaml"}},
      {"indivisible_world", d + "  tp_size: 3\n", {}, {"world_size (8) must be divisible"}},
      // §3 (changed in 0.7.0): a product larger than the world gets PyTorch's message.
      {"explicit_dp_too_large",
       d + "  dp_size: 16\n",
       {},
       {"Mesh should not be bigger than default world size 8, but found 16 ranks!"}},
      {"ep_not_dividing", d + "  ep_size: 3\n", {}, {"must be a multiple of ep_size=3"}},
      {"hsdp_not_multiple",
       d + "  dp_replicate_size: 3\n",
       {},
       {"dp_size must be a multiple of dp_replicate_size"}},
      {"hsdp_ddp_usecase",
       d + "  dp_replicate_size: 8\n",
       {},
       {"dp_replicate_size=8 must be less than dp_size=8"}},
      {"flag_tp_zero",
       d + "  tp_size: 2\n",
       {"--tp", "0"},
       {"tp_size must be a positive integer, got 0", "--tp"}},
      {"flag_tp_word", d + "  tp_size: 2\n", {"--tp", "two"}, {"--tp", "two"}},
      {"flag_bad_strategy",
       d + "  tp_size: 2\n",
       {"--strategy", "zero"},
       {"Unknown strategy: zero"}},
      {"timeout_negative",
       d + "  tp_size: 1\ndist_env:\n  timeout_minutes: -5\n",
       {},
       {"timeout_minutes"}},
      {"timeout_word",
       d + "  tp_size: 1\ndist_env:\n  timeout_minutes: soon\n",
       {},
       {"timeout_minutes", "soon"}},
  };
  // Positions are 1-based line:col of the offending value.
  cases.push_back({"position_tp",
                   d + "  strategy: fsdp2\n  tp_size: two\n",
                   {},
                   {"tp_size", "two", Pos("position_tp", 3, 12)}});
  cases.push_back(
      {"position_ac", d + "  activation_checkpointing: maybe\n", {}, {Pos("position_ac", 2, 29)}});
  // 20,000 levels of nesting: rejected, no stack overflow.
  cases.push_back(
      {"deep_flow",
       "distributed:\n  tp_size: " + std::string(20000, '[') + "1" + std::string(20000, ']') + "\n",
       {},
       {"deep_flow.yaml"}});
  std::string deep_block = "distributed:\n  tp_size:\n";
  for (int i = 1; i <= 20000; ++i)
    deep_block += std::string(static_cast<size_t>(2 * i), ' ') + "-\n";
  cases.push_back({"deep_block", deep_block, {}, {"deep_block.yaml"}});
  return cases;
}

TEST(ConfigCliBadInputTest, EachExitsTwoNamingTheCulprit) {
  std::vector<BadInput> cases = BadInputs();
  ASSERT_GE(cases.size(), 40u);
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = WriteRecipe(c.name + ".yaml", c.yaml);
    std::vector<std::string> args = {"plan", "--config", path, "--world", "8"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    CliResult r = RunNmesh(args);
    EXPECT_EQ(r.code, 2) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("nmesh: error: "));
    for (const std::string& expected : c.expect) EXPECT_THAT(r.err, HasSubstr(expected));
    // The JSON form carries the same message.
    args.insert(args.begin() + 1, {"--format", "json"});
    CliResult j = RunNmesh(args);
    EXPECT_EQ(j.code, 2);
    json error = json::parse(j.out, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(error.is_object()) << j.out;
    EXPECT_THAT(error.value("error", std::string()), HasSubstr(c.expect.front()));
  }
}

TEST(ConfigCliBadInputTest, MissingFileAndSectionWithoutConfig) {
  CliResult missing = RunNmesh({"plan", "--config", "/nonexistent/recipe.yaml", "--world", "8"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/recipe.yaml"));
  CliResult section = RunNmesh({"plan", "--section", "distributed", "--world", "8"});
  EXPECT_EQ(section.code, 2);
  EXPECT_THAT(section.err, HasSubstr("--section"));
}

// Regression for a fuzz finding: reading an endless device as the recipe exhausted memory.
TEST(ConfigCliBadInputTest, EndlessDeviceExitsTwo) {
  if (!std::filesystem::exists("/dev/zero")) GTEST_SKIP() << "no /dev/zero";
  CliResult r = RunNmesh({"plan", "--config", "/dev/zero", "--world", "8"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("nmesh: error: cannot read recipe file '/dev/zero': it is a "
                               "character device, not a regular file"));
}

}  // namespace
}  // namespace nmesh::tools
