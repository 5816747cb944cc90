#include "nmesh/fuzz/harness.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <streambuf>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/config/recipe.h"
#include "nmesh/tools/cli.h"

namespace nmesh::fuzz {
namespace {

using config::Recipe;
using config::Section;
using config::StrategyKind;
using validate::RequestedSizes;

bool Above1(const std::optional<int64_t>& size) { return size.has_value() && *size > 1; }

void CheckParsed(const absl::StatusOr<Recipe>& parsed, Section section,
                 const config::RecipeOverrides& overrides) {
  if (!parsed.ok()) {
    NMESH_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument) << parsed.status();
    NMESH_CHECK(!parsed.status().message().empty());
    return;
  }
  const Recipe& recipe = *parsed;
  NMESH_CHECK(recipe.section == section);
  NMESH_CHECK(recipe.filename == "fuzz.yaml") << recipe.filename;
  const RequestedSizes& s = recipe.request.sizes;
  for (const std::optional<int64_t>* size : {&s.dp, &s.dp_replicate, &s.tp, &s.pp, &s.cp, &s.ep}) {
    NMESH_CHECK(!size->has_value() || **size > 0) << **size;
  }
  const StrategyKind strategy = recipe.request.strategy;
  NMESH_CHECK(config::StrategyKindOf(recipe.strategy_config) == strategy);
  NMESH_CHECK(recipe.pipeline.has_value() == Above1(s.pp));
  NMESH_CHECK(recipe.moe.has_value() == Above1(s.ep));
  // Contract §4's conflicts are errors, never a parsed recipe.
  NMESH_CHECK(!Above1(s.dp_replicate) || strategy == StrategyKind::kFsdp2);
  if (strategy == StrategyKind::kMegatronFsdp) {
    NMESH_CHECK(!Above1(s.pp) && !Above1(s.ep));
  }
  if (strategy == StrategyKind::kDdp) {
    NMESH_CHECK(!Above1(s.tp) && !Above1(s.pp) && !Above1(s.cp) && !Above1(s.ep));
  }
  if (recipe.dist_env.timeout_minutes.has_value()) {
    NMESH_CHECK(*recipe.dist_env.timeout_minutes > 0) << *recipe.dist_env.timeout_minutes;
  }
  for (const auto& [key, position] : recipe.positions) {
    NMESH_CHECK(position.line >= 1 && position.column >= 1) << key;
  }
  // NCCL settings that parsed are settings the table accepts as a whole.
  for (const auto& [name, settings] : recipe.nccl) {
    NMESH_CHECK(comm::CheckNcclSettings(settings, name).ok()) << name;
  }
  if (overrides.strategy.has_value()) {
    NMESH_CHECK(strategy == *overrides.strategy);
  }
  if (overrides.sizes.pp.has_value()) {
    NMESH_CHECK(s.pp == overrides.sizes.pp);
  }
  if (overrides.sizes.ep.has_value()) {
    NMESH_CHECK(s.ep == overrides.sizes.ep);
  }
  if (overrides.sizes.world_size.has_value()) {
    NMESH_CHECK(s.world_size == overrides.sizes.world_size);
  }
  // The annotation helpers run on whatever positions the text produced.
  const absl::Status annotated =
      recipe.AnnotateSizeError(absl::InvalidArgumentError("tp_size must be a positive integer"));
  NMESH_CHECK(annotated.code() == absl::StatusCode::kInvalidArgument);
  (void)recipe.Where("pipeline.pp_schedule");
}

// A stream buffer that counts every byte and keeps the first `limit` of them.
class CappedBuffer : public std::streambuf {
 public:
  explicit CappedBuffer(size_t limit) : limit_(limit) {}
  size_t bytes() const { return bytes_; }
  const std::string& head() const { return head_; }

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const size_t count = static_cast<size_t>(n);
    if (head_.size() < limit_) head_.append(s, std::min(count, limit_ - head_.size()));
    bytes_ += count;
    return n;
  }

 private:
  size_t limit_;
  size_t bytes_ = 0;
  std::string head_;
};

bool IsRankFlag(const std::string& word) {
  return word == "--rank" || absl::StartsWith(word, "--rank=");
}
bool IsAllRanksFlag(const std::string& word) {
  return word == "--all-ranks" || absl::StartsWith(word, "--all-ranks=");
}

