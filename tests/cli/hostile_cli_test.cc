// The real executable under hostile input and a hostile environment: stdout full or closed,
// devices given as recipes, control characters and huge values in flags and recipes, files that
// already exist where nmesh would write. Each case runs `nmesh` as a child process (stdout where
// the test says, stderr captured) with a time limit, so that a hang fails instead of blocking.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

struct Outcome {
  int code = -1;  // the exit status; -1 when killed after the time limit
  std::string err;
};

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs the nmesh binary with `args`. `stdout_path` is opened for writing as its stdout; an empty
// one leaves stdout closed (as `>&-` does). Killed after `limit`.
Outcome RunNmesh(const std::vector<std::string>& args, const std::string& stdout_path = "/dev/null",
                 std::chrono::seconds limit = std::chrono::seconds(60)) {
  const std::string err_path =
      ::testing::TempDir() + "/nmesh_hostile_err_" + std::to_string(::getpid()) + ".txt";
  const pid_t child = ::fork();
  if (child == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(err, 2);
    if (stdout_path.empty()) {
      ::close(1);  // last: nothing opened after it may take descriptor 1
    } else {
      const int out = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(NMESH_BINARY));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(NMESH_BINARY, argv.data());
    ::_exit(127);
  }
  Outcome outcome;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) {
      outcome.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  outcome.err = ReadWhole(err_path);
  std::filesystem::remove(err_path);
  return outcome;
}

std::filesystem::path FreshDir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("nmesh_hostile_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

// Output a terminal would act on: ESC, other C0 controls but the line break, and the UTF-8 of
// U+202E (RIGHT-TO-LEFT OVERRIDE).
bool HasRawControl(const std::string& text) {
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n') || c == 0x7f) return true;
  }
  return text.find("\xe2\x80\xae") != std::string::npos;
}

// Write errors: exit 0 with the output lost before.
TEST(HostileOutputTest, FullStdoutIsAnError) {
  const Outcome plan = RunNmesh({"plan", "--world", "8"}, "/dev/full");
  EXPECT_EQ(plan.code, 1);
  EXPECT_THAT(plan.err, HasSubstr("nmesh: error: cannot write to stdout: No space left on device"));
  const Outcome json = RunNmesh({"plan", "--world", "8", "--format", "json"}, "/dev/full");
  EXPECT_EQ(json.code, 1);
  EXPECT_THAT(json.err, HasSubstr("cannot write to stdout"));
  // A usage error keeps its exit code 2; the lost JSON error object is reported too.
  const Outcome usage =
      RunNmesh({"plan", "--world", "8", "--tp", "3", "--format", "json"}, "/dev/full");
  EXPECT_EQ(usage.code, 2);
  EXPECT_THAT(usage.err, HasSubstr("cannot write to stdout"));
}

TEST(HostileOutputTest, ClosedStdoutIsAnError) {
  const Outcome plan = RunNmesh({"plan", "--world", "8"}, /*stdout_path=*/"");
  EXPECT_EQ(plan.code, 1);
  EXPECT_THAT(plan.err, HasSubstr("nmesh: error: cannot write to stdout: Bad file descriptor"));
}

// `run` as a singleton MPI job (no launcher), its report lost on a full disk.
TEST(HostileOutputTest, RunToFullStdoutIsAnError) {
  const Outcome run = RunNmesh({"run"}, "/dev/full");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("nmesh: error: cannot write to stdout: No space left on device"));
}

// A device, a FIFO or a directory as the recipe: /dev/ptmx and /dev/kmsg made plan wait for ever.
TEST(HostileRecipeFileTest, OnlyRegularFilesAreRead) {
  const std::filesystem::path dir = FreshDir("fifo");
  const std::string fifo = (dir / "recipe.yaml").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string path, kind;
  };
  std::vector<Case> cases = {{"/dev/ptmx", "a character device"},
                             {"/dev/zero", "a character device"},
                             {fifo, "a FIFO (named pipe)"},
                             {dir.string(), "a directory"}};
  if (std::filesystem::exists("/dev/kmsg")) cases.push_back({"/dev/kmsg", "a character device"});
  for (const Case& c : cases) {
    if (!std::filesystem::exists(c.path)) continue;
    const Outcome r = RunNmesh({"plan", "--world", "8", "--config", c.path}, "/dev/null",
                               std::chrono::seconds(20));
    EXPECT_EQ(r.code, 2) << c.path << ": " << r.err;
    EXPECT_THAT(
        r.err, HasSubstr("nmesh: error: cannot read recipe file '" + c.path + "': it is " + c.kind))
        << c.path;
  }
  std::filesystem::remove_all(dir);
}

