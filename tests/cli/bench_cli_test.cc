// `nmesh bench` without MPI: size parsing, flag errors in-process (they are reported before MPI
// starts), the flags' translation into the engine's config, the text and JSON writers, and the
// plot. The engine itself is tested in tests/perf; the binary runs under mpirun through
// bench_json_check.cc.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/tests/cli/run_cli.h"
#include "nmesh/tools/bench_flags.h"
#include "nmesh/tools/bench_format.h"
#include "nmesh/tools/bench_plot.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using perf::BenchAxis;
using perf::BenchConfig;
using perf::BenchOp;
using perf::BenchReport;
using perf::BenchRow;
using perf::BusBandwidthFactor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::ordered_json;

MATCHER_P(IsOkAndHolds, value, "is OK and holds " + ::testing::PrintToString(value)) {
  return arg.ok() && *arg == value;
}

TEST(ParseByteSizeTest, AcceptsBytesAndBinarySuffixes) {
  EXPECT_THAT(ParseByteSize("8"), IsOkAndHolds(8u));
  EXPECT_THAT(ParseByteSize("0"), IsOkAndHolds(0u));
  EXPECT_THAT(ParseByteSize("64K"), IsOkAndHolds(64u * 1024));
  EXPECT_THAT(ParseByteSize("64k"), IsOkAndHolds(64u * 1024));
  EXPECT_THAT(ParseByteSize("32M"), IsOkAndHolds(32u * 1024 * 1024));
  EXPECT_THAT(ParseByteSize("2G"), IsOkAndHolds(uint64_t{2} * 1024 * 1024 * 1024));
  EXPECT_THAT(ParseByteSize("1.5K"), IsOkAndHolds(1536u));
  EXPECT_THAT(ParseByteSize("1024G"), IsOkAndHolds(uint64_t{1} << 40));
}

TEST(ParseByteSizeTest, RejectsWhatIsNotAWholeByteCount) {
  for (const char* bad : {"", "K", "1X", "-1", "1.2.3", ".", "0.3", "1e3", "1025G", "8 B"}) {
    EXPECT_THAT(ParseByteSize(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr(absl::StrFormat("invalid size '%s'", bad))))
        << bad;
  }
}

mesh::MeshPlan Plan(int64_t world, int64_t tp, int64_t cp, int64_t ep = 1) {
  config::MeshRequest request;
  request.sizes.world_size = world;
  request.sizes.tp = tp;
  request.sizes.cp = cp;
  request.sizes.ep = ep;
  absl::StatusOr<mesh::MeshPlan> plan = mesh::PlanMesh(request);
  EXPECT_THAT(plan.status(), IsOk());
  return *std::move(plan);
}