// The values given to `flag` in `words`: "--flag V" or "--flag=V".
std::vector<std::string_view> FlagValues(const std::vector<std::string>& words,
                                         std::string_view flag) {
  std::vector<std::string_view> values;
  const std::string with_equals = absl::StrFormat("%s=", flag);
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i] == flag && i + 1 < words.size()) values.push_back(words[i + 1]);
    if (absl::StartsWith(words[i], with_equals)) {
      values.push_back(std::string_view(words[i]).substr(with_equals.size()));
    }
  }
  return values;
}

// The product of every positive int64 value of --world and the size flags, saturating at the
// int64 maximum: a bound on the mesh size the flags can ask for.
int64_t SizeFlagProduct(const std::vector<std::string>& words) {
  int64_t product = 1;
  for (const char* flag : {"--world", "--dp", "--dp-replicate", "--tp", "--pp", "--cp", "--ep"}) {
    for (std::string_view text : FlagValues(words, flag)) {
      int64_t value = 0;
      if (!absl::SimpleAtoi(std::string(text), &value) || value <= 0) continue;
      if (__builtin_mul_overflow(product, value, &product)) {
        product = std::numeric_limits<int64_t>::max();
      }
    }
  }
  return product;
}

// The repository's example recipes by file name ("ddp.yaml" -> full path).
const std::map<std::string, std::string>& ExampleRecipes() {
  static const auto* examples = [] {
    auto* found = new std::map<std::string, std::string>;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(NMESH_FUZZ_EXAMPLES_DIR, error)) {
      if (entry.path().extension() == ".yaml") {
        (*found)[entry.path().filename().string()] = entry.path().string();
      }
    }
    return found;
  }();
  return *examples;
}

// Replaces every --config value by the example recipe it names; false when a value names none.
bool MapConfigToExamples(std::vector<std::string>& words) {
  const std::map<std::string, std::string>& examples = ExampleRecipes();
  auto map = [&](std::string_view name, std::string& out) {
    auto it = examples.find(std::string(name));
    if (it == examples.end()) return false;
    out = it->second;
    return true;
  };
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i] == "--config" && i + 1 < words.size()) {
      std::string path;
      if (!map(words[i + 1], path)) return false;
      words[++i] = path;
    } else if (absl::StartsWith(words[i], "--config=")) {
      std::string path;
      if (!map(std::string_view(words[i]).substr(sizeof("--config=") - 1), path)) return false;
      words[i] = "--config=" + path;
    }
  }
  return true;
}

}  // namespace

void CheckRecipeInput(std::string_view yaml) {
  for (Section section : {Section::kDistributed, Section::kTeacherDistributed}) {
    CheckParsed(config::ParseRecipe(yaml, "fuzz.yaml", section), section, {});
  }
  config::RecipeOverrides overrides;
  overrides.strategy = StrategyKind::kFsdp2;
  overrides.sizes.pp = 1;
  overrides.sizes.ep = 1;
  overrides.sizes.world_size = 8;
  CheckParsed(config::ParseRecipe(yaml, "fuzz.yaml", Section::kDistributed, overrides),
              Section::kDistributed, overrides);
}

std::vector<std::string> SplitWords(std::string_view data) {
  std::vector<std::string> words;
  if (data.empty()) return words;
  size_t start = 0;
  for (size_t i = 0; i <= data.size(); ++i) {
    if (i == data.size() || data[i] == '\n' || data[i] == '\0') {
      words.emplace_back(data.substr(start, i - start));
      start = i + 1;
    }
  }
  return words;
}

namespace {

// PlanWordsWithinOutputCap with the mesh bound multiplied by `factor` (saturating).
bool WithinOutputCap(const std::vector<std::string>& words, int64_t factor) {
  const bool rank = std::any_of(words.begin(), words.end(), IsRankFlag);
  const bool all_ranks = std::any_of(words.begin(), words.end(), IsAllRanksFlag);
  if (!rank && !all_ranks) return true;
  const int64_t cap = all_ranks ? kMaxWorldWithAllRanks : kMaxWorldWithRank;
  int64_t product = 0;
  if (__builtin_mul_overflow(SizeFlagProduct(words), factor, &product) || product > cap) {
    return false;
  }
  if (all_ranks) {
    int64_t tokens = 0;
    for (const std::string& word : words) tokens += 1 + std::count(word.begin(), word.end(), ',');
    if (tokens > kMaxWorldWithAllRanks) return false;
  }
  return true;
}

}  // namespace

bool PlanWordsWithinOutputCap(const std::vector<std::string>& words) {
  return WithinOutputCap(words, 1);
}