// Control characters from a recipe value, a flag value and a path reach stderr escaped; printable
// UTF-8 stays.
TEST(HostileEscapeTest, ControlCharactersAreEscaped) {
  const std::filesystem::path dir = FreshDir("escape");
  // YAML's own escapes: \e is ESC, \u202e the override.
  const std::string recipe =
      WriteFile(dir / "r.yaml", "distributed:\n  strategy: \"zero\\e[2J3\\u202e\"\n");
  const Outcome from_recipe = RunNmesh({"plan", "--world", "8", "--config", recipe});
  EXPECT_EQ(from_recipe.code, 2);
  EXPECT_THAT(from_recipe.err, HasSubstr("Unknown strategy: zero\\x1b[2j3\\u202e."));
  EXPECT_FALSE(HasRawControl(from_recipe.err)) << from_recipe.err;

  const Outcome from_flag = RunNmesh({"plan", "--world", "8", "--strategy", "a\x1b]0;x\x07\n"});
  EXPECT_EQ(from_flag.code, 2);
  EXPECT_THAT(from_flag.err, HasSubstr("Unknown strategy: a\\x1b]0;x\\x07\\x0a."));
  EXPECT_FALSE(HasRawControl(from_flag.err)) << from_flag.err;

  const Outcome cli11 = RunNmesh({"plan", "--world", "8", "--format", "te\x1bxt\xe2\x80\xae"});
  EXPECT_EQ(cli11.code, 2);
  EXPECT_THAT(cli11.err, HasSubstr("te\\x1bxt\\u202e"));
  EXPECT_FALSE(HasRawControl(cli11.err)) << cli11.err;

  const Outcome path = RunNmesh({"plan", "--world", "8", "--config", "/nonexistent/\x1b[31m.yaml"});
  EXPECT_EQ(path.code, 2);
  EXPECT_THAT(path.err, HasSubstr("'/nonexistent/\\x1b[31m.yaml'"));
  EXPECT_FALSE(HasRawControl(path.err)) << path.err;

  const Outcome accented = RunNmesh({"plan", "--world", "8", "--strategy", "caf\xc3\xa9"});
  EXPECT_THAT(accented.err, HasSubstr("Unknown strategy: caf\xc3\xa9."));
  std::filesystem::remove_all(dir);
}

// Every flag that echoes its value cuts a 100 KB value to kMaxQuotedBytes (80) and says how long
// it was; a 5,000-byte path is cut to 256 bytes.
TEST(HostileEchoTest, LongValuesAreCut) {
  const std::string big(100000, 'v');
  const std::vector<std::vector<std::string>> cases = {
      {"plan", "--world", "8", "--format", big},
      {"plan", "--world", "8", "--map-by", big},
      {"plan", "--world", "8", "--format=" + big},
      {"plan", "--world", "8", big},
      {"plan", "--world", "8", "--strategy", big},
      {"plan", "--world", "8", "--tp", big},
      {"run", "--format", big},
      {"run", "--backend", big},
      {"run", "--timeout-s", big},
      {"run", "--startup-timeout-s", big},
      {"run", "--nccl-ranks-per-root", big},
      {"run", "--fault-skip", big},
      {"run", "--fault-late-s", big},
      {"bench", "--axes", big},
      {"bench", "--op", big},
      {"bench", "-b", big},
      {"bench", "-e", big},
      {"bench", "--plot", big},
      {"bench", "--timeout-s", big},
  };
  for (const std::vector<std::string>& args : cases) {
    const Outcome r = RunNmesh(args);
    EXPECT_EQ(r.code, 2) << args[0] << " " << args[args.size() - 2];
    EXPECT_LT(r.err.size(), 600u) << args[0] << " " << args[args.size() - 2] << ": "
                                  << r.err.substr(0, 300);
    // A path is cut at 256 bytes, any other value at 80.
    const size_t kept = args[args.size() - 2] == "--plot" ? 256 : 80;
    EXPECT_THAT(r.err, HasSubstr(std::string(kept, 'v') + "... (100000 bytes)"))
        << args[0] << " " << args[args.size() - 2];
  }
  const std::string long_path = "/" + std::string(4999, 'd');
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"plan", "--world", "8", "--config", long_path},
        std::vector<std::string>{"bench", "--plot", long_path + ".png"}}) {
    const Outcome r = RunNmesh(args);
    EXPECT_EQ(r.code, 2) << args[args.size() - 2];
    EXPECT_LT(r.err.size(), 600u) << args[args.size() - 2];
    EXPECT_THAT(r.err, HasSubstr("/" + std::string(255, 'd') + "... (500"));
  }
}

// The flight-recorder directory is checked when the job starts; the job runs on without records.
TEST(HostileEchoTest, LongFlightRecorderPathIsCut) {
  const Outcome r = RunNmesh({"run", "--flight-recorder", "/" + std::string(4999, 'd')});
  EXPECT_LT(r.err.size(), 600u) << r.err.substr(0, 300);
  EXPECT_THAT(r.err, HasSubstr("--flight-recorder: cannot write into '/" + std::string(255, 'd') +
                               "... (5000 bytes)'"));
}