TEST(BenchCliTest, HelpListsTheBenchFlags) {
  testing::CliResult r = testing::RunNmesh({"bench", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  for (const char* flag :
       {"--axes", "--op", "-b", "-e", "-f", "-n", "-w", "--async", "--backend", "--format",
        "--plot", "--progress", "--timeout-s", "--tp", "--config", "all_to_all_v"}) {
    EXPECT_THAT(r.out, HasSubstr(flag)) << flag;
  }
}

// Flag errors are usage errors (exit 2) naming the flag, before MPI starts.
TEST(BenchCliTest, BadFlagsAreUsageErrorsNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-f", "1"}, "-f (--stepfactor) must be at least 2, got 1"},
      {{"-f", "two"}, "two"},
      {{"-n", "0"}, "-n (--iters) must be between 1 and 1000000, got 0"},
      {{"-n", "9223372036854775807"},
       "-n (--iters) must be between 1 and 1000000, got 9223372036854775807"},
      {{"-w", "-1"}, "-w (--warmup_iters) must be between 0 and 1000000, got -1"},
      {{"-w", "1000001"}, "-w (--warmup_iters) must be between 0 and 1000000, got 1000001"},
      {{"-b", "0"}, "-b (--minbytes) must be at least 1 byte, got '0'"},
      {{"-b", "1X"}, "-b (--minbytes): invalid size '1X'"},
      {{"-e", "2T"}, "-e (--maxbytes): invalid size '2T'"},
      {{"-b", "64", "-e", "8"}, "-b (--minbytes) 64 is larger than -e (--maxbytes) 8"},
      {{"--op", "allreduce"}, "--op"},
      {{"--plot", "busbw.jpg"}, "--plot: the file name must end in .png, got 'busbw.jpg'"},
      {{"--axes", "tp,,cp"}, "--axes: empty axis name in 'tp,,cp'"},
      {{"--backend", "gloo"}, "--backend"},
      {{"--format", "xml"}, "--format"},
      {{"--timeout-s", "-2"}, "--timeout-s must be a positive number of seconds, got -2"},
      {{"--timeout-s", "-inf"}, "--timeout-s must be a positive number of seconds, got -inf"},
      {{"--timeout-s", "1e-300"},
       "--timeout-s must be a positive number of seconds, got 1e-300, which rounds to zero"},
      {{"--timeout-s", ""}, "--timeout-s needs a value, got an empty string"},
      {{"--axes", ""}, "--axes needs a value, got an empty string"},
      {{"--axes="}, "--axes needs a value, got an empty string"},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args = {"bench"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"--format", "json"});
    if (flags.front() == "--format") args.resize(args.size() - 2);
    testing::CliResult r = testing::RunNmesh(args);
    EXPECT_EQ(r.code, kExitUsage) << flags.front();
    EXPECT_THAT(r.err, HasSubstr("nmesh: error:")) << flags.front();
    EXPECT_THAT(r.err, HasSubstr(message)) << flags.front();
    if (flags.front() != "--format") {
      EXPECT_THAT(r.out, HasSubstr("{\"error\":")) << flags.front();
    }
  }
}

