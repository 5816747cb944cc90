// The fuzz harnesses on their seed corpus and past findings, and the harness's own helpers.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/fuzz/harness.h"
#include "nmesh/tools/cli.h"

namespace nmesh::fuzz {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::vector<std::filesystem::path> CorpusFiles(const std::string& name) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(NMESH_FUZZ_CORPUS_DIR) / name)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(FuzzCorpusTest, EveryRecipeSeedAndFindingHoldsTheInvariants) {
  const std::vector<std::filesystem::path> files = CorpusFiles("recipe");
  ASSERT_GE(files.size(), 30u);
  for (const std::filesystem::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    CheckRecipeInput(ReadFile(file));  // aborts with the broken invariant
  }
}

TEST(FuzzCorpusTest, EveryPlanArgsSeedAndFindingHoldsTheInvariants) {
  const std::vector<std::filesystem::path> files = CorpusFiles("plan_args");
  ASSERT_GE(files.size(), 30u);
  for (const std::filesystem::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    CheckPlanArgsInput(ReadFile(file));
  }
}

TEST(FuzzCorpusTest, EveryJobSeedAndFindingHoldsTheInvariants) {
  const std::vector<std::filesystem::path> files = CorpusFiles("job");
  ASSERT_GE(files.size(), 30u);
  for (const std::filesystem::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    CheckJobInput(ReadFile(file));
  }
}

TEST(FuzzHarnessTest, SplitsAJobAtItsFirstNul) {
  const JobInput job = SplitJobInput(std::string("distributed: {}\n\0--world\n8\0--tp", 31));
  EXPECT_EQ(job.recipe, "distributed: {}\n");
  EXPECT_THAT(job.words, ElementsAre("--world", "8", "--tp"));
  const JobInput recipe_only = SplitJobInput("distributed: {}\n");
  EXPECT_EQ(recipe_only.recipe, "distributed: {}\n");
  EXPECT_THAT(recipe_only.words, IsEmpty());
  EXPECT_THAT(SplitJobInput(std::string("\0", 1)).words, IsEmpty());
}

// The recipe's sizes count toward the output cap: tp_size 4096 with --world 4096 --rank 0 would
// list 4096 members per group at most, tp_size 8192 with --rank is refused.
TEST(FuzzHarnessTest, JobOutputCapCountsTheRecipeSizes) {
  EXPECT_TRUE(JobWithinOutputCap({"distributed: {tp_size: 4096}\n", {"--world", "4096"}}));
  EXPECT_TRUE(
      JobWithinOutputCap({"distributed: {tp_size: 64}\n", {"--world", "64", "--rank", "0"}}));
  EXPECT_FALSE(
      JobWithinOutputCap({"distributed: {tp_size: 128}\n", {"--world", "64", "--rank", "0"}}));
  EXPECT_FALSE(
      JobWithinOutputCap({"distributed: {tp_size: 8}\n", {"--world", "16", "--all-ranks"}}));
  // A recipe that parses in neither section cannot be bounded: refused with --rank only.
  EXPECT_FALSE(JobWithinOutputCap({"distributed: [\n", {"--world", "2", "--rank", "0"}}));
  EXPECT_TRUE(JobWithinOutputCap({"distributed: [\n", {"--world", "2"}}));
}

TEST(FuzzHarnessTest, RunsAJobFromItsRecipeText) {
  // CheckJobInput aborts on a broken invariant; here the run itself is looked at.
  const std::string recipe_path =
      (std::filesystem::temp_directory_path() / ("nmesh_job_harness_" + std::to_string(getpid())))
          .string();
  {
    std::ofstream out(recipe_path);
    out << "distributed:\n  tp_size: 2\n  cp_size: 2\n";
  }
  const PlanRun ok = RunPlanWordsWithRecipe(recipe_path, {"--world", "8", "--format", "json"});
  EXPECT_EQ(ok.code, tools::kExitOk) << ok.err;
  EXPECT_THAT(ok.out_head, StartsWith("{\"strategy\":\"fsdp2\",\"world_size\":8,"));
  const PlanRun bad = RunPlanWordsWithRecipe(recipe_path, {"--world", "6"});
  EXPECT_EQ(bad.code, tools::kExitUsage);
  EXPECT_THAT(bad.err, StartsWith("nmesh: error: "));
  std::filesystem::remove(recipe_path);
  CheckJobInput(std::string("distributed: {tp_size: 2}\n\0--world\n4", 36));
}

