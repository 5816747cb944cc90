// Thread safety of the recipe layer (config/recipe.h: ParseRecipe is thread-safe). Run under TSan
// by scripts/sanitize.sh; elsewhere it checks that concurrent parses equal serial ones.
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nmesh/config/recipe.h"

namespace nmesh::config {
namespace {

constexpr int kThreads = 8;
constexpr int kRounds = 20;

// What a parse produced, as text: the error, or the request, configs, warnings and positions.
std::string Summary(const absl::StatusOr<Recipe>& parsed) {
  if (!parsed.ok()) return parsed.status().ToString();
  const Recipe& r = *parsed;
  std::ostringstream out;
  const validate::RequestedSizes& s = r.request.sizes;
  for (const std::optional<int64_t>* size : {&s.dp, &s.dp_replicate, &s.tp, &s.pp, &s.cp, &s.ep}) {
    out << (size->has_value() ? std::to_string(**size) : "-") << ",";
  }
  out << StrategyName(r.request.strategy) << " pipeline=" << r.pipeline.has_value()
      << " moe=" << r.moe.has_value()
      << " ac=" << ActivationCheckpointingName(r.activation_checkpointing)
      << " teacher=" << r.has_teacher_section << "\n";
  for (const std::string& warning : r.warnings) out << warning << "\n";
  for (const auto& [key, at] : r.positions)
    out << key << "@" << at.line << ":" << at.column << "\n";
  return out.str();
}

TEST(RecipeThreadsTest, ConcurrentParsesEqualSerialOnes) {
  // Every example, both sections (the student/teacher example has two), plus a malformed text.
  std::vector<std::string> texts;
  for (const auto& entry : std::filesystem::directory_iterator(NMESH_EXAMPLES_DIR)) {
    std::ifstream in(entry.path());
    std::ostringstream text;
    text << in.rdbuf();
    texts.push_back(text.str());
  }
  ASSERT_GE(texts.size(), 5u);
  texts.push_back("distributed:\n  tp_size: [1, 2\n");
  std::vector<std::string> serial;
  for (const std::string& text : texts) {
    for (Section section : {Section::kDistributed, Section::kTeacherDistributed}) {
      serial.push_back(Summary(ParseRecipe(text, "r.yaml", section)));
    }
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          const size_t k = (i + t) % texts.size();
          for (int s = 0; s < 2; ++s) {
            const Section section = s == 0 ? Section::kDistributed : Section::kTeacherDistributed;
            if (Summary(ParseRecipe(texts[k], "r.yaml", section)) != serial[2 * k + s]) {
              ++mismatches[t];
            }
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(std::accumulate(mismatches.begin(), mismatches.end(), 0), 0);
}

}  // namespace
}  // namespace nmesh::config
