// The event-built recipe document (config/internal/yaml_document.h) against yaml-cpp's own loader,
// and hostile recipe shapes: values too many to build, anchors, aliases that multiply, long
// scalars. Inputs are a few MB at most; nothing is timed.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/config/internal/yaml_document.h"
#include "nmesh/config/recipe.h"
#include "yaml-cpp/yaml.h"

namespace nmesh::config {
namespace {

using internal::DocNode;
using internal::kMaxAnchors;
using internal::kMaxBuiltNodes;
using internal::LoadDocument;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<Recipe> Parse(const std::string& yaml) {
  return ParseRecipe(yaml, "recipe.yaml", Section::kDistributed, {});
}

// Compares a DocNode with the YAML::Node yaml-cpp builds for the same text: kind, tag, mark,
// scalar, size and children, `depth` levels down (aliases may make either a cycle).
void ExpectSameTree(const DocNode& mine, const YAML::Node& theirs, const std::string& path,
                    int depth) {
  SCOPED_TRACE(path);
  ASSERT_EQ(mine.IsDefined(), theirs.IsDefined());
  if (!theirs.IsDefined()) return;
  ASSERT_EQ(mine.IsNull(), theirs.IsNull());
  ASSERT_EQ(mine.IsScalar(), theirs.IsScalar());
  ASSERT_EQ(mine.IsSequence(), theirs.IsSequence());
  ASSERT_EQ(mine.IsMap(), theirs.IsMap());
  EXPECT_EQ(mine.Tag(), theirs.Tag());
  EXPECT_EQ(mine.Mark().line, theirs.Mark().line);
  EXPECT_EQ(mine.Mark().column, theirs.Mark().column);
  EXPECT_FALSE(mine.partial());
  if (theirs.IsScalar()) {
    EXPECT_EQ(mine.Scalar(), theirs.Scalar());
  }
  if (!theirs.IsSequence() && !theirs.IsMap()) return;
  ASSERT_EQ(mine.size(), theirs.size());
  if (depth == 0) return;
  if (theirs.IsSequence()) {
    for (size_t i = 0; i < theirs.size(); ++i) {
      ExpectSameTree(mine[i], theirs[i], path + "[" + std::to_string(i) + "]", depth - 1);
    }
    return;
  }
  auto it = mine.begin();
  size_t i = 0;
  for (auto theirs_it = theirs.begin(); theirs_it != theirs.end(); ++theirs_it, ++it, ++i) {
    ASSERT_TRUE(it != mine.end());
    const std::string at = path + "{" + std::to_string(i) + "}";
    ExpectSameTree(it->first, theirs_it->first, at + ".key", depth - 1);
    ExpectSameTree(it->second, theirs_it->second, at + ".value", depth - 1);
  }
  EXPECT_TRUE(it == mine.end());
}

// The top-level keys of `root` (scalars only): asking for all of them keeps the whole document.
std::vector<std::string> TopLevelKeys(const YAML::Node& root) {
  std::vector<std::string> keys;
  if (!root.IsMap()) return keys;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it->first.IsScalar()) keys.push_back(it->first.Scalar());
  }
  return keys;
}

void ExpectSameAsYamlLoad(const std::string& text, const std::string& name) {
  SCOPED_TRACE(name);
  const YAML::Node theirs = YAML::Load(text);
  const std::vector<std::string> keys = TopLevelKeys(theirs);
  absl::StatusOr<DocNode> mine =
      LoadDocument(text, name, std::vector<std::string_view>(keys.begin(), keys.end()));
  ASSERT_TRUE(mine.ok()) << mine.status();
  ExpectSameTree(*mine, theirs, "root", 12);
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(RecipeDocumentTreeTest, MatchesYamlLoadOnEveryRecipeAndExample) {
  int files = 0;
  for (const char* dir : {NMESH_EXAMPLES_DIR, NMESH_SHARED_RECIPES_DIR}) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      if (entry.path().extension() != ".yaml") continue;
      ExpectSameAsYamlLoad(ReadFile(entry.path()), entry.path().filename().string());
      ++files;
    }
  }
  EXPECT_GE(files, 8);
}

