// Every real recipe in ../shared/recipes (skipped when absent) and every example must parse, and
// give the strategy, sizes and sections that reading the YAML directly with yaml-cpp says they
// should.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/config/recipe.h"
#include "yaml-cpp/yaml.h"

namespace nmesh::config {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> YamlFilesIn(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool IsNullNode(const YAML::Node& node) {
  if (!node || node.IsNull()) return true;
  const std::string text = node.IsScalar() ? node.Scalar() : "";
  return node.IsScalar() && (text == "none" || text == "None" || text == "null");
}

// The expected value of a size key: unset when absent or null, and dp -1 means infer.
std::optional<int64_t> ExpectedSize(const YAML::Node& section, const std::string& key) {
  const YAML::Node node = section[key];
  if (IsNullNode(node)) return std::nullopt;
  const int64_t value = node.as<int64_t>();
  if (key == "dp_size" && value == -1) return std::nullopt;
  return value;
}

StrategyKind ExpectedStrategy(const YAML::Node& section) {
  if (IsNullNode(section["strategy"])) return StrategyKind::kFsdp2;
  const std::string name = Lower(section["strategy"].as<std::string>());
  if (name == "ddp") return StrategyKind::kDdp;
  if (name == "megatron_fsdp" || name == "megatron-fsdp" || name == "mfsdp") {
    return StrategyKind::kMegatronFsdp;
  }
  EXPECT_EQ(name, "fsdp2");
  return StrategyKind::kFsdp2;
}

ActivationCheckpointing ExpectedCheckpointing(const YAML::Node& section) {
  const YAML::Node node = section["activation_checkpointing"];
  if (IsNullNode(node)) return ActivationCheckpointing::kFalse;
  const std::string text = Lower(node.Scalar());
  if (text == "selective") return ActivationCheckpointing::kSelective;
  if (text == "true" || text == "full" || text == "on" || text == "yes" || text == "enabled") {
    return ActivationCheckpointing::kFull;
  }
  return ActivationCheckpointing::kFalse;
}

// Checks one section of one file against the expectations read with yaml-cpp.
void CheckSection(const std::string& path, const YAML::Node& root, Section section) {
  const std::string name(SectionName(section));
  SCOPED_TRACE(path + " [" + name + "]");
  const YAML::Node yaml = root[name];
  absl::StatusOr<Recipe> recipe = LoadRecipeFile(path, section);
  ASSERT_TRUE(recipe.ok()) << recipe.status();

  EXPECT_EQ(recipe->request.strategy, ExpectedStrategy(yaml));
  EXPECT_EQ(StrategyKindOf(recipe->strategy_config), recipe->request.strategy);
  const validate::RequestedSizes& sizes = recipe->request.sizes;
  EXPECT_EQ(sizes.dp, ExpectedSize(yaml, "dp_size"));
  EXPECT_EQ(sizes.dp_replicate, ExpectedSize(yaml, "dp_replicate_size"));
  EXPECT_EQ(sizes.tp, ExpectedSize(yaml, "tp_size"));
  EXPECT_EQ(sizes.pp, ExpectedSize(yaml, "pp_size"));
  EXPECT_EQ(sizes.cp, ExpectedSize(yaml, "cp_size"));
  EXPECT_EQ(sizes.ep, ExpectedSize(yaml, "ep_size"));
  EXPECT_FALSE(sizes.world_size.has_value());
  EXPECT_EQ(recipe->activation_checkpointing, ExpectedCheckpointing(yaml));

  const int64_t pp = ExpectedSize(yaml, "pp_size").value_or(1);
  const int64_t ep = ExpectedSize(yaml, "ep_size").value_or(1);
  EXPECT_EQ(recipe->pipeline.has_value(), pp > 1);
  EXPECT_EQ(recipe->moe.has_value(), ep > 1);
  if (yaml["pipeline"] && pp > 1 && yaml["pipeline"]["pp_microbatch_size"]) {
    EXPECT_EQ(recipe->pipeline->pp_microbatch_size,
              yaml["pipeline"]["pp_microbatch_size"].as<int64_t>());
  }
  if (yaml["pipeline"] && pp <= 1) {
    EXPECT_THAT(recipe->warnings, ::testing::Contains(HasSubstr(name + ".pipeline")));
  }
  if (yaml["multimodal"]) {
    const auto& fsdp2 = std::get<FSDP2Config>(recipe->strategy_config);
    if (yaml["multimodal"]["frozen_sharding"]) {
      EXPECT_EQ(FrozenShardingName(fsdp2.multimodal.frozen_sharding),
                yaml["multimodal"]["frozen_sharding"].as<std::string>());
    }
  }

  EXPECT_EQ(recipe->has_teacher_section, static_cast<bool>(root["teacher_distributed"]));
  const YAML::Node dist_env = root["dist_env"];
  if (dist_env && dist_env["timeout_minutes"]) {
    EXPECT_EQ(recipe->dist_env.timeout_minutes, dist_env["timeout_minutes"].as<double>());
  } else {
    EXPECT_FALSE(recipe->dist_env.timeout_minutes.has_value());
  }
  if (dist_env && dist_env["backend"]) {
    EXPECT_EQ(recipe->dist_env.backend, dist_env["backend"].as<std::string>());
  }
}

void CheckFile(const std::string& path) {
  const YAML::Node root = YAML::LoadFile(path);
  ASSERT_TRUE(root["distributed"]) << path;
  CheckSection(path, root, Section::kDistributed);
  if (root["teacher_distributed"]) CheckSection(path, root, Section::kTeacherDistributed);
}

TEST(SharedRecipesTest, EveryRealRecipeParses) {
  const std::vector<std::string> files = YamlFilesIn(NMESH_SHARED_RECIPES_DIR);
  if (files.empty()) GTEST_SKIP() << "no recipes in " << NMESH_SHARED_RECIPES_DIR;
  for (const std::string& path : files) CheckFile(path);
}

TEST(ExamplesTest, EveryExampleParses) {
  const std::vector<std::string> files = YamlFilesIn(NMESH_EXAMPLES_DIR);
  ASSERT_GE(files.size(), 7u);
  for (const std::string& path : files) CheckFile(path);
}

// Each example states the world it is meant for ("a world of N ranks"); its sizes must fit it.
TEST(ExamplesTest, SizesFitTheStatedWorld) {
  const std::regex world_comment("world of ([0-9]+)");
  for (const std::string& path : YamlFilesIn(NMESH_EXAMPLES_DIR)) {
    SCOPED_TRACE(path);
    std::smatch match;
    const std::string text = ReadFile(path);
    if (!std::regex_search(text, match, world_comment)) continue;  // e.g. "any world size"
    const int64_t world = std::stoll(match[1]);
    const YAML::Node root = YAML::Load(text);
    int64_t explicit_total = 0;
    int sections = 0;
    for (const char* name : {"distributed", "teacher_distributed"}) {
      const YAML::Node section = root[name];
      if (!section) continue;
      ++sections;
      const int64_t tp = ExpectedSize(section, "tp_size").value_or(1);
      const int64_t cp = ExpectedSize(section, "cp_size").value_or(1);
      const int64_t pp = ExpectedSize(section, "pp_size").value_or(1);
      const std::optional<int64_t> dp = ExpectedSize(section, "dp_size");
      if (dp.has_value()) {
        explicit_total += *dp * tp * cp * pp;
      } else {
        EXPECT_EQ(world % (tp * cp * pp), 0) << name;
        explicit_total += world;
      }
    }
    EXPECT_EQ(explicit_total, world) << sections << " section(s)";
  }
}

// The README's main command runs this example on 8 ranks.
TEST(ExamplesTest, MainExampleInfersDp2OnEightRanks) {
  ASSERT_OK_AND_ASSIGN(Recipe recipe,
                       LoadRecipeFile(std::string(NMESH_EXAMPLES_DIR) + "/fsdp2_tp2_cp2.yaml"));
  EXPECT_EQ(recipe.request.strategy, StrategyKind::kFsdp2);
  const validate::RequestedSizes& s = recipe.request.sizes;
  EXPECT_FALSE(s.dp.has_value());
  EXPECT_EQ(8 / (s.tp.value_or(1) * s.cp.value_or(1) * s.pp.value_or(1)), 2);
  EXPECT_EQ(s.tp, 2);
  EXPECT_EQ(s.cp, 2);
}

TEST(ExamplesTest, ExamplesAreNotCopiesOfTheSharedRecipes) {
  std::vector<std::string> shared;
  for (const std::string& path : YamlFilesIn(NMESH_SHARED_RECIPES_DIR)) {
    shared.push_back(ReadFile(path));
  }
  for (const std::string& path : YamlFilesIn(NMESH_EXAMPLES_DIR)) {
    EXPECT_EQ(std::count(shared.begin(), shared.end(), ReadFile(path)), 0) << path;
  }
}

}  // namespace
}  // namespace nmesh::config
