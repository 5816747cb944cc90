// The start-up agreement's decision (job/startup.h), without MPI: rank 0's verdict over records
// built the way each rank builds its own. The exchange itself runs in every `nmesh run` and
// `nmesh bench` test; the missing-rank and multi-program cases are CLI tests (tests/cli).
#include "nmesh/job/startup.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/mpi/rendezvous.h"
#include "nmesh/job/job.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::job {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

mesh::MeshPlan Plan(int64_t world, int64_t tp, int64_t ep = 1) {
  config::MeshRequest request;
  request.sizes.world_size = world;
  request.sizes.tp = tp;
  request.sizes.ep = ep;
  absl::StatusOr<mesh::MeshPlan> plan = mesh::PlanMesh(request);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

struct Rank {
  std::string command = "run";
  std::string backend = "auto";
  std::optional<absl::Duration> timeout = std::nullopt;
  absl::Status planned = absl::OkStatus();
  std::vector<mesh::MeshPlan> plans = {};
};

std::optional<std::string> RecordOf(const Rank& rank) {
  std::vector<const mesh::MeshPlan*> plans;
  std::vector<std::string> names;
  for (const mesh::MeshPlan& plan : rank.plans) {
    plans.push_back(&plan);
    names.push_back("device_mesh");
  }
  const std::string text =
      MakeStartupRecord(rank.command, rank.backend, rank.timeout, rank.planned, plans, names)
          .Serialize();
  EXPECT_LE(text.size(), comm::mpi::kMaxRecordBytes);
  return text;
}

absl::Status Decide(const std::vector<Rank>& ranks) {
  std::vector<std::optional<std::string>> records;
  for (const Rank& rank : ranks) records.push_back(RecordOf(rank));
  return DecideStartup(records, absl::Seconds(10));
}

TEST(StartupTest, RecordsRoundTrip) {
  const Rank rank{
      .command = "bench op=all_reduce", .timeout = absl::Seconds(5), .plans = {Plan(8, 2, 4)}};
  const std::optional<std::string> text = RecordOf(rank);
  std::optional<StartupRecord> parsed = StartupRecord::Parse(*text);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->Serialize(), *text);
  EXPECT_EQ(parsed->command, "bench op=all_reduce");
  EXPECT_EQ(parsed->timeout, "5s");
  EXPECT_EQ(parsed->meshes, 1);
  EXPECT_THAT(parsed->mesh_words, AllOf(HasSubstr("tp=2"), HasSubstr("moe (ep_shard=2, ep=4)")));
  EXPECT_FALSE(StartupRecord::Parse("version=1\ncommand=run\n").has_value());
  EXPECT_FALSE(StartupRecord::Parse("garbage").has_value());
}

TEST(StartupTest, RanksThatAgreePass) {
  const Rank same{.timeout = absl::Seconds(5), .plans = {Plan(4, 2)}};
  EXPECT_OK(Decide({same, same, same, same}));
}

TEST(StartupTest, AMissingRankIsNamedAndNotAgreed) {
  const Rank same{.plans = {Plan(4, 2)}};
  std::vector<std::optional<std::string>> records = {RecordOf(same), RecordOf(same), std::nullopt,
                                                     RecordOf(same)};
  absl::Status status = DecideStartup(records, absl::Seconds(3));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable,
                               HasSubstr("start-up: rank 2 of 4 did not arrive within 3s")));
  EXPECT_FALSE(IsAgreed(status));
  records[3] = std::nullopt;
  EXPECT_THAT(DecideStartup(records, absl::Seconds(3)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("ranks 2, 3 of 4")));
}

TEST(StartupTest, ATimeoutOnSomeRanksOnlyIsADisagreementOnTheMesh) {
  const Rank without{.plans = {Plan(4, 2)}};
  Rank with = without;
  with.timeout = absl::Seconds(5);
  absl::Status status = Decide({without, without, with, with});
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("ranks disagree on the mesh: rank 0 has timeout none, "
                                         "rank 2 has timeout 5s")));
  EXPECT_TRUE(IsAgreed(status));
}

TEST(StartupTest, DifferentCommandsBackendsAndMeshesAreNamed) {
  const Rank run{.plans = {Plan(4, 2)}};
  Rank bench = run;
  bench.command = "bench op=all_gather";
  EXPECT_THAT(Decide({run, run, run, bench}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ranks disagree on the job: rank 0 runs 'run', rank 3 runs "
                                 "'bench op=all_gather'")));
  Rank mpi = run;
  mpi.backend = "mpi";
  EXPECT_THAT(Decide({run, mpi}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ranks disagree on the backend: rank 0 asks for auto, rank 1 "
                                 "asks for mpi")));
  Rank tp1 = run;
  tp1.plans = {Plan(4, 1)};
  EXPECT_THAT(Decide({run, run, tp1, tp1}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("ranks disagree on the mesh: rank 0 builds device_mesh: "),
                             HasSubstr("tp=2"), HasSubstr("rank 2 builds device_mesh: "))));
  Rank two = run;
  two.plans = {Plan(4, 2), Plan(4, 1)};
  EXPECT_THAT(Decide({run, two}), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("ranks disagree on the mesh")));
}

TEST(StartupTest, TheLowestRanksConfigErrorIsEveryonesEvenWithDifferentCommands) {
  const Rank good{.plans = {Plan(4, 2)}};
  Rank bad = good;
  bad.planned = absl::NotFoundError("cannot open recipe 'x.yaml'");
  bad.plans.clear();
  absl::Status status = Decide({good, good, bad, bad});
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound,
                               HasSubstr("cannot open recipe 'x.yaml' [reported by rank 2 of 4]")));
  EXPECT_TRUE(IsAgreed(status));
  // A rank whose flags did not parse has no command to compare: its error is what matters.
  Rank flags = bad;
  flags.command = "";
  flags.planned = absl::InvalidArgumentError("--tp: 'x' is not an integer");
  EXPECT_THAT(Decide({good, good, good, flags}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tp: 'x' is not an integer [reported by rank 3 of 4]")));
}

TEST(StartupTest, LongValuesAreCutToFitOneRecord) {
  Rank huge{.command = std::string(100000, 'c'),
            .planned = absl::InvalidArgumentError(std::string(1 << 20, 'e'))};
  const std::optional<std::string> text = RecordOf(huge);
  EXPECT_LE(text->size(), comm::mpi::kMaxRecordBytes);
  // Two commands that differ only past the cut still differ.
  Rank other = huge;
  other.command.back() = 'd';
  other.planned = absl::OkStatus();
  huge.planned = absl::OkStatus();
  EXPECT_THAT(Decide({huge, other}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ranks disagree on the job")));
}

TEST(StartupTest, StartupTimeoutDefaults) {
  EXPECT_EQ(StartupTimeout(absl::Seconds(3), absl::Seconds(100)), absl::Seconds(3));
  EXPECT_EQ(StartupTimeout(std::nullopt, absl::Seconds(100)), absl::Seconds(100));
  EXPECT_EQ(StartupTimeout(std::nullopt, absl::Seconds(1)), kMinStartupTimeout);
  EXPECT_EQ(StartupTimeout(std::nullopt, std::nullopt), kDefaultStartupTimeout);
}

}  // namespace
}  // namespace nmesh::job
