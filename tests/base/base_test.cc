#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/build_config.h"
#include "nmesh/base/enum_names.h"
#include "nmesh/base/file.h"
#include "nmesh/base/printable.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/base/timeout.h"
#include "nmesh/base/version.h"

namespace nmesh {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  NMESH_ASSIGN_OR_RETURN(int half, Half(x));
  NMESH_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int x) {
  NMESH_RETURN_IF_ERROR(Half(x));
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesTheFirstError) {
  EXPECT_THAT(Quarter(8), IsOk());
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd: 3")));
  EXPECT_THAT(Quarter(5), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd: 5")));
}

TEST(StatusMacrosTest, ReturnIfErrorAcceptsStatusOr) {
  EXPECT_THAT(CheckEven(4), IsOk());
  EXPECT_THAT(CheckEven(3), Not(IsOk()));
}

TEST(StatusMacrosDeathTest, CheckAbortsWithTheCondition) {
  EXPECT_DEATH({ NMESH_CHECK(1 + 1 == 3) << "arithmetic"; }, "1 \\+ 1 == 3 arithmetic");
}

TEST(VersionTest, MatchesTheBuildConfig) {
  EXPECT_EQ(VersionString(), NMESH_VERSION_STRING);
  EXPECT_EQ(VersionString(), std::to_string(NMESH_VERSION_MAJOR) + "." +
                                 std::to_string(NMESH_VERSION_MINOR) + "." +
                                 std::to_string(NMESH_VERSION_PATCH));
  EXPECT_EQ(HaveNccl(), NMESH_HAVE_NCCL != 0);
}

TEST(AbbreviateTest, CutsLongTextAndSaysHowLongItWas) {
  EXPECT_EQ(Abbreviate("fsdp2"), "fsdp2");
  EXPECT_EQ(Abbreviate(std::string(80, 'a')), std::string(80, 'a'));
  EXPECT_EQ(Abbreviate(std::string(81, 'a')), std::string(80, 'a') + "... (81 bytes)");
  EXPECT_EQ(Abbreviate("abcdef", 3), "abc... (6 bytes)");
}

TEST(AbbreviateTest, EscapesWhatItKeepsAndNeverSplitsACharacter) {
  EXPECT_EQ(Abbreviate("zero\x1b[31m3"), "zero\\x1b[31m3");
  // 79 'a' then "é" (2 bytes): the cut at 80 would split it, so it keeps 79 bytes.
  const std::string accented = std::string(79, 'a') + "\xc3\xa9" + "tail";
  EXPECT_EQ(Abbreviate(accented), std::string(79, 'a') + "... (85 bytes)");
  EXPECT_EQ(Abbreviate(std::string(300, 'p'), kMaxQuotedPathBytes),
            std::string(256, 'p') + "... (300 bytes)");
}

// Expected strings written by hand from the Unicode code charts (U+202E RIGHT-TO-LEFT OVERRIDE,
// U+200B ZERO WIDTH SPACE, U+0085 NEXT LINE, U+FEFF, U+E0041 TAG LATIN CAPITAL LETTER A).
TEST(PrintableTest, EscapesControlAndFormatCharacters) {
  EXPECT_EQ(Printable("fsdp2"), "fsdp2");
  EXPECT_EQ(Printable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(Printable("\x1b[2J\x07\x7f\t\n\r"), "\\x1b[2J\\x07\\x7f\\x09\\x0a\\x0d");
  EXPECT_EQ(Printable("a\u202eb"), "a\\u202eb");
  EXPECT_EQ(Printable("\u200b\u0085\ufeff"), "\\u200b\\u0085\\ufeff");
  EXPECT_EQ(Printable("\xf3\xa0\x81\x81"), "\\U000e0041");
  // Printable UTF-8 stays: Latin, Greek, CJK, an emoji.
  EXPECT_EQ(Printable("caf\xc3\xa9 \xce\xb1 \xe4\xb8\xad \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xce\xb1 \xe4\xb8\xad \xf0\x9f\x98\x80");
  // Not UTF-8: a stray continuation byte, a truncated sequence, an overlong '/', a surrogate.
  EXPECT_EQ(Printable("\x80"), "\\x80");
  EXPECT_EQ(Printable("\xc3"), "\\xc3");
  EXPECT_EQ(Printable("\xe2\x80"), "\\xe2\\x80");
  EXPECT_EQ(Printable("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(Printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  // A backslash is kept, and escaping twice changes nothing more.
  EXPECT_EQ(Printable("C:\\dir"), "C:\\dir");
  const std::string once = Printable("x\x1b\u202e\xff");
  EXPECT_EQ(Printable(once), once);
}

TEST(PrintableTest, LinesKeepLineBreaksAndTabs) {
  EXPECT_EQ(PrintableLines("a\n\tb\x1b"), "a\n\tb\\x1b");
}

// A NaN amount becomes an infinite absl::Duration; the message says so instead of only "inf".
TEST(TimeoutTest, InfiniteDurationMentionsNaN) {
  EXPECT_THAT(CheckTimeout(absl::Seconds(std::numeric_limits<double>::quiet_NaN()), "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN")));
}

// Issue 14, bad input: zero, negative, NaN, infinite, or rounding to zero.
TEST(TimeoutTest, RejectsUnusableNumbers) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double bad : {0.0, -0.0, -1.0, nan, inf, -inf}) {
    EXPECT_THAT(TimeoutFromNumber(bad, absl::Seconds(1), "seconds", "--timeout-s"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("--timeout-s must be a positive number of seconds, got")))
        << bad;
  }
  EXPECT_THAT(TimeoutFromNumber(1e-300, absl::Minutes(1), "minutes", "dist_env.timeout_minutes"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dist_env.timeout_minutes must be a positive number of minutes, "
                                 "got 1e-300, which rounds to zero (less than 1 ns)")));
  EXPECT_THAT(TimeoutFromNumber(1e300, absl::Seconds(1), "seconds", "--timeout-s"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too large")));
  absl::StatusOr<absl::Duration> half = TimeoutFromNumber(0.5, absl::Minutes(1), "minutes", "t");
  ASSERT_OK(half.status());
  EXPECT_EQ(*half, absl::Seconds(30));
  absl::StatusOr<absl::Duration> tiny = TimeoutFromNumber(1e-9, absl::Seconds(1), "seconds", "t");
  ASSERT_OK(tiny.status());
  EXPECT_EQ(*tiny, absl::Nanoseconds(1));
}

TEST(TimeoutTest, RejectsUnusableDurations) {
  EXPECT_OK(CheckTimeout(std::nullopt, "x"));
  EXPECT_OK(CheckTimeout(absl::Nanoseconds(1), "x"));
  for (absl::Duration bad : {absl::ZeroDuration(), absl::Nanoseconds(-1), absl::Seconds(1e-300),
                             absl::InfiniteDuration(), -absl::InfiniteDuration()}) {
    EXPECT_THAT(CheckTimeout(bad, "CommOptions.timeout"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("CommOptions.timeout must be a positive, finite duration")));
  }
}

enum class Fruit { kApple, kPear, kPlum };
constexpr NamedValue<Fruit> kFruitNames[] = {
    {Fruit::kApple, "apple"}, {Fruit::kPear, "pear"}, {Fruit::kPlum, "plum"}};

TEST(EnumNamesTest, NamesParsesAndListsFromOneTable) {
  EXPECT_EQ(NameOf<Fruit>(kFruitNames, Fruit::kPear), "pear");
  EXPECT_EQ(NameOf<Fruit>(kFruitNames, static_cast<Fruit>(7)), "unknown");
  EXPECT_EQ(NameOf<Fruit>(kFruitNames, static_cast<Fruit>(7), "?"), "?");
  EXPECT_EQ(ValueNamed<Fruit>(kFruitNames, "plum"), Fruit::kPlum);
  EXPECT_EQ(ValueNamed<Fruit>(kFruitNames, "Plum"), std::nullopt);
  EXPECT_EQ(ValueNamed<Fruit>(kFruitNames, ""), std::nullopt);
  EXPECT_EQ(NameList<Fruit>(kFruitNames), "apple, pear or plum");
  EXPECT_EQ(NameList<Fruit>(kFruitNames, ", "), "apple, pear, plum");
  EXPECT_EQ(NameList<Fruit>(std::span<const NamedValue<Fruit>>(kFruitNames, 1)), "apple");
  EXPECT_EQ(NameList<Fruit>(std::span<const NamedValue<Fruit>>(kFruitNames, 2)), "apple or pear");
}

std::string Contents(const std::filesystem::path& path) {
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  return text.str();
}

TEST(WriteNewFileTest, CreatesOnlyNewFilesAndNeverFollowsALink) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("nmesh_write_new_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path fresh = dir / "fresh.json";
  ASSERT_THAT(WriteNewFile(fresh.string(), "{}"), IsOk());
  EXPECT_EQ(Contents(fresh), "{}");
  // Existing: not truncated, not rewritten.
  EXPECT_THAT(WriteNewFile(fresh.string(), "other"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("a file already exists")));
  EXPECT_EQ(Contents(fresh), "{}");
  // A link to a victim: not followed, whether the victim exists or not.
  const std::filesystem::path victim = dir / "victim";
  { std::ofstream(victim) << "precious"; }
  std::filesystem::create_symlink(victim, dir / "link");
  EXPECT_THAT(WriteNewFile((dir / "link").string(), "pwned"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("a symbolic link")));
  EXPECT_EQ(Contents(victim), "precious");
  std::filesystem::create_symlink(dir / "absent", dir / "dangling");
  EXPECT_THAT(WriteNewFile((dir / "dangling").string(), "pwned"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("a symbolic link")));
  EXPECT_FALSE(std::filesystem::exists(dir / "absent"));
  EXPECT_THAT(WriteNewFile((dir / "missing" / "x").string(), ""),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("missing/x")));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nmesh
