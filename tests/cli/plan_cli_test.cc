// `nmesh plan` end to end: in-process through RunCli, and once through the real binary.
#include <sys/wait.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nmesh/tests/cli/run_cli.h"
#include "nmesh/tests/mesh/brute_force.h"
#include "nmesh/tools/cli.h"

namespace nmesh::tools {
namespace {

using ::nmesh::mesh::testing::BruteGroupOf;
using ::nmesh::mesh::testing::BruteMesh;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using json = nlohmann::ordered_json;

using Result = testing::CliResult;

json PlanJson(std::vector<std::string> args) {
  args.insert(args.begin(), "plan");
  args.push_back("--format");
  args.push_back("json");
  const Result r = testing::RunNmesh(args);
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.err, IsEmpty());
  return json::parse(r.out);
}

std::vector<std::string> Keys(const json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

std::vector<int64_t> Ints(const json& list) { return list.get<std::vector<int64_t>>(); }

// Checks one per_rank entry against brute force over the expected shape; `groups` maps each
// group name to the axes it spans.
void ExpectEntryMatches(
    const json& entry, const BruteMesh& brute, const std::vector<std::string>& axes,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& groups) {
  const int64_t rank = entry["rank"].get<int64_t>();
  const size_t i = brute.IndexOf(rank);
  ASSERT_LT(i, brute.coords.size()) << rank;
  EXPECT_EQ(Keys(entry), (std::vector<std::string>{"rank", "coordinate", "groups", "moe_groups"}));
  EXPECT_EQ(Keys(entry["coordinate"]), axes);
  for (size_t a = 0; a < axes.size(); ++a) {
    EXPECT_EQ(entry["coordinate"][axes[a]].get<int64_t>(), brute.coords[i][a]);
  }
  std::vector<std::string> names;
  for (const auto& [name, members] : groups) {
    names.push_back(name);
    std::vector<bool> in_set;
    for (const std::string& axis : axes) {
      in_set.push_back(std::find(members.begin(), members.end(), axis) != members.end());
    }
    EXPECT_EQ(Ints(entry["groups"][name]), BruteGroupOf(brute, rank, in_set).ranks)
        << "rank " << rank << " group " << name;
  }
  EXPECT_EQ(Keys(entry["groups"]), names);
}

const std::vector<std::string> kFsdp2Axes = {"pp", "dp_replicate", "dp_shard", "cp", "tp"};
const std::vector<std::pair<std::string, std::vector<std::string>>> kFsdp2Groups = {
    {"pp", {"pp"}},
    {"dp_replicate", {"dp_replicate"}},
    {"dp_shard", {"dp_shard"}},
    {"cp", {"cp"}},
    {"tp", {"tp"}},
    {"dp", {"dp_replicate", "dp_shard"}},
    {"dp_shard_cp", {"dp_shard", "cp"}},
    {"dp_cp", {"dp_replicate", "dp_shard", "cp"}}};

TEST(PlanCliTest, JsonOfTheContractExample) {
  const json plan = PlanJson({"--world", "16", "--tp", "2", "--cp", "2", "--rank", "0"});
  EXPECT_EQ(Keys(plan),
            (std::vector<std::string>{"strategy", "world_size", "ranks", "sizes", "device_mesh",
                                      "moe_mesh", "context", "per_rank"}));
  EXPECT_EQ(plan["strategy"], "fsdp2");
  EXPECT_EQ(plan["world_size"], 16);
  EXPECT_TRUE(plan["ranks"].is_null());
  EXPECT_EQ(plan["sizes"], json::parse(R"({"pp":1,"dp":4,"dp_replicate":1,"dp_shard":4,"cp":2,
                                           "tp":2,"ep":1,"ep_shard":1,"dp_shard_cp":8,
                                           "dp_cp":8})"));
  EXPECT_EQ(plan["device_mesh"], json::parse(R"({"axes":["pp","dp_replicate","dp_shard","cp","tp"],
      "shape":[1,1,4,2,2], "flattened":{"dp":["dp_replicate","dp_shard"],
      "dp_shard_cp":["dp_shard","cp"], "dp_cp":["dp_replicate","dp_shard","cp"]}})"));
  EXPECT_TRUE(plan["moe_mesh"].is_null());
  EXPECT_EQ(plan["context"], json::parse(R"({"pp_size":1,"pp_enabled":false,"tp_size":2,
      "cp_size":2,"ep_size":1,"dp_size":4,"dp_replicate_size":1,"dp_shard_size":4,
      "dp_axis_names":["dp_replicate","dp_shard_cp"]})"));
  ASSERT_EQ(plan["per_rank"].size(), 1u);
  const json& entry = plan["per_rank"][0];
  EXPECT_EQ(entry["rank"], 0);
  EXPECT_THAT(Ints(entry["groups"]["tp"]), ElementsAre(0, 1));
  EXPECT_THAT(Ints(entry["groups"]["cp"]), ElementsAre(0, 2));
  EXPECT_THAT(Ints(entry["groups"]["dp_shard"]), ElementsAre(0, 4, 8, 12));
  EXPECT_THAT(Ints(entry["groups"]["dp_shard_cp"]), ElementsAre(0, 2, 4, 6, 8, 10, 12, 14));
  EXPECT_TRUE(entry["moe_groups"].is_null());
  ExpectEntryMatches(entry, BruteMesh{{1, 1, 4, 2, 2}, {}}, kFsdp2Axes, kFsdp2Groups);
}

TEST(PlanCliTest, PerRankOnlyWhenAsked) {
  const json plan = PlanJson({"--world", "8"});
  EXPECT_FALSE(plan.contains("per_rank"));
}

TEST(PlanCliTest, AllRanksListsEveryRankInOrderMatchingBruteForce) {
  const json plan = PlanJson({"--world", "48", "--dp-replicate", "2", "--tp", "2", "--pp", "2",
                              "--cp", "2", "--all-ranks"});
  const BruteMesh brute{{2, 2, 3, 2, 2}, {}};
  ASSERT_EQ(plan["per_rank"].size(), 48u);
  for (size_t r = 0; r < 48; ++r) {
    EXPECT_EQ(plan["per_rank"][r]["rank"], r);
    ExpectEntryMatches(plan["per_rank"][r], brute, kFsdp2Axes, kFsdp2Groups);
  }
}

TEST(PlanCliTest, MoeMeshAndMoeGroups) {
  const json plan =
      PlanJson({"--world", "16", "--tp", "2", "--pp", "2", "--ep", "4", "--all-ranks"});
  EXPECT_EQ(plan["moe_mesh"], json::parse(R"({"axes":["ep_shard","ep"],"shape":[2,4],
                                              "stages":2})"));
  EXPECT_EQ(plan["sizes"]["ep_shard"], 2);
  EXPECT_EQ(plan["context"]["ep_size"], 4);
  for (const json& entry : plan["per_rank"]) {
    const int64_t rank = entry["rank"].get<int64_t>();
    // 8 ranks per stage; ep is a block of 4 of them, ep_shard the ranks 4 apart.
    const int64_t stage = rank / 8 * 8;
    const int64_t block = rank / 4 * 4;
    EXPECT_EQ(Keys(entry["moe_groups"]), (std::vector<std::string>{"ep_shard", "ep"}));
    EXPECT_THAT(Ints(entry["moe_groups"]["ep"]),
                ElementsAre(block, block + 1, block + 2, block + 3));
    EXPECT_THAT(Ints(entry["moe_groups"]["ep_shard"]),
                ElementsAre(stage + rank % 4, stage + 4 + rank % 4));
  }
  const json rank0 = PlanJson({"--world", "8", "--tp", "2", "--ep", "4", "--rank", "0"});
  EXPECT_THAT(Ints(rank0["per_rank"][0]["moe_groups"]["ep"]), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(Ints(rank0["per_rank"][0]["moe_groups"]["ep_shard"]), ElementsAre(0, 4));
}

TEST(PlanCliTest, MegatronFsdpHoldsOnlyItsSizes) {
  const json with_cp =
      PlanJson({"--strategy", "mfsdp", "--world", "8", "--cp", "2", "--rank", "3"});
  EXPECT_EQ(with_cp["strategy"], "megatron_fsdp");
  EXPECT_EQ(with_cp["sizes"], json::parse(R"({"dp":4,"cp":2,"tp":1,"dp_cp":8})"));
  EXPECT_EQ(with_cp["device_mesh"], json::parse(R"({"axes":["dp","cp","tp"],"shape":[4,2,1],
                                                    "flattened":{"dp_cp":["dp","cp"]}})"));
  EXPECT_TRUE(with_cp["context"]["dp_replicate_size"].is_null());
  EXPECT_EQ(with_cp["context"]["dp_axis_names"], json::parse(R"(["dp_shard_cp"])"));
  ExpectEntryMatches(with_cp["per_rank"][0], BruteMesh{{4, 2, 1}, {}}, {"dp", "cp", "tp"},
                     {{"dp", {"dp"}}, {"cp", {"cp"}}, {"tp", {"tp"}}, {"dp_cp", {"dp", "cp"}}});

  const json without_cp = PlanJson({"--strategy", "Megatron-FSDP", "--world", "8", "--tp", "2"});
  EXPECT_EQ(without_cp["sizes"], json::parse(R"({"dp":4,"cp":1,"tp":2})"));
  EXPECT_EQ(without_cp["device_mesh"]["flattened"], json::object());
}

TEST(PlanCliTest, DdpIsOneAxis) {
  const json plan = PlanJson({"--strategy", "ddp", "--world", "6", "--rank", "2"});
  EXPECT_EQ(plan["device_mesh"], json::parse(R"({"axes":["dp"],"shape":[6],"flattened":{}})"));
  EXPECT_EQ(plan["sizes"], json::parse(R"({"dp":6})"));
  EXPECT_EQ(plan["context"]["dp_size"], 6);
  EXPECT_THAT(Ints(plan["per_rank"][0]["groups"]["dp"]), ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(PlanCliTest, RankSubsetsReportTheJobsWorld) {
  const json plan = PlanJson({"--ranks", "6,4,7,5", "--tp", "2", "--world", "8", "--all-ranks"});
  EXPECT_EQ(plan["world_size"], 8);
  EXPECT_THAT(Ints(plan["ranks"]), ElementsAre(6, 4, 7, 5));
  std::vector<int64_t> order;
  for (const json& entry : plan["per_rank"]) order.push_back(entry["rank"].get<int64_t>());
  EXPECT_THAT(order, ElementsAre(4, 5, 6, 7));
  const BruteMesh brute{{1, 1, 2, 1, 2}, {6, 4, 7, 5}};
  for (const json& entry : plan["per_rank"]) {
    ExpectEntryMatches(entry, brute, kFsdp2Axes, kFsdp2Groups);
  }
  const json inferred = PlanJson({"--ranks", "2,3"});
  EXPECT_EQ(inferred["world_size"], 4);
}

Result ExpectUsageError(std::vector<std::string> args, const std::string& message) {
  Result r = testing::RunNmesh(args);
  EXPECT_EQ(r.code, kExitUsage) << r.out;
  EXPECT_THAT(r.err, StartsWith("nmesh: error: "));
  EXPECT_THAT(r.err, HasSubstr(message));
  return r;
}

TEST(PlanCliTest, ConfigErrorsExitTwoWithTheMessage) {
  Result text = ExpectUsageError({"plan", "--world", "8", "--tp", "0"},
                                 "tp_size must be a positive integer, got 0");
  EXPECT_THAT(text.out, IsEmpty());
  Result json_error = ExpectUsageError({"plan", "--world", "10", "--tp", "4", "--format", "json"},
                                       "world_size (10) must be divisible by");
  const json error = json::parse(json_error.out);
  EXPECT_EQ(Keys(error), std::vector<std::string>{"error"});
  EXPECT_EQ(error["error"],
            "world_size (10) must be divisible by (tp_size * cp_size * pp_size) (4 * 1 * 1 = 4)");
  EXPECT_EQ(json_error.err, "nmesh: error: " + error["error"].get<std::string>() + "\n");
  ExpectUsageError({"plan", "--strategy", "bogus", "--world", "8"}, "Unknown strategy: bogus");
  ExpectUsageError({"plan", "--tp", "2"}, "--world is required unless --ranks is given");
  ExpectUsageError({"plan", "--world", "8", "--rank", "8"}, "rank 8 is not a member");
  ExpectUsageError({"plan", "--ranks", "1,2", "--world", "2"},
                   "Rank 2 is out of range. Valid ranks are 0 to 1 (world_size=2)");
  ExpectUsageError({"plan", "--ranks", "1,1"}, "mesh ranks must be unique");
  ExpectUsageError({"plan", "--world", "2147483648"},
                   "world_size must be at most 2147483647, got 2147483648");
}

TEST(PlanCliTest, ParseErrorsExitTwoNamingTheFlag) {
  ExpectUsageError({"plan", "--world", "8", "--tp", "two"}, "--tp");
  ExpectUsageError({"plan", "--world", "99999999999999999999"}, "--world");
  ExpectUsageError({"plan", "--ranks", "0,x"}, "--ranks");
  ExpectUsageError({"plan", "--world", "8", "--no-such-flag"}, "--no-such-flag");
  ExpectUsageError({"plan", "--world", "8", "--rank", "0", "--all-ranks"}, "--all-ranks");
  ExpectUsageError({"plan", "--world", "8", "--format", "yaml"}, "--format");
  Result r = ExpectUsageError({"plan", "--format", "json", "--world", "8", "--tp", "x"}, "--tp");
  EXPECT_THAT(json::parse(r.out)["error"].get<std::string>(), HasSubstr("--tp"));
}

// Which group kinds stay inside a host, by hand: 8 ranks round-robin over 2 hosts (host = rank
// % 2). As launched, tp pairs (r, r+1) cross and cp pairs (r, r+2) do not; packed, the ranks
// read 0,2,4,6 | 1,3,5,7 and every group of 4 consecutive positions is one host's.
TEST(PlanCliTest, HostsReportWhichGroupsStayInsideAHost) {
  std::map<std::string, bool> launched, packed;
  const json as_launched = PlanJson({"--world", "8", "--tp", "2", "--cp", "2", "--hosts", "2",
                                     "--ranks-per-host", "4", "--map-by", "node"});
  for (const json& g : as_launched["placement"]["groups"]) launched[g["name"]] = g["intra_host"];
  EXPECT_EQ(as_launched["ranks"], nullptr);
  EXPECT_EQ(as_launched["placement"]["placement"], "as-launched");
  EXPECT_FALSE(launched["tp"]);
  EXPECT_TRUE(launched["cp"]);
  EXPECT_TRUE(launched["dp_shard"]);
  const json pack =
      PlanJson({"--world", "8", "--tp", "2", "--cp", "2", "--hosts", "2", "--ranks-per-host", "4",
                "--map-by", "node", "--placement", "pack", "--rank", "2"});
  for (const json& g : pack["placement"]["groups"]) packed[g["name"]] = g["intra_host"];
  EXPECT_THAT(Ints(pack["ranks"]), ElementsAre(0, 2, 4, 6, 1, 3, 5, 7));
  EXPECT_TRUE(packed["tp"]);
  EXPECT_TRUE(packed["cp"]);
  EXPECT_FALSE(packed["dp_shard"]);
  // Rank 2 sits at position 1: its tp partner is rank 0 (position 0), its cp partner rank 6.
  EXPECT_THAT(Ints(pack["per_rank"][0]["groups"]["tp"]), ElementsAre(0, 2));
  EXPECT_THAT(Ints(pack["per_rank"][0]["groups"]["cp"]), ElementsAre(2, 6));
  // A domain of 2 hosts holds all 8 ranks.
  const json domain = PlanJson({"--world", "8", "--tp", "2", "--hosts", "4", "--ranks-per-host",
                                "2", "--ranks-per-domain", "4"});
  for (const json& g : domain["placement"]["groups"]) {
    if (g["name"] == "dp_shard") {
      EXPECT_EQ(g["intra_host"], false);
      EXPECT_EQ(g["intra_domain"], false);  // dp_shard spans positions 0..6 step 2
    }
    if (g["name"] == "tp") {
      EXPECT_EQ(g["intra_domain"], true);
    }
  }
  const Result text = testing::RunNmesh({"plan", "--world", "8", "--tp", "2", "--hosts", "2",
                                         "--ranks-per-host", "4", "--map-by", "node"});
  EXPECT_EQ(text.code, 0);
  EXPECT_THAT(text.out, HasSubstr("across hosts tp"));
}

TEST(PlanCliTest, PlacementErrorsExitTwo) {
  ExpectUsageError({"plan", "--world", "8", "--placement", "packed"},
                   "unknown placement 'packed': expected as-launched or pack");
  ExpectUsageError({"plan", "--world", "8", "--placement", "pack"},
                   "--placement pack needs the hosts under plan");
  ExpectUsageError({"plan", "--world", "8", "--hosts", "2"}, "--ranks-per-host");
  ExpectUsageError({"plan", "--world", "16", "--hosts", "2", "--ranks-per-host", "4"},
                   "--hosts 2 x --ranks-per-host 4 hold 8 ranks");
  ExpectUsageError(
      {"plan", "--world", "8", "--hosts", "2", "--ranks-per-host", "4", "--ranks-per-domain", "6"},
      "--ranks-per-domain 6 must be a positive multiple of --ranks-per-host 4");
  ExpectUsageError(
      {"plan", "--world", "8", "--hosts", "2", "--ranks-per-host", "4", "--map-by", "core"},
      "--map-by");
}

TEST(PlanCliTest, TextFormatShowsAxesGroupsAndTheRank) {
  const Result r =
      testing::RunNmesh({"plan", "--world", "16", "--tp", "2", "--cp", "2", "--rank", "5"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("device mesh  (pp=1, dp_replicate=1, dp_shard=4, cp=2, tp=2)"));
  EXPECT_THAT(r.out, HasSubstr("dp_shard_cp    (dp_shard, cp)"));
  EXPECT_THAT(r.out, HasSubstr("rank 5  (pp=0, dp_replicate=0, dp_shard=1, cp=0, tp=1)"));
  EXPECT_THAT(r.out, HasSubstr("tp             local 1 of 2  [4, 5]"));
  EXPECT_THAT(r.out, HasSubstr("dp_axis_names=(dp_replicate, dp_shard_cp)"));
}

TEST(PlanCliTest, HugeWorldAnswersForOneRank) {
  const json plan = PlanJson({"--world", "1048576", "--pp", "8", "--tp", "8", "--cp", "4", "--ep",
                              "16", "--rank", "1048575"});
  const json& entry = plan["per_rank"][0];
  EXPECT_THAT(Ints(entry["groups"]["tp"]),
              ElementsAre(1048568, 1048569, 1048570, 1048571, 1048572, 1048573, 1048574, 1048575));
  // dp = 2^20 / (8 * 8 * 4) = 4096, so dp_shard_cp has 4096 * 4 ranks of stage 7, 8 apart.
  const std::vector<int64_t> dp_shard_cp = Ints(entry["groups"]["dp_shard_cp"]);
  ASSERT_EQ(dp_shard_cp.size(), 16384u);
  for (size_t i = 0; i < dp_shard_cp.size(); ++i) {
    EXPECT_EQ(dp_shard_cp[i], 7 * 131072 + 7 + 8 * static_cast<int64_t>(i));
  }
  EXPECT_THAT(Ints(entry["moe_groups"]["ep"]).front(), 1048560);
  EXPECT_EQ(entry["moe_groups"]["ep_shard"].size(), 131072u / 16);
}

// Contract §3's limits at the command line: ranks fit an int, sizes and their products are
// checked, never wrapped.
TEST(PlanCliTest, LargestWorldWorksForOneRank) {
  const Result r = testing::RunNmesh({"plan", "--world", "2147483647", "--rank", "5"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("world_size   2147483647\n"));
  EXPECT_THAT(r.out, HasSubstr("rank 5  (pp=0, dp_replicate=0, dp_shard=5, cp=0, tp=0)"));
  // dp_shard spans every rank: the text shows the first eight and the last four.
  EXPECT_THAT(r.out, HasSubstr("dp_shard       local 5 of 2147483647  [0, 1, 2, 3, 4, 5, 6, 7, "
                               "..., 2147483643, 2147483644, 2147483645, 2147483646]"));
  const Result last = testing::RunNmesh({"plan", "--world", "2147483647", "--rank", "2147483646"});
  EXPECT_EQ(last.code, kExitOk) << last.err;
}

TEST(PlanCliTest, LimitsExitTwoWithAClearMessage) {
  ExpectUsageError({"plan", "--world", "2147483648"},
                   "world_size must be at most 2147483647, got 2147483648");
  ExpectUsageError({"plan", "--world", "9223372036854775807"},
                   "world_size must be at most 2147483647, got 9223372036854775807");
  ExpectUsageError({"plan", "--world", "8", "--tp", "2147483648"},
                   "tp_size must be at most 2147483647, got 2147483648");
  // Each size fits, their product (2^93) does not fit int64.
  ExpectUsageError(
      {"plan", "--world", "8", "--tp", "2147483647", "--cp", "2147483647", "--pp", "2147483647"},
      "(2147483647 * 2147483647 * 2147483647, which overflows int64)");
  ExpectUsageError({"plan", "--world", "2147483647", "--dp", "2147483647", "--tp", "2147483647",
                    "--cp", "2147483647"},
                   "which overflows int64");
  // Beyond int64 the parser stops it, naming the flag and the value as given.
  Result tp = ExpectUsageError({"plan", "--world", "8", "--tp", "9223372036854775808"}, "--tp");
  EXPECT_THAT(tp.err, HasSubstr("9223372036854775808"));
  Result rank =
      ExpectUsageError({"plan", "--world", "8", "--rank", "-9223372036854775809"}, "--rank");
  EXPECT_THAT(rank.err, HasSubstr("-9223372036854775809"));
  ExpectUsageError({"plan", "--world", "2147483647", "--rank", "2147483647"},
                   "rank 2147483647 is not a member");
  ExpectUsageError({"plan", "--world", "8", "--rank", "9223372036854775807"},
                   "rank 9223372036854775807 is not a member");
  ExpectUsageError({"plan", "--world", "8", "--rank", "-1"}, "rank -1 is not a member");
  // A rank list whose largest rank makes the job's world 2^31.
  ExpectUsageError(
      {"plan", "--ranks", "2147483647"},
      "mesh rank 2147483647 is outside any job's world (ranks are at most 2147483646)");
}

#ifdef NMESH_BINARY
// The real executable: exit codes reach the shell.
int RunBinary(const std::string& args, std::string* output) {
  const std::string command = std::string(NMESH_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output->append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(PlanBinaryTest, ExitCodesReachTheShell) {
  std::string output;
  EXPECT_EQ(RunBinary("plan --world 16 --tp 2 --cp 2 --rank 0 --format json", &output), 0);
  EXPECT_EQ(json::parse(output)["per_rank"][0]["groups"]["cp"], json::parse("[0,2]"));
  output.clear();
  EXPECT_EQ(RunBinary("plan --world 8 --tp 3", &output), 2);
  EXPECT_THAT(output, HasSubstr("nmesh: error: world_size (8) must be divisible"));
  output.clear();
  EXPECT_EQ(RunBinary("plan --world 8 --tp nope", &output), 2);
  EXPECT_THAT(output, HasSubstr("--tp"));
}
#endif

}  // namespace
}  // namespace nmesh::tools
