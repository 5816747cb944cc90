// Recipe input at the edges: YAML 1.1 integers as the reference's PyYAML loader reads them,
// `!!float`, multi-document files, FIFOs, long values in messages, zero timeouts, and large inputs
// (memory and time proportionate; no timed assertions here).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/config/recipe.h"

namespace nmesh::config {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<Recipe> Parse(const std::string& yaml) {
  return ParseRecipe(yaml, "recipe.yaml", Section::kDistributed, {});
}

// PyYAML's YAML 1.1 int (resolver.py and constructor.py): 0-prefixed is octal, 0b binary, 0x hex,
// a:b base 60, underscores ignored. Expected values worked out by hand from those rules.
TEST(RecipeYamlIntegerTest, ReadsYaml11IntegersAsPyYaml) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"010", 8},  {"0o10x", -1}, {"0x10", 16},    {"0b101", 5},  {"1_0", 10}, {"+4", 4},
      {"0_10", 8}, {"1:30", 90},  {"1:0:0", 3600}, {"0x_1F", 31}, {"8", 8},
  };
  for (const auto& [text, expected] : cases) {
    if (expected < 0) continue;
    absl::StatusOr<Recipe> recipe = Parse("distributed:\n  dp_size: " + text + "\n");
    ASSERT_TRUE(recipe.ok()) << text << ": " << recipe.status();
    EXPECT_EQ(recipe->request.sizes.dp, expected) << text;
  }
}

TEST(RecipeYamlIntegerTest, NonIntegersOfYaml11AreRejected) {
  // 09 is not octal and not decimal in YAML 1.1; 0o10 and 0X10 are YAML 1.2 / not PyYAML ints.
  for (const std::string text : {"09", "0o10", "0X10", "1e3", "1:60", "0b", "0x"}) {
    EXPECT_THAT(Parse("distributed:\n  tp_size: " + text + "\n"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("distributed.tp_size must be a positive integer, got")))
        << text;
  }
  EXPECT_THAT(Parse("distributed:\n  tp_size: 01000000000000000000000000\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(out of range)")));
}

// `!!float 2` is the float 2.0 in PyYAML, so it is rejected like 2.0 (it used to be accepted).
TEST(RecipeYamlIntegerTest, FloatTagIsNotAnInteger) {
  EXPECT_THAT(Parse("distributed:\n  tp_size: !!float 2\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("distributed.tp_size must be a positive integer, got !!float 2 "
                                 "(recipe.yaml:2:12)")));
  EXPECT_THAT(Parse("distributed:\n  tp_size: 2.0\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("distributed.tp_size must be a positive integer, got 2.0")));
  absl::StatusOr<Recipe> tagged_int = Parse("distributed:\n  tp_size: !!int 2\n");
  ASSERT_TRUE(tagged_int.ok()) << tagged_int.status();
  EXPECT_EQ(tagged_int->request.sizes.tp, 2);
}

// PyYAML's safe_load refuses a stream of several documents; nmesh used to read the first.
TEST(RecipeDocumentTest, SecondDocumentIsAnErrorNamingItsPosition) {
  EXPECT_THAT(Parse("distributed:\n  tp_size: 2\n---\ndistributed:\n  tp_size: 4\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("recipe has more than one YAML document: a second one starts at "
                                 "recipe.yaml:3:1")));
  EXPECT_THAT(Parse("---\ndistributed: {}\n...\n--- {}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recipe.yaml:4:1")));
  EXPECT_TRUE(Parse("---\ndistributed: {}\n...\n").ok());
}