namespace {

PlanRun RunPlan(const std::string& recipe_path, std::vector<std::string> words) {
  PlanRun run;
  if (!MapConfigToExamples(words) || !PlanWordsWithinOutputCap(words)) {
    run.skipped = true;
    return run;
  }
  std::vector<std::string> args = {"nmesh", "plan"};
  if (!recipe_path.empty()) args.insert(args.end(), {"--config", recipe_path});
  args.insert(args.end(), words.begin(), words.end());
  CappedBuffer out_buffer(kKeptOutputBytes);
  std::ostream out(&out_buffer);
  CappedBuffer err_buffer(kKeptOutputBytes);
  std::ostream err(&err_buffer);
  run.code = tools::RunCli(args, out, err);
  run.err = err_buffer.head();
  run.out_bytes = out_buffer.bytes();
  run.out_head = out_buffer.head();
  return run;
}

void CheckPlanRun(const PlanRun& run) {
  if (run.skipped) return;
  NMESH_CHECK(run.code == tools::kExitOk || run.code == tools::kExitUsage) << run.code;
  if (run.code == tools::kExitUsage) {
    NMESH_CHECK(absl::StartsWith(run.err, "nmesh: error: ")) << "stderr: '" << run.err << "'";
  }
  if (!run.out_head.empty() && run.out_head[0] == '{' && run.out_bytes == run.out_head.size()) {
    NMESH_CHECK(nlohmann::json::accept(run.out_head)) << "stdout is not JSON: " << run.out_head;
  }
}

}  // namespace

PlanRun RunPlanWords(std::vector<std::string> words) { return RunPlan("", std::move(words)); }

PlanRun RunPlanWordsWithRecipe(const std::string& recipe_path, std::vector<std::string> words) {
  return RunPlan(recipe_path, std::move(words));
}

void CheckPlanArgsInput(std::string_view data) { CheckPlanRun(RunPlanWords(SplitWords(data))); }

JobInput SplitJobInput(std::string_view data) {
  const size_t nul = data.find('\0');
  if (nul == std::string_view::npos) return {std::string(data), {}};
  return {std::string(data.substr(0, nul)), SplitWords(data.substr(nul + 1))};
}

bool JobWithinOutputCap(const JobInput& job) {
  const bool rank = std::any_of(job.words.begin(), job.words.end(), IsRankFlag);
  const bool all_ranks = std::any_of(job.words.begin(), job.words.end(), IsAllRanksFlag);
  if (!rank && !all_ranks) return true;
  int64_t factor = 1;
  bool any_parsed = false;
  for (Section section : {Section::kDistributed, Section::kTeacherDistributed}) {
    absl::StatusOr<Recipe> parsed = config::ParseRecipe(job.recipe, "fuzz.yaml", section);
    if (!parsed.ok()) continue;
    any_parsed = true;
    const RequestedSizes& s = parsed->request.sizes;
    for (const std::optional<int64_t>* size :
         {&s.dp, &s.dp_replicate, &s.tp, &s.pp, &s.cp, &s.ep}) {
      if (size->has_value() && __builtin_mul_overflow(factor, **size, &factor)) return false;
    }
  }
  return any_parsed && WithinOutputCap(job.words, factor);
}

void CheckJobInput(std::string_view data) {
  // One private directory per process; the recipe file in it is rewritten for every input.
  static const std::string* recipe_path = [] {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "nmesh_job_fuzz_XXXXXX").string();
    NMESH_CHECK(mkdtemp(pattern.data()) != nullptr) << "mkdtemp: " << std::strerror(errno);
    auto* path = new std::string(pattern + "/recipe.yaml");
    static const std::string directory = pattern;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(directory, ignored);
    });
    return path;
  }();
  const JobInput job = SplitJobInput(data);
  if (!JobWithinOutputCap(job)) return;
  {
    const int fd = open(recipe_path->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    NMESH_CHECK(fd >= 0) << *recipe_path << ": " << std::strerror(errno);
    size_t written = 0;
    while (written < job.recipe.size()) {
      const ssize_t n = write(fd, job.recipe.data() + written, job.recipe.size() - written);
      NMESH_CHECK(n > 0) << *recipe_path << ": " << std::strerror(errno);
      written += static_cast<size_t>(n);
    }
    NMESH_CHECK(close(fd) == 0) << *recipe_path << ": " << std::strerror(errno);
  }
  CheckPlanRun(RunPlanWordsWithRecipe(*recipe_path, job.words));
}

}  // namespace nmesh::fuzz
