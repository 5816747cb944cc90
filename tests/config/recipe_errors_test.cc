// Bad recipes: each must fail with InvalidArgument, name the culprit key and value, and point at
// file:line:col (hand-counted below, 1-based) where a position exists. Nothing may crash or hang.
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
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kFile[] = "bad.yaml";
constexpr char kAnyPosition[] = "*";

struct BadInput {
  std::string name;
  std::string yaml;
  std::vector<std::string> needles;  // substrings the message must contain
  std::string where;                 // "line:col", kAnyPosition, or "" for no position
  Section section = Section::kDistributed;
};

std::ostream& operator<<(std::ostream& os, const BadInput& input) { return os << input.name; }

// The start of an ELF header followed by bytes that are not UTF-8, with NULs inside.
constexpr char kGarbage[] =
    "\x7f"
    "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0\x01\0\0\0\xff\xfe\"\\\xc3\x28 {[: ]\n\x01\x02";

const std::string kAcMessage =
    "activation_checkpointing must be a boolean or one of 'full', 'selective', 'false'.";

std::vector<BadInput> BadInputs() {
  const std::string d = "distributed:\n";
  return {
      // Sizes (§3): zero, negative, non-integer, boolean, list, map, overflow.
      {"TpZero",
       d + "  tp_size: 0\n",
       {"distributed.tp_size must be a positive integer, got 0"},
       "2:12"},
      {"CpNegative", d + "  cp_size: -2\n", {"cp_size must be a positive integer, got -2"}, "2:12"},
      {"DpZero", d + "  dp_size: 0\n", {"dp_size must be a positive integer, got 0"}, "2:12"},
      {"DpNegativeNotMinusOne", d + "  dp_size: -4\n", {"dp_size", "got -4"}, "2:12"},
      {"PpFraction",
       d + "  pp_size: 2.5\n",
       {"pp_size must be a positive integer, got 2.5"},
       "2:12"},
      {"EpWord", d + "  ep_size: two\n", {"ep_size must be a positive integer, got 'two'"}, "2:12"},
      {"TpQuotedNumber", d + "  tp_size: \"2\"\n", {"tp_size", "got '2'"}, "2:12"},
      {"TpBoolean", d + "  tp_size: true\n", {"tp_size", "got true"}, "2:12"},
      {"DpReplicateBoolean",
       d + "  dp_replicate_size: yes\n",
       {"dp_replicate_size", "got yes"},
       "2:22"},
      {"TpList", d + "  tp_size: [2]\n", {"tp_size", "got a list"}, "2:12"},
      {"TpMap", d + "  tp_size: {n: 2}\n", {"tp_size", "got a map"}, "2:12"},
      {"TpOverflow",
       d + "  tp_size: 99999999999999999999\n",
       {"tp_size", "99999999999999999999"},
       "2:12"},
      {"DpNegativeOverflow",
       d + "  dp_size: -99999999999999999999\n",
       {"dp_size", "-99999999999999999999"},
       "2:12"},
      {"CpBlockList", d + "  cp_size:\n    - 2\n", {"cp_size", "got a list"}, "3:5"},
      // Strategies.
      {"UnknownStrategy",
       d + "  strategy: zero3\n",
       {"distributed.strategy",
        "Unknown strategy: zero3. Valid strategies: ['ddp', 'fsdp2', "
        "'megatron-fsdp', 'megatron_fsdp', 'mfsdp']"},
       "2:13"},
      {"StrategyList", d + "  strategy: [fsdp2]\n", {"distributed.strategy", "a list"}, "2:13"},
      {"StrategyNumber", d + "  strategy: 2\n", {"Unknown strategy: 2"}, "2:13"},
      // Unknown options, also inside nested sections.
      {"UnknownOption",
       d + "  tp_size: 1\n  foo: 1\n",
       {"Unknown options for strategy 'fsdp2': ['foo']"},
       "3:3"},
      {"UnknownDdpOption",
       d + "  strategy: ddp\n  tp_plan: {}\n",
       {"Unknown options for strategy 'ddp': ['tp_plan']"},
       "3:3"},
      {"UnknownPipelineOption",
       d + "  pp_size: 2\n  pipeline:\n    schedule: 1f1b\n",
       {"Unknown options for distributed.pipeline: ['schedule']"},
       "4:5"},
      {"UnknownMoeOption",
       d + "  ep_size: 2\n  moe:\n    activation_checkpointing_modules: [a]\n",
       {"Unknown options for distributed.moe: ['activation_checkpointing_modules']"},
       "4:5"},
      {"UnknownMpPolicyOption",
       d + "  mp_policy:\n    param: bf16\n",
       {"Unknown options for distributed.mp_policy: ['param']"},
       "3:5"},
      {"UnknownOffloadOption",
       d + "  offload_policy:\n    pin: true\n",
       {"Unknown options for distributed.offload_policy: ['pin']"},
       "3:5"},
      {"UnknownTeacherOption",
       "separate_meshes: true\ndistributed: {}\nteacher_distributed:\n  bogus: 1\n",
       {"Unknown options for strategy 'fsdp2': ['bogus']"},
       "4:3",
       Section::kTeacherDistributed},
      // activation_checkpointing.
      {"AcWord",
       d + "  activation_checkpointing: sometimes\n",
       {"distributed." + kAcMessage, "'sometimes'"},
       "2:29"},
      {"AcInteger", d + "  activation_checkpointing: 2\n", {"distributed." + kAcMessage}, "2:29"},
      {"AcList", d + "  activation_checkpointing: [full]\n", {"distributed." + kAcMessage}, "2:29"},
      {"AcTeacher",
       "separate_meshes: true\ndistributed: {}\nteacher_distributed:\n  activation_checkpointing: "
       "part\n",
       {"teacher_distributed." + kAcMessage, "'part'"},
       "4:29",
       Section::kTeacherDistributed},
      // Dtypes.
      {"AutocastDtype",
       d + "  autocast_dtype: int8\n",
       {"distributed.autocast_dtype", "'int8'", "not a floating-point dtype"},
       "2:19"},
      {"MpPolicyDtype",
       d + "  mp_policy:\n    param_dtype: fp8\n",
       {"distributed.mp_policy.param_dtype", "Unknown dtype string: fp8"},
       "3:18"},
      {"PipelineDtype",
       d + "  pp_size: 2\n  pipeline:\n    dtype: float64\n",
       {"distributed.pipeline.dtype", "'float64'"},
       "4:12"},
      {"MoeLmHeadPrecision",
       d + "  ep_size: 2\n  moe:\n    lm_head_precision: double\n",
       {"distributed.moe.lm_head_precision", "'double'"},
       "4:24"},
      {"DdpAutocastDtype",
       d + "  strategy: ddp\n  autocast_dtype: torch.int8\n",
       {"distributed.autocast_dtype", "'torch.int8'"},
       "3:19"},
      // Strategy conflicts.
      {"DpReplicateWithDdp",
       d + "  strategy: ddp\n  dp_replicate_size: 2\n",
       {"dp_replicate_size is only supported with FSDP2Config", "2"},
       "3:22"},
      {"DpReplicateWithMegatron",
       d + "  strategy: megatron_fsdp\n  dp_replicate_size: 4\n",
       {"dp_replicate_size is only supported with FSDP2Config", "4"},
       "3:22"},
      {"TpPlanWithMegatron",
       d + "  strategy: megatron_fsdp\n  tp_plan:\n    lm_head: colwise\n",
       {"tp_plan", "FSDP2"},
       "3:3"},
      {"SelectiveWithMegatron",
       d + "  strategy: mfsdp\n  activation_checkpointing: selective\n",
       {"selective activation checkpointing is supported only for FSDP2 and DDP"},
       "3:29"},
      {"DdpWithTp",
       d + "  strategy: ddp\n  tp_size: 2\n",
       {"ddp does not support tensor parallelism", "tp_size"},
       "3:12"},
      {"MegatronWithPp",
       d + "  strategy: megatron_fsdp\n  pp_size: 2\n  pipeline: {}\n",
       {"megatron_fsdp does not support pipeline parallelism", "pp_size"},
       "3:12"},
      // Structure.
      {"DistributedList", "distributed: [1, 2]\n", {"distributed must be a map", "a list"}, "1:14"},
      {"DistributedScalar",
       "distributed: fsdp2\n",
       {"distributed must be a map", "'fsdp2'"},
       "1:14"},
      {"DistributedNull", "distributed:\n", {"distributed must be a map", "null"}, "1:1"},
      {"MissingSection", "model: {}\n", {"has no 'distributed' section", kFile}, ""},
      {"MissingTeacherSection",
       "distributed: {}\n",
       {"has no 'teacher_distributed' section"},
       "",
       Section::kTeacherDistributed},
      {"EmptyFile", "", {"has no 'distributed' section"}, ""},
      {"OnlyComments", "# nothing here\n", {"has no 'distributed' section"}, ""},
      {"TopLevelList", "- distributed: {}\n", {"must be a map of sections"}, "1:1"},
      {"DuplicateKey",
       d + "  tp_size: 2\n  tp_size: 4\n",
       {"duplicate key distributed.tp_size"},
       "3:3"},
      {"DuplicateSection",
       "distributed: {}\ndistributed: {}\n",
       {"duplicate key distributed"},
       "2:1"},
      {"DistEnvTimeoutWord",
       "dist_env:\n  timeout_minutes: soon\ndistributed: {}\n",
       {"dist_env.timeout_minutes must be a positive number, got 'soon'"},
       "2:20"},
      {"DistEnvNotAMap", "dist_env: [1]\ndistributed: {}\n", {"dist_env must be a map"}, "1:11"},
      {"BooleanFieldInteger",
       d + "  sequence_parallel: 1\n",
       {"distributed.sequence_parallel must be a boolean, got 1"},
       "2:22"},
      {"PipelineNotAMap",
       d + "  pp_size: 2\n  pipeline: gpipe\n",
       {"distributed.pipeline must be a map", "'gpipe'"},
       "3:13"},
      {"PipelineMicrobatchZero",
       d + "  pp_size: 2\n  pipeline:\n    pp_microbatch_size: 0\n",
       {"distributed.pipeline.pp_microbatch_size must be a positive integer, got 0"},
       "4:25"},
      {"PipelineRounding",
       d + "  pp_size: 2\n  pipeline:\n    round_virtual_stages_to_pp_multiple: "
           "nearest\n",
       {"round_virtual_stages_to_pp_multiple must be 'up' or 'down'", "'nearest'"},
       "4:42"},
      {"TpPlanValueNotString",
       d + "  tp_plan:\n    lm_head: [colwise]\n",
       {"distributed.tp_plan.lm_head must be a string"},
       "3:14"},
      {"AcScope",
       d + "  activation_checkpointing_scope: text\n",
       {"distributed.activation_checkpointing_scope", "'text'"},
       "2:35"},
      {"ZeroDpStrategy",
       d + "  strategy: megatron_fsdp\n  zero_dp_strategy: 5\n",
       {"distributed.zero_dp_strategy must be 0, 1, 2, 3", "got 5"},
       "3:21"},
      {"BucketCapNegative",
       d + "  strategy: ddp\n  bucket_cap_mb: -5\n",
       {"distributed.bucket_cap_mb must be a positive number, got -5"},
       "3:18"},
      {"RecursiveAliasInMultimodal",
       d + "  multimodal: &m {a: [*m]}\n",
       {"Unknown options for distributed.multimodal: ['a']"},
       kAnyPosition},
      {"AliasBombInMultimodal",
       "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, "
       "*c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, "
       "*e, "
       "*e, *e]\n" +
           d + "  multimodal: *f\n",
       {"FSDP2Config.multimodal must be a MultimodalDistributedConfig instance."},
       kAnyPosition},
      // Malformed YAML and binary input.
      {"UnclosedFlow", d + "  tp_size: [2\n", {"malformed YAML"}, kAnyPosition},
      {"BadIndentation", d + "  tp_size: 2\n cp_size: 2\n", {"malformed YAML"}, kAnyPosition},
      {"MapThenSequence", d + "  tp_size: 2\n  - 3\n", {"malformed YAML"}, kAnyPosition},
      {"UnterminatedFlowMap",
       d + "  mp_policy: {param_dtype: bf16\n",
       {"malformed YAML"},
       kAnyPosition},
      {"TabIndentation", d + "\ttp_size: 2\n", {}, kAnyPosition},
      {"BinaryGarbage", std::string(kGarbage, sizeof(kGarbage) - 1), {}, kAnyPosition},
  };
}

class RecipeErrorsTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(RecipeErrorsTest, IsRejectedWithKeyValueAndPosition) {
  const BadInput& input = GetParam();
  absl::StatusOr<Recipe> recipe = ParseRecipe(input.yaml, kFile, input.section);
  ASSERT_THAT(recipe, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  const std::string message(recipe.status().message());
  for (const std::string& needle : input.needles) {
    EXPECT_THAT(message, HasSubstr(needle));
  }
  if (input.where == kAnyPosition) {
    EXPECT_THAT(message, ContainsRegex("bad\\.yaml:[0-9]+:[0-9]+"));
  } else if (!input.where.empty()) {
    EXPECT_THAT(message, HasSubstr(std::string(kFile) + ":" + input.where + ")"));
  } else {
    EXPECT_THAT(message, Not(ContainsRegex("bad\\.yaml:[0-9]+:[0-9]+")));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, RecipeErrorsTest, ::testing::ValuesIn(BadInputs()),
                         [](const auto& info) { return info.param.name; });

TEST(RecipeErrorsTableTest, HasAtLeastFortyEntries) { EXPECT_GE(BadInputs().size(), 40u); }

// ---- Deep nesting: yaml-cpp's depth guard must stop it, without a crash or a hang. ----------

TEST(RecipeDeepNestingTest, FlowStyle20000Deep) {
  constexpr int kDepth = 20000;
  const std::string yaml =
      "distributed:\n  multimodal: " + std::string(kDepth, '[') + std::string(kDepth, ']') + "\n";
  EXPECT_THAT(ParseRecipe(yaml, kFile),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("nests deeper than"), ContainsRegex("bad\\.yaml:2:"))));
  const std::string maps = "distributed: " + [] {
    std::string s;
    for (int i = 0; i < kDepth; ++i) s += "{a: ";
    return s + "1" + std::string(kDepth, '}');
  }();
  EXPECT_THAT(ParseRecipe(maps, kFile),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nests deeper than")));
  // Unclosed brackets too.
  EXPECT_THAT(ParseRecipe("distributed: " + std::string(kDepth, '['), kFile),
              StatusIs(absl::StatusCode::kInvalidArgument, ContainsRegex("bad\\.yaml:[0-9]+:")));
}

TEST(RecipeDeepNestingTest, BlockStyle20000Deep) {
  constexpr int kDepth = 20000;
  // Compact block sequences: "- - - ... x" nests one block sequence per dash.
  std::string sequences = "distributed:\n  multimodal:\n    ";
  for (int i = 0; i < kDepth; ++i) sequences += "- ";
  sequences += "x\n";
  EXPECT_THAT(ParseRecipe(sequences, kFile),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("nests deeper than"), ContainsRegex("bad\\.yaml:3:"))));
  // Block mappings, one more space of indentation per level (kept to 2,000 levels so the text
  // stays a few MiB; the limit is far lower).
  std::string mappings = "distributed:\n";
  for (int i = 0; i < 2000; ++i) mappings += std::string(i + 1, ' ') + "a:\n";
  EXPECT_THAT(ParseRecipe(mappings, kFile),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nests deeper than")));
}