// Sections nmesh ignores are not built; aliases into them and positions after them still work.
TEST(RecipeDocumentTest, IgnoredSectionsKeepAliasesAndPositions) {
  absl::StatusOr<Recipe> recipe = Parse(
      "model:\n  layers: [1, 2, 3]\n  sizes: &sizes\n    tp_size: 2\n    cp_size: 2\n"
      "optimizer:\n  lr: 1.0e-4\n  betas: [0.9, 0.95]\n"
      "distributed:\n  <<: *sizes\n  dp_size: 2\n");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  EXPECT_EQ(recipe->request.sizes.tp, 2);
  EXPECT_EQ(recipe->request.sizes.cp, 2);
  EXPECT_EQ(recipe->request.sizes.dp, 2);
  EXPECT_THAT(
      Parse("model:\n  a: [1,\n    2]\n  b: {c: 1}\n# comment\ndistributed:\n  tp_size: 0\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("distributed.tp_size must be a positive integer, got 0 "
                         "(recipe.yaml:7:12)")));
  // Malformed YAML in an ignored section is still malformed.
  EXPECT_THAT(Parse("model:\n  a: [1, 2\ndistributed: {}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("YAML")));
}

// A 28 MB recipe with many keys in an ignored section took 1.57 GB; this one (about 12 MB, 400k
// keys) parses, and its memory is what the report measures.
TEST(RecipeLargeInputTest, ManyKeysInAnIgnoredSection) {
  std::string yaml = "data:\n";
  for (int i = 0; i < 400000; ++i) yaml += "  key_" + std::to_string(i) + ": value\n";
  yaml += "distributed:\n  tp_size: 2\n  sequence_parallel: true\n";
  absl::StatusOr<Recipe> recipe = Parse(yaml);
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  EXPECT_EQ(recipe->request.sizes.tp, 2);
  EXPECT_EQ(recipe->PositionOf("distributed.tp_size")->line, 400003);
}

// A map with many keys was quadratic (`multimodal` with 100k keys took 8 s: a linear search per
// key for duplicates). `multimodal` is typed now, so the large map is a `tp_plan`.
TEST(RecipeLargeInputTest, ManyMapKeys) {
  std::string yaml = "distributed:\n  tp_plan:\n";
  for (int i = 0; i < 45000; ++i) yaml += "    k" + std::to_string(i) + ": colwise\n";
  absl::StatusOr<Recipe> recipe = Parse(yaml);
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  const auto& config = std::get<FSDP2Config>(recipe->strategy_config);
  ASSERT_TRUE(config.tp_plan.has_value());
  const auto& plan = std::get<nmesh::config::StringMap>(*config.tp_plan);
  EXPECT_EQ(plan.size(), 45000u);
  EXPECT_EQ(plan.back(), (std::pair<std::string, std::string>{"k44999", "colwise"}));
  // Duplicates are still found, naming both lines.
  EXPECT_THAT(Parse(yaml + "    k5: rowwise\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("duplicate key distributed.tp_plan.k5 (recipe.yaml:45003:5); "
                                 "first defined at line 8")));
  // Many unknown keys in the typed `multimodal`: one error, its key list cut.
  std::string multimodal = "distributed:\n  multimodal:\n";
  for (int i = 0; i < 45000; ++i) multimodal += "    k" + std::to_string(i) + ": 1\n";
  absl::StatusOr<Recipe> rejected = Parse(multimodal);
  ASSERT_FALSE(rejected.ok());
  EXPECT_THAT(rejected.status().message(), HasSubstr("distributed.multimodal"));
  EXPECT_LT(rejected.status().message().size(), 2000u);
}

// A 1 MB value or key gave a 1 MB error line.
TEST(RecipeMessageTest, LongValuesAreCut) {
  const std::string big(1 << 20, 'x');
  for (const std::string& yaml :
       {"distributed:\n  strategy: " + big + "\n", "distributed:\n  " + big + ": 1\n",
        "distributed:\n  mp_policy:\n    param_dtype: " + big + "\n",
        "distributed:\n  tp_size: " + big + "\n",
        "distributed:\n  activation_checkpointing_scope: " + big + "\n"}) {
    absl::StatusOr<Recipe> recipe = Parse(yaml);
    ASSERT_FALSE(recipe.ok());
    EXPECT_LT(recipe.status().message().size(), 600u) << recipe.status().message().substr(0, 300);
  }
  EXPECT_THAT(Parse("distributed:\n  strategy: " + big + "\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(std::string(80, 'x') + "... (1048576 bytes)")));
  std::string many = "distributed:\n";
  for (int i = 0; i < 1000; ++i) many += "  unknown_" + std::to_string(i) + ": 1\n";
  EXPECT_THAT(Parse(many), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("'unknown_115', ... (1000 in all)]")));
}

// timeout_minutes: 1e-300 was accepted, and every operation then timed out at "0 s".
TEST(RecipeTimeoutTest, TimeoutsThatRoundToZeroAreRejected) {
  EXPECT_THAT(Parse("dist_env:\n  timeout_minutes: 1e-300\ndistributed: {}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dist_env.timeout_minutes must be a positive number of minutes, "
                                 "got 1e-300, which rounds to zero (less than 1 ns) "
                                 "(recipe.yaml:2:20)")));
  for (const std::string bad : {"0", "-1", ".nan", ".inf", "0.0"}) {
    EXPECT_THAT(Parse("dist_env:\n  timeout_minutes: " + bad + "\ndistributed: {}\n"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("dist_env.timeout_minutes must be a positive number")))
        << bad;
  }
  absl::StatusOr<Recipe> ok = Parse("dist_env:\n  timeout_minutes: 0.5\ndistributed: {}\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->dist_env.Timeout(), absl::Seconds(30));
}

// A FIFO with no writer blocked the open for ever.
TEST(RecipeFileTest, FifoIsRejectedWithoutBlocking) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("nmesh_fifo_" + std::to_string(getpid())))
          .string();
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  absl::StatusOr<Recipe> recipe = LoadRecipeFile(path);
  std::remove(path.c_str());
  EXPECT_THAT(recipe, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("cannot read recipe file '" + path +
                                         "': it is a FIFO (named pipe), not a regular file")));
}

}  // namespace
}  // namespace nmesh::config
