// Fuzz harnesses: the property checks behind the libFuzzer targets in this folder, as a plain
// library so that the seed corpus and every past finding replay in the ordinary test suite
// (tests/fuzz) without clang or libFuzzer.
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     nmesh::fuzz::CheckRecipeInput(nmesh::fuzz::AsText(data, size));
//     return 0;
//   }
//
// Each Check* function aborts (NMESH_CHECK) when an invariant is broken; inputs that are merely
// invalid are fine, as long as they are rejected the documented way.
#ifndef NMESH_FUZZ_HARNESS_H_
#define NMESH_FUZZ_HARNESS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nmesh::fuzz {

// The fuzzer's bytes as text.
inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Feeds `yaml` to config::ParseRecipe("fuzz.yaml") three times: the `distributed:` section, the
// `teacher_distributed:` section, and `distributed:` with flag overrides (strategy fsdp2, pp 1,
// ep 1, world 8). Checks: no exception escapes; a failure is InvalidArgument with a message; a
// success has the section asked for, positive sizes (dp unset or positive), a strategy config of
// the request's strategy, a pipeline config exactly when pp > 1 and a moe config exactly when
// ep > 1, no strategy conflict of contract §4, a positive timeout, 1-based positions, and
// overrides that won. Thread-compatible.
void CheckRecipeInput(std::string_view yaml);

// Splits a fuzz input into command-line words on '\n' and '\0'. Empty words are kept (an empty
// argument is a valid argv entry); an empty input gives no words.
std::vector<std::string> SplitWords(std::string_view data);

// Output caps for `nmesh plan`, whose output with --rank or --all-ranks grows with the mesh: the
// JSON of one rank lists every member of each of its groups (up to the whole mesh), --all-ranks
// does that for every rank. Inputs beyond the caps are skipped, not run, so that one execution
// stays within milliseconds of output work. F is the product of every positive int64 value given
// to --world, --dp, --dp-replicate, --tp, --pp, --cp and --ep (a bound on the mesh the flags ask
// for; values the parser rejects are left to it):
//  - with --rank: F at most kMaxWorldWithRank;
//  - with --all-ranks: F at most kMaxWorldWithAllRanks, and at most kMaxWorldWithAllRanks comma-
//    or word-separated tokens in total (bounding a --ranks list).
// An example recipe's own sizes multiply the mesh by at most 16. Without --rank and --all-ranks
// the output is small at any world, up to 2^31 - 1 and beyond.
inline constexpr int64_t kMaxWorldWithRank = 4096;
inline constexpr int64_t kMaxWorldWithAllRanks = 64;

// Whether `words` (the arguments after `nmesh plan`) are within the output caps above.
bool PlanWordsWithinOutputCap(const std::vector<std::string>& words);

// What one in-process `nmesh plan` run gave.
struct PlanRun {
  bool skipped = false;  // beyond the output cap, or a --config that is not an example; not run
  int code = 0;
  std::string err;
  // Bytes written to stdout, and the first kKeptOutputBytes of them.
  size_t out_bytes = 0;
  std::string out_head;
};
inline constexpr size_t kKeptOutputBytes = 1 << 20;

// Runs tools::RunCli({"nmesh", "plan", words...}) in-process, unless beyond the output cap.
// --config values must be the file name of one of the repository's example recipes ("ddp.yaml"),
// which is replaced by its path; any other --config value skips the input, so the fuzzer never
// reads arbitrary files (devices, /proc, stdin). Files are tested by the recipe fuzzer instead.
PlanRun RunPlanWords(std::vector<std::string> words);

// Runs tools::RunCli({"nmesh", "plan", "--config", recipe_path, words...}) in-process: as
// RunPlanWords, with `recipe_path` (not mapped) before the words.
PlanRun RunPlanWordsWithRecipe(const std::string& recipe_path, std::vector<std::string> words);

// Splits `data` into words and runs them as RunPlanWords does. Checks: the exit code is 0 or 2;
// exit 2 always comes with "nmesh: error: " at the start of stderr; stdout that starts with '{'
// (the JSON formats, plan or error) is one complete JSON document when it was kept whole.
// Thread-compatible.
void CheckPlanArgsInput(std::string_view data);

// A whole job's input: recipe text and command-line words. A fuzz input is split at its first
// NUL byte: the recipe is what comes before, the words (SplitWords) what comes after; without a NUL
// the whole input is the recipe and there are no words.
struct JobInput {
  std::string recipe;
  std::vector<std::string> words;
};
JobInput SplitJobInput(std::string_view data);

// Whether a job's words are within the output caps of PlanWordsWithinOutputCap once the recipe's
// own sizes are counted: with --rank or --all-ranks, every section of the recipe that parses (no
// overrides) multiplies F by its sizes, and a recipe with neither section parsing is refused (the
// flags could make it parse with sizes the bound does not know).
bool JobWithinOutputCap(const JobInput& job);

// Writes the recipe to a file in a private temporary directory (made once per process, 0700, the
// file rewritten in place) and runs `nmesh plan --config FILE words...` in-process, as the CLI
// would read a recipe from disk. Checks what CheckPlanArgsInput checks. Thread-compatible.
void CheckJobInput(std::string_view data);

}  // namespace nmesh::fuzz

#endif  // NMESH_FUZZ_HARNESS_H_