TEST(HostileMessageTest, SaysWhatIsWrongPlainly) {
  const Outcome roots = RunNmesh({"run", "--nccl-ranks-per-root", "0"});
  EXPECT_EQ(roots.code, 2);
  EXPECT_THAT(roots.err,
              HasSubstr("--nccl-ranks-per-root: must be an integer from 1 to 2147483647, got '0'"));
  const Outcome extras = RunNmesh({"plan", "--world", "8", "--", "--tp", "2"});
  EXPECT_EQ(extras.code, 2);
  EXPECT_THAT(extras.err, HasSubstr("The following arguments were not expected: --tp 2\n"));
  const Outcome upper = RunNmesh({"plan", "--world", "8", "--strategy", "ZERO3"});
  EXPECT_THAT(upper.err, HasSubstr("Unknown strategy: zero3. Valid strategies: ['ddp', "));
}

TEST(HostileMessageTest, RecipeTextThatIsNotUtf8OrNotClosed) {
  const std::filesystem::path dir = FreshDir("text");
  const std::string ascii = "distributed:\n  strategy: fsdp2\n";
  std::string utf16le = "\xff\xfe";
  for (char c : ascii) utf16le += std::string{c, '\0'};
  std::string utf16_no_bom = utf16le.substr(2);
  struct Case {
    std::string name, text, expected;
  };
  const std::vector<Case> cases = {
      {"bom.yaml", utf16le, "is not UTF-8 text: it starts with a UTF-16 byte-order mark"},
      {"le.yaml", utf16_no_bom,
       "is not UTF-8 text: it has a NUL byte at DIR/le.yaml:1:2 (it looks like UTF-16"},
      {"nul.yaml", std::string("distributed:\n  strategy: fsdp2\0\n", 31),
       "is not UTF-8 text: it has a NUL byte at DIR/nul.yaml:2:18"},
      {"quote.yaml", "distributed:\n  tp_size: 2\n  strategy: \"fsdp2\n",
       "a quoted string is not closed before the end of the file (DIR/quote.yaml:3:13)"},
      {"single.yaml", "distributed:\n  strategy: 'fsdp2''s\n",
       "a quoted string is not closed before the end of the file (DIR/single.yaml:2:13)"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteFile(dir / c.name, c.text);
    const Outcome r = RunNmesh({"plan", "--world", "8", "--config", path});
    EXPECT_EQ(r.code, 2) << c.name << ": " << r.err;
    std::string expected = c.expected;
    if (const size_t at = expected.find("DIR"); at != std::string::npos) {
      expected.replace(at, 3, dir.string());
    }
    EXPECT_THAT(r.err, HasSubstr(expected)) << c.name;
  }
  // Closed quotes, quotes inside comments and block scalars, and a UTF-8 byte-order mark pass.
  const std::string fine = WriteFile(
      dir / "fine.yaml",
      "\xef\xbb\xbf# it's \"fine\nteacher: |\n  don't \"\nname: 'it''s \"a\" \\'\n"
      "title: \"say \\\"hi\\\" \\\\\"\ndistributed:\n  strategy: \"fsdp2\"\n  dp_size: 8 # 'x\n");
  const Outcome ok = RunNmesh({"plan", "--world", "8", "--config", fine});
  EXPECT_EQ(ok.code, 0) << ok.err;
  std::filesystem::remove_all(dir);
}

// --rank R --format json lists the rank's groups whole; at world 2^31 - 1 that was 6.95 GB.
TEST(HostilePlanTest, HugeJsonMemberListsAreRefused) {
  const std::filesystem::path dir = FreshDir("huge");
  const std::string out = (dir / "out.json").string();
  const Outcome r =
      RunNmesh({"plan", "--world", "2147483647", "--rank", "5", "--format", "json"}, out);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--rank 5 --format json would list 8589934592 ranks in the rank's "
                               "groups, more than the 33554432 it prints; --format text"));
  EXPECT_LT(std::filesystem::file_size(out), 1000u);
  // Text output shows the first and last members of each group.
  const Outcome text = RunNmesh({"plan", "--world", "2147483647", "--rank", "5"}, out);
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_LT(std::filesystem::file_size(out), 10000u);
  std::filesystem::remove_all(dir);
}

// --plot never writes over an existing file (or through a link): exit 2 before the sweep.
TEST(HostilePlotTest, ExistingFileIsNotOverwritten) {
  const std::filesystem::path dir = FreshDir("plot");
  const std::string existing = WriteFile(dir / "mine.png", "precious");
  const Outcome r = RunNmesh({"bench", "-e", "64", "-n", "1", "--plot", existing});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("nmesh: error: --plot: cannot write '" + existing +
                               "': a file already exists there; nmesh never overwrites a file"));
  EXPECT_EQ(ReadWhole(existing), "precious");
  std::filesystem::remove_all(dir);
}

}  // namespace