TEST(BenchConfigTest, FlagsBecomeTheEngineConfig) {
  BenchOptions options;
  ASSERT_OK_AND_ASSIGN(BenchConfig defaults, BenchConfigFromOptions(options));
  EXPECT_EQ(defaults.op, BenchOp::kAllReduce);
  EXPECT_FALSE(defaults.async);
  EXPECT_EQ(defaults.max_bytes, uint64_t{32} << 20);
  options.op = "all_to_all_v";
  options.async = true;
  options.axes = "ep,tp";
  options.min_bytes = "1K";
  options.factor = 4;
  ASSERT_OK_AND_ASSIGN(BenchConfig config, BenchConfigFromOptions(options));
  EXPECT_EQ(config.op, BenchOp::kAllToAllV);
  EXPECT_TRUE(config.async);
  EXPECT_THAT(config.axes, ElementsAre("ep", "tp"));
  EXPECT_EQ(config.min_bytes, 1024u);
  EXPECT_EQ(config.factor, 4);
  options.op = "alltoallv";
  EXPECT_THAT(BenchConfigFromOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--op: unknown collective 'alltoallv'; expected all_reduce, ")));
}

BenchReport SyntheticReport() {
  BenchReport report;
  report.op = BenchOp::kAllGather;
  report.backend = "mpi";
  report.world_size = 8;
  for (const auto& [name, n] :
       std::vector<std::pair<std::string, int64_t>>{{"tp", 2}, {"dp_shard_cp", 4}}) {
    BenchAxis axis;
    axis.name = name;
    axis.names = {name};
    axis.group_size = n;
    axis.group_count = 8 / n;
    for (uint64_t size : {64, 1024, 65536}) {
      BenchRow row;
      row.size = size;
      row.count = size / 4 / static_cast<uint64_t>(n);
      row.time_us = 10.0 + static_cast<double>(size) / 1000;
      row.algbw = static_cast<double>(size) / (row.time_us * 1e3);
      row.busbw = row.algbw * BusBandwidthFactor(report.op, n);
      axis.rows.push_back(row);
    }
    report.axes.push_back(axis);
  }
  return report;
}

TEST(BenchJsonTest, HoldsTheSweepTheMeshAndTheRows) {
  const mesh::MeshPlan plan = Plan(8, 2, 2);
  const BenchReport report = SyntheticReport();
  BenchConfig config;
  config.op = BenchOp::kAllGather;
  const json object = BenchJson(report, config, plan);
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  EXPECT_THAT(keys, ElementsAre("op", "type", "redop", "root", "backend", "world_size", "sweep",
                                "mesh", "axes", "wrong"));
  EXPECT_EQ(object["op"], "all_gather");
  EXPECT_EQ(object["type"], "float32");
  EXPECT_EQ(object["redop"], "none");
  EXPECT_TRUE(object["root"].is_null());
  EXPECT_EQ(object["mesh"], PlanSummaryJson(plan));
  EXPECT_EQ(object["sweep"]["max_bytes"], config.max_bytes);
  ASSERT_EQ(object["axes"].size(), 2u);
  const json& axis = object["axes"][1];
  EXPECT_EQ(axis["name"], "dp_shard_cp");
  EXPECT_EQ(axis["group_size"], 4);
  EXPECT_EQ(axis["group_count"], 2);
  ASSERT_EQ(axis["rows"].size(), 3u);
  double sum = 0;
  for (const json& row : axis["rows"]) sum += row["busbw"].get<double>();
  EXPECT_DOUBLE_EQ(axis["avg_busbw"].get<double>(), sum / 3);
  EXPECT_EQ(axis["rows"][2]["size"], 65536);
  EXPECT_EQ(axis["rows"][2]["count"], 65536 / 16);
  EXPECT_EQ(object["wrong"], 0);
}

TEST(BenchJsonTest, AsyncIsSaidOnlyWhenAsked) {
  const mesh::MeshPlan plan = Plan(8, 2, 2);
  BenchReport report = SyntheticReport();
  report.async = true;
  const json object = BenchJson(report, BenchConfig{.async = true}, plan);
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  EXPECT_THAT(keys, ElementsAre("op", "type", "redop", "root", "async", "backend", "world_size",
                                "sweep", "mesh", "axes", "wrong"));
  EXPECT_EQ(object["async"], true);
  std::ostringstream out;
  WriteBenchText(report, BenchConfig{}, plan, out);
  EXPECT_THAT(out.str(), HasSubstr("backend mpi, 8 ranks, async (each call's handle waited)\n"));
}

TEST(BenchTextTest, AllToAllVStatesItsPattern) {
  const mesh::MeshPlan plan = Plan(8, 2, 2);
  BenchReport report = SyntheticReport();
  report.op = BenchOp::kAllToAllV;
  std::ostringstream out;
  WriteBenchText(report, BenchConfig{.op = BenchOp::kAllToAllV}, plan, out);
  EXPECT_THAT(out.str(), HasSubstr("# nmesh bench: all_to_all_v, float32, no reduction, backend "
                                   "mpi, 8 ranks\n"));
  EXPECT_THAT(out.str(), HasSubstr("# all_to_all_v: local rank s sends unit * ((s + d) mod n) "
                                   "elements to local rank d"));
}

TEST(BenchTextTest, OneLinePerRowUnderEachAxis) {
  const mesh::MeshPlan plan = Plan(8, 2, 2);
  BenchReport report = SyntheticReport();
  report.axes[0].rows[1].wrong = 3;
  std::ostringstream out;
  WriteBenchText(report, BenchConfig{}, plan, out);
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("# axis tp: 4 group(s) of 2 rank(s), busbw factor 0.5000"));
  EXPECT_THAT(text, HasSubstr("# axis dp_shard_cp: 2 group(s) of 4 rank(s), busbw factor 0.7500"));
  EXPECT_THAT(text, HasSubstr("float32   none"));
  EXPECT_THAT(text, HasSubstr("# #wrong: 3 FAILED"));
  int rows = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] != '#') ++rows;
  }
  EXPECT_EQ(rows, 6);
}