TEST(RecipeDocumentTreeTest, MatchesYamlLoadOnTheCorners) {
  const std::vector<std::string> corners = {
      "",
      "# only a comment\n",
      "---\n...\n",
      "~\n",
      "[1, 2, {a: b}]\n",
      "plain\n",
      "{distributed: {tp_size: 2}, model: [1, 2]}\n",
      "a: &x {k: v}\nb: *x\nc: [*x, *x]\n",
      "a: &s distributed\n*s : {tp_size: 2}\n",
      "base: &b {tp_size: 2}\ndistributed:\n  <<: *b\n  '<<': 1\n  dp_size: 2\n",
      "a: !!str 1\nb: !!float 2\nc: !custom {x: 1}\nd: \"q\"\ne: 'q'\nf:\ng: null\nh: ~\n",
      "a: 1\na: 2\n",
      "k:\n  ? [complex, key]\n  : value\n  ? {map: key}\n  : 2\n",
      "a: |\n  literal\n  text\nb: >\n  folded\n  text\n",
      "a:\n  - - 1\n    - 2\n  - k: v\n    l: [x, {y: z}]\n",
      "r: &r [1, *r]\n",
      "x: &e\ny: *e\n",
      "a: [1,\n  2]\nb: {c: 1,\n  d: 2}\n",
      "a: 1\r\nb: [2,\r\n  3]\r\n",
  };
  for (size_t i = 0; i < corners.size(); ++i) {
    ExpectSameAsYamlLoad(corners[i], "corner" + std::to_string(i));
  }
}

// Only the keys asked for are built, with whatever they refer to by alias; positions stay.
TEST(RecipeDocumentTreeTest, KeepsTheReadKeysAndWhatTheyReferTo) {
  const std::string text =
      "model: {layers: [1, 2, 3]}\nsizes: &s {tp_size: 2}\ndistributed:\n  <<: *s\n"
      "other: [4, 5]\n";
  absl::StatusOr<DocNode> root = LoadDocument(text, "f.yaml", {"distributed"});
  ASSERT_TRUE(root.ok()) << root.status();
  std::vector<std::string> keys;
  for (auto it = root->begin(); it != root->end(); ++it) keys.push_back(it->first.Scalar());
  EXPECT_THAT(keys, ::testing::ElementsAre("sizes", "distributed"));
  EXPECT_EQ(root->size(), 2u);
  auto it = root->begin();
  ++it;
  EXPECT_EQ(it->first.Mark().line, 2);  // 0-based, as yaml-cpp's
}

// A list too long to build keeps its size, kind and position; its items past the budget are not
// built, and the list says so.
TEST(RecipeDocumentTreeTest, CollectionsPastTheBudgetArePartial) {
  const size_t items = static_cast<size_t>(kMaxBuiltNodes) + 10;
  std::string text = "distributed:\n  tp_plan: [1";
  for (size_t i = 1; i < items; ++i) text += ",1";
  text += "]\n";
  absl::StatusOr<DocNode> root = LoadDocument(text, "f.yaml", {"distributed"});
  ASSERT_TRUE(root.ok()) << root.status();
  const DocNode list = root->begin()->second.begin()->second;
  ASSERT_TRUE(list.IsSequence());
  EXPECT_TRUE(list.partial());
  EXPECT_EQ(list.size(), items);
  EXPECT_EQ(list.Mark().line, 1);
  EXPECT_EQ(list.Mark().column, 11);
  EXPECT_EQ(list[0].Scalar(), "1");
  EXPECT_FALSE(list[items - 1].IsDefined());
  EXPECT_FALSE(root->partial());
}