// ---- Files --------------------------------------------------------------------------------

TEST(RecipeFileErrorsTest, MissingFileNamesThePath) {
  const std::string path = ::testing::TempDir() + "/no_such_recipe_dir/missing.yaml";
  EXPECT_THAT(LoadRecipeFile(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                             AllOf(HasSubstr(path), HasSubstr("No such file"))));
}

TEST(RecipeFileErrorsTest, DirectoryIsNotARecipe) {
  EXPECT_THAT(LoadRecipeFile(::testing::TempDir()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("directory")));
}

TEST(RecipeFileErrorsTest, FileErrorsNameTheFile) {
  const std::string path = ::testing::TempDir() + "/nmesh_recipe_errors_test.yaml";
  {
    std::ofstream out(path);
    out << "# a recipe\ndistributed:\n  tp_size: zero\n";
  }
  EXPECT_THAT(LoadRecipeFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("distributed.tp_size must be a positive integer, got 'zero' (" +
                                 path + ":3:12)")));
  std::remove(path.c_str());
}

// Fuzz finding (plan_args_fuzzer after --config was added): a device has no size to check first,
// and reading /dev/zero whole ran out of memory (std::bad_alloc); /dev/ptmx and /dev/kmsg waited
// for ever. Only regular files are read now.
TEST(RecipeFileErrorsTest, DevicesAreNeverRead) {
  for (const std::string device : {"/dev/zero", "/dev/ptmx", "/dev/null"}) {
    if (!std::filesystem::exists(device)) continue;
    EXPECT_THAT(LoadRecipeFile(device),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("cannot read recipe file '" + device +
                                   "': it is a character device, not a regular file")));
  }
}

// A sparse regular file beyond the cap is refused by its size, before anything is read.
TEST(RecipeFileErrorsTest, LargeRegularFileIsRefusedBeforeReading) {
  const std::string path = ::testing::TempDir() + "/nmesh_sparse_recipe.yaml";
  std::filesystem::remove(path);
  { std::ofstream(path) << "distributed:\n"; }
  std::filesystem::resize_file(path, (64u << 20) + 1);
  EXPECT_THAT(LoadRecipeFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("is 67108865 bytes, more than the 67108864 a recipe may have")));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace nmesh::config
