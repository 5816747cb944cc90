// --nccl and the recipe's `nccl:` key through `nmesh plan` (in-process, no MPI): bad syntax,
// unknown settings, out-of-range values and unknown axes are usage errors (exit 2) naming the flag
// or the recipe's file:line:col; good settings plan. (`run` under mpirun:
// tests/cli/CMakeLists.txt.)
#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/tests/cli/run_cli.h"
#include "nmesh/tools/cli.h"

namespace nmesh::tools {
namespace {

using ::testing::HasSubstr;
using testing::RunNmesh;

TEST(NcclCliTest, GoodSettingsPlan) {
  testing::CliResult r = RunNmesh({"plan", "--world", "8", "--tp", "2", "--nccl", "tp.max_ctas=16",
                                   "--nccl", "dp_shard_cp.net_name=IB"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
}

TEST(NcclCliTest, BadFlagsAreUsageErrorsNamingTheFlag) {
  struct Case {
    const char* value;
    const char* message;
  };
  for (const Case& c : {
           Case{"tp", "--nccl: expected AXIS.SETTING=VALUE (e.g. tp.max_ctas=16), got 'tp'"},
           Case{"tp.max_ctas", "expected AXIS.SETTING=VALUE"},
           Case{"tp.bogus=1", "tp.bogus: unknown NCCL setting 'bogus'; known settings are"},
           Case{"tp.max_ctas=0", "tp.max_ctas must be an integer from 1 to 32, got 0"},
           Case{"tp.cga_cluster_size=9", "tp.cga_cluster_size must be an integer from 0 to 8"},
           Case{"tp.split_share=maybe", "tp.split_share must be a boolean"},
           Case{"tp.net_name=", "tp.net_name must be a non-empty string"},
           Case{"ep.max_ctas=4",
                "NCCL settings for 'ep': mesh 'device_mesh' has no axis or group 'ep'; its axes "
                "and groups are [pp, dp_replicate, dp_shard, cp, tp, dp, dp_shard_cp, dp_cp] "
                "(from --nccl)"},
       }) {
    SCOPED_TRACE(c.value);
    testing::CliResult r = RunNmesh({"plan", "--world", "8", "--tp", "2", "--nccl", c.value});
    EXPECT_EQ(r.code, kExitUsage);
    EXPECT_THAT(r.err, HasSubstr("nmesh: error:"));
    EXPECT_THAT(r.err, HasSubstr(c.message));
  }
  // min_ctas above max_ctas, each flag valid alone.
  testing::CliResult r = RunNmesh(
      {"plan", "--world", "8", "--tp", "2", "--nccl", "tp.min_ctas=9", "--nccl", "tp.max_ctas=8"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("min_ctas (9) must not exceed max_ctas (8) (from --nccl)"));
}

TEST(NcclCliTest, RecipeErrorsNameFileLineAndColumn) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/nmesh_nccl_cli.yaml";
  std::ofstream(path) << "distributed:\n"
                         "  tp_size: 2\n"
                         "  nccl:\n"
                         "    tp: {max_ctas: 16}\n"
                         "    ep: {max_ctas: 4}\n";
  testing::CliResult r = RunNmesh({"plan", "--world", "8", "--config", path});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("NCCL settings for 'ep': mesh 'distributed' has no axis or group "
                               "'ep'"));
  EXPECT_THAT(r.err, HasSubstr(path + ":5:5)"));
  // With a moe mesh (asked for by a flag), ep is a group: at ep 4 its groups are blocks of 4
  // ranks, no other group's.
  r = RunNmesh({"plan", "--world", "8", "--config", path, "--ep", "4"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  // At ep 2 the ep groups are the tp groups (blocks of 2), which would share one communicator;
  // with two values of max_ctas each gets its own (by hand: dp_shard is split #1, tp #2, ep #3).
  r = RunNmesh({"plan", "--world", "8", "--config", path, "--ep", "2"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\ntp +tp +2 +4  split #2\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\nep +moe ep +2 +4  split #3\n"));

  std::ofstream(path) << "distributed:\n"
                         "  nccl:\n"
                         "    tp:\n"
                         "      max_ctas: 64\n";
  r = RunNmesh({"plan", "--world", "8", "--config", path});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("distributed.nccl.tp.max_ctas must be an integer from 1 to 32, got "
                               "64 (" +
                               path + ":4:17)"));
}

}  // namespace
}  // namespace nmesh::tools