TEST(RecipeDocumentTreeTest, TooManyAnchorsAreRefusedNamingTheFile) {
  std::string text = "data:\n";
  for (int64_t i = 0; i <= kMaxAnchors; ++i) text += "  - &a" + std::to_string(i) + " 1\n";
  text += "distributed: {}\n";
  EXPECT_THAT(LoadDocument(text, "f.yaml", {"distributed"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("recipe 'f.yaml' has more than 10000 anchors (&name), more than "
                                 "nmesh reads (f.yaml:10002:5)")));
  EXPECT_THAT(Parse(text),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 10000 anchors")));
}

// yaml-cpp keeps about 48 bytes per value written in block style until the parse ends: a list of
// "  - 1" lines (6 bytes each) would cost 8 times the file; past one value per 10 bytes (plus
// 65536) the document is refused, naming the file and the line.
TEST(RecipeDocumentTreeTest, TooManyBlockValuesForTheSizeAreRefused) {
  std::string text = "distributed:\n  tp_plan:\n";
  for (int i = 0; i < 170000; ++i) text += "  - 1\n";
  const size_t limit = text.size() / 10 + 65536;
  // The root, the section and the list are values too: item `limit - 2`, on line `limit`, is
  // the first past the limit.
  const std::string where = "f.yaml:" + std::to_string(limit) + ":5";
  EXPECT_THAT(LoadDocument(text, "f.yaml", {"distributed"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("recipe 'f.yaml' has more than " + std::to_string(limit) +
                                 " values in block style, more than nmesh reads from " +
                                 std::to_string(text.size()) + " bytes (one per 10 bytes, and " +
                                 "65536 more) (" + where + ")")));
  // Keys of block maps do not count, nor values in flow style: the same values as a flow list, or
  // as "kN: 1" lines, are read.
  std::string flow = "distributed:\n  tp_plan: [1";
  for (int i = 1; i < 170000; ++i) flow += ", 1";
  EXPECT_TRUE(LoadDocument(flow + "]\n", "f.yaml", {"distributed"}).ok());
  std::string keys = "distributed:\n  tp_plan:\n";
  for (int i = 0; i < 170000; ++i) keys += "    k" + std::to_string(i) + ": 1\n";
  EXPECT_TRUE(LoadDocument(keys, "f.yaml", {"distributed"}).ok());
}

// ---- Through the recipe parser. ----------------------------------------------------------------

// Issue 24's shape: a flow list under distributed.tp_plan (5 MB took 1.23 GB). Here 2 MB: the
// list is described by its size without being built.
TEST(RecipeHostileTest, LongFlowListIsDescribedBySize) {
  constexpr int kItems = 1000000;
  std::string yaml = "distributed:\n  tp_plan: [1";
  for (int i = 1; i < kItems; ++i) yaml += ",1";
  yaml += "]\n";
  EXPECT_THAT(Parse(yaml), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("distributed.tp_plan must be a map of strings to "
                                              "strings, or a string, got a list of 1000000 items "
                                              "(recipe.yaml:2:12)")));
}

// A list nmesh does read, too long to build, is refused naming the key, the file and the place.
TEST(RecipeHostileTest, ListTooLongToReadIsAnErrorNamingTheFile) {
  std::string yaml = "distributed:\n  strategy: megatron_fsdp\n  megatron_fsdp_unit_modules: [m";
  for (int64_t i = 0; i < kMaxBuiltNodes; ++i) yaml += ",m";
  yaml += "]\n";
  EXPECT_THAT(Parse(yaml),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("distributed.megatron_fsdp_unit_modules is too large to read: the "
                                 "parts of the recipe nmesh reads hold more than 262144 values "
                                 "(recipe.yaml:3:31)")));
  // Below the budget it is read.
  absl::StatusOr<Recipe> ok =
      Parse("distributed:\n  strategy: megatron_fsdp\n  megatron_fsdp_unit_modules: [a, b]\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
}

// A list of lists whose lists are one long list by alias: 300 x 1000 strings from a 4 KB file.
TEST(RecipeHostileTest, AliasesThatMultiplyAListOfListsAreBounded) {
  std::string yaml = "parts: &p [x";
  for (int i = 1; i < 1000; ++i) yaml += ", x";
  yaml += "]\ndistributed:\n  pp_size: 2\n  pipeline:\n    module_fqns_per_model_part: [*p";
  for (int i = 1; i < 300; ++i) yaml += ", *p";
  yaml += "]\n";
  EXPECT_THAT(Parse(yaml),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("distributed.pipeline.module_fqns_per_model_part is too large to "
                                 "read")));
}

// Many keys in a map nmesh reads: refused by count, as before, without building them.
TEST(RecipeHostileTest, MapWithTooManyKeysIsRefusedByCount) {
  std::string yaml = "distributed:\n  tp_plan:\n";
  for (int i = 0; i < 300000; ++i) yaml += "    k" + std::to_string(i) + ": v\n";
  EXPECT_THAT(Parse(yaml), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("distributed.tp_plan: more than 100000 keys")));
}

// One scalar of 4 MB is kept whole (a recipe's scalars cost their own size).
TEST(RecipeHostileTest, LongScalarIsReadWhole) {
  const std::string path(4 << 20, 'p');
  absl::StatusOr<Recipe> recipe = Parse("distributed:\n  tp_plan: " + path + "\n");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  const auto& config = std::get<FSDP2Config>(recipe->strategy_config);
  ASSERT_TRUE(config.tp_plan.has_value());
  EXPECT_EQ(std::get<std::string>(*config.tp_plan).size(), path.size());
}

// Junk in a section nmesh does not read costs nothing and breaks nothing.
TEST(RecipeHostileTest, LargeIgnoredSectionsDoNotCount) {
  std::string yaml = "data: [1";
  for (int64_t i = 0; i < kMaxBuiltNodes; ++i) yaml += ",1";
  yaml += "]\ndistributed:\n  tp_size: 2\n";
  absl::StatusOr<Recipe> recipe = Parse(yaml);
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  EXPECT_EQ(recipe->request.sizes.tp, 2);
  EXPECT_EQ(recipe->PositionOf("distributed.tp_size")->line, 3);
}

}  // namespace
}  // namespace nmesh::config