TEST(FuzzHarnessTest, SplitsOnNewlinesAndNulsKeepingEmptyWords) {
  EXPECT_THAT(SplitWords(""), IsEmpty());
  EXPECT_THAT(SplitWords("--world"), ElementsAre("--world"));
  EXPECT_THAT(SplitWords(std::string("--world\n8\0--tp\n\n2", 17)),
              ElementsAre("--world", "8", "--tp", "", "2"));
  EXPECT_THAT(SplitWords("a\n"), ElementsAre("a", ""));
}

TEST(FuzzHarnessTest, OutputCapOnlyLimitsPerRankOutput) {
  EXPECT_TRUE(PlanWordsWithinOutputCap({"--world", "2147483647"}));
  EXPECT_TRUE(PlanWordsWithinOutputCap({"--world", "4096", "--rank", "5"}));
  EXPECT_FALSE(PlanWordsWithinOutputCap({"--world", "4097", "--rank", "5"}));
  EXPECT_FALSE(PlanWordsWithinOutputCap({"--rank=5", "--world=2147483647"}));
  EXPECT_FALSE(PlanWordsWithinOutputCap({"--world", "8", "--world", "100000", "--rank", "1"}));
  EXPECT_TRUE(PlanWordsWithinOutputCap({"--world", "64", "--all-ranks"}));
  EXPECT_FALSE(PlanWordsWithinOutputCap({"--world", "65", "--all-ranks"}));
  // Sizes count too (a recipe with dp_size sets the mesh without --world); -1 and 0 do not.
  EXPECT_TRUE(PlanWordsWithinOutputCap({"--dp", "64", "--tp=64", "--cp", "-1", "--rank", "0"}));
  EXPECT_FALSE(PlanWordsWithinOutputCap({"--dp", "64", "--tp=128", "--rank", "0"}));
  EXPECT_FALSE(
      PlanWordsWithinOutputCap({"--tp", "4611686018427387904", "--pp", "4", "--rank", "0"}));
  // --ranks lists count toward the --all-ranks cap, comma- or word-separated.
  std::string ranks = "0";
  for (int r = 1; r < 70; ++r) ranks += "," + std::to_string(r);
  EXPECT_FALSE(PlanWordsWithinOutputCap({"--ranks", ranks, "--all-ranks"}));
  EXPECT_TRUE(PlanWordsWithinOutputCap({"--ranks", ranks, "--rank", "3"}));
  // Values the parser rejects are left to it.
  EXPECT_TRUE(PlanWordsWithinOutputCap({"--world", "99999999999999999999", "--rank", "1"}));
}

TEST(FuzzHarnessTest, RunsPlanInProcessAndKeepsTheOutput) {
  const PlanRun ok = RunPlanWords({"--world", "8", "--tp", "2", "--format", "json"});
  EXPECT_FALSE(ok.skipped);
  EXPECT_EQ(ok.code, tools::kExitOk) << ok.err;
  EXPECT_THAT(ok.out_head, StartsWith("{\"strategy\":\"fsdp2\",\"world_size\":8,"));
  EXPECT_EQ(ok.out_bytes, ok.out_head.size());

  const PlanRun bad = RunPlanWords({"--world", "8", "--tp", "3"});
  EXPECT_EQ(bad.code, tools::kExitUsage);
  EXPECT_THAT(bad.err, StartsWith("nmesh: error: world_size (8) must be divisible"));

  EXPECT_TRUE(RunPlanWords({"--world", "100000", "--all-ranks"}).skipped);
}

TEST(FuzzHarnessTest, ConfigMustNameAnExampleRecipe) {
  const PlanRun example = RunPlanWords({"--config", "fsdp2_tp2_cp2.yaml", "--world", "8"});
  EXPECT_FALSE(example.skipped);
  EXPECT_EQ(example.code, tools::kExitOk) << example.err;
  EXPECT_THAT(example.out_head, StartsWith("strategy     fsdp2\n"));
  EXPECT_FALSE(RunPlanWords({"--config=student_teacher.yaml", "--world", "16"}).skipped);
  // Anything else is never read.
  EXPECT_TRUE(RunPlanWords({"--config", "/dev/zero", "--world", "8"}).skipped);
  EXPECT_TRUE(RunPlanWords({"--config=../examples/ddp.yaml"}).skipped);
  EXPECT_TRUE(RunPlanWords({"--world", "8", "--config", "ddp.yaml", "--config", "x"}).skipped);
  // A dangling --config is left to the parser.
  EXPECT_EQ(RunPlanWords({"--world", "8", "--config"}).code, tools::kExitUsage);
}

}  // namespace
}  // namespace nmesh::fuzz