class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
      GTEST_SKIP() << "gnuplot is not installed (scripts/install_deps.sh installs it)";
    }
    dir_ =
        std::filesystem::temp_directory_path() / ("nmesh_bench_plot_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    unsetenv("NMESH_GNUPLOT");
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  std::filesystem::path dir_;
};

TEST_F(PlotTest, DrawsAPng) {
  const std::string path = (dir_ / "busbw it's.png").string();  // a quote in the name
  ASSERT_THAT(PlotBench(SyntheticReport(), path), IsOk());
  std::ifstream png(path, std::ios::binary);
  std::string magic(8, '\0');
  png.read(magic.data(), 8);
  EXPECT_EQ(magic, std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(std::filesystem::file_size(path), 1000u);
}

// A path (or TMPDIR) is data, never gnuplot code: a newline and gnuplot's shell escape in the file
// name run nothing, and the image lands under exactly that name.
TEST_F(PlotTest, PathIsNeverGnuplotCode) {
  // gnuplot ran in this process's directory before: that is where the command would land.
  const std::string marker = "nmesh_pwned_" + std::to_string(::getpid());
  const std::string path = (dir_ / ("a\n!touch " + marker + "\n.png")).string();
  ASSERT_THAT(PlotBench(SyntheticReport(), path), IsOk());
  const bool ran = std::filesystem::exists(marker);
  std::filesystem::remove(marker);
  EXPECT_FALSE(ran) << "the file name ran a shell command";
  EXPECT_GT(std::filesystem::file_size(path), 1000u);
  // A link at the output path is not followed.
  const std::filesystem::path victim = dir_ / "victim.txt";
  { std::ofstream(victim) << "precious"; }
  std::filesystem::create_symlink(victim, dir_ / "link.png");
  EXPECT_THAT(PlotBench(SyntheticReport(), (dir_ / "link.png").string()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("link.png")));
  std::stringstream kept;
  kept << std::ifstream(victim).rdbuf();
  EXPECT_EQ(kept.str(), "precious");
}

// An existing regular file at the path is never replaced: it was truncated and redrawn before.
TEST_F(PlotTest, ExistingFileIsNeverReplaced) {
  const std::string path = (dir_ / "busbw.png").string();
  { std::ofstream(path) << "precious"; }
  EXPECT_THAT(PlotBench(SyntheticReport(), path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("'" + path + "': a file already exists there")));
  EXPECT_THAT(CheckPlotWritable(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'" + path + "': a file already exists there")));
  std::stringstream kept;
  kept << std::ifstream(path).rdbuf();
  EXPECT_EQ(kept.str(), "precious");
  // A path that can be created is checked without leaving anything there.
  const std::string fresh = (dir_ / "fresh.png").string();
  EXPECT_THAT(CheckPlotWritable(fresh), IsOk());
  EXPECT_FALSE(std::filesystem::exists(fresh));
}

TEST_F(PlotTest, GnuplotFailuresAreReported) {
  const std::string path = (dir_ / "busbw.png").string();
  setenv("NMESH_GNUPLOT", "false", 1);
  EXPECT_THAT(PlotBench(SyntheticReport(), path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("--plot: false exited with status 1")));
  setenv("NMESH_GNUPLOT", "/nonexistent/gnuplot", 1);
  EXPECT_THAT(PlotBench(SyntheticReport(), path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cannot run '/nonexistent/gnuplot'")));
  // gnuplot itself fails when it cannot open the output.
  unsetenv("NMESH_GNUPLOT");
  EXPECT_THAT(PlotBench(SyntheticReport(), (dir_ / "missing" / "busbw.png").string()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("busbw.png")));
}

}  // namespace
}  // namespace nmesh::tools
