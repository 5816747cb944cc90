// The job layer's pure parts behind `nmesh run`: launcher detection, the failure policy, the NCCL
// settings status, the wire form of verification results, the fault check, the placement
// warnings, plans made without a job, and the enum name tables.
#include "nmesh/job/launch.h"

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/options.h"
#include "nmesh/job/job.h"
#include "nmesh/job/placement.h"
#include "nmesh/job/startup.h"
#include "nmesh/job/verify_job.h"

namespace nmesh::job {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Sets environment variables for one test and restores the previous values after it.
class ScopedEnv {
 public:
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second.has_value()) {
        setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        unsetenv(it->first.c_str());
      }
    }
  }
  void Set(const std::string& name, const char* value) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old == nullptr ? std::nullopt : std::optional<std::string>(old));
    if (value == nullptr) {
      unsetenv(name.c_str());
    } else {
      setenv(name.c_str(), value, 1);
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

void ClearLauncher(ScopedEnv& env) {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID",
                           "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    env.Set(name, nullptr);
  }
}

TEST(LauncherTest, OutsideALauncherRankZeroOfOne) {
  ScopedEnv env;
  ClearLauncher(env);
  EXPECT_EQ(LauncherRank(), 0);
  EXPECT_EQ(LauncherSize(), 1);
}

TEST(LauncherTest, ReadsEachLauncherInOrder) {
  ScopedEnv env;
  ClearLauncher(env);
  env.Set("SLURM_PROCID", "5");
  env.Set("SLURM_NTASKS", "16");
  EXPECT_EQ(LauncherRank(), 5);
  EXPECT_EQ(LauncherSize(), 16);
  env.Set("PMI_RANK", "2");
  env.Set("PMI_SIZE", "4");
  EXPECT_EQ(LauncherRank(), 2);  // PMI before Slurm
  EXPECT_EQ(LauncherSize(), 4);
  env.Set("OMPI_COMM_WORLD_RANK", "3");
  env.Set("OMPI_COMM_WORLD_SIZE", "8");
  EXPECT_EQ(LauncherRank(), 3);  // Open MPI first
  EXPECT_EQ(LauncherSize(), 8);
}

TEST(LauncherTest, SkipsValuesThatAreNotUsable) {
  ScopedEnv env;
  ClearLauncher(env);
  env.Set("OMPI_COMM_WORLD_RANK", "x");  // not a number
  env.Set("PMIX_RANK", "");              // empty
  env.Set("PMI_RANK", "-1");             // negative
  env.Set("SLURM_PROCID", "7");
  EXPECT_EQ(LauncherRank(), 7);
  env.Set("OMPI_COMM_WORLD_SIZE", "0");  // a size is at least 1
  env.Set("PMI_SIZE", "3x");
  EXPECT_EQ(LauncherSize(), 1);
  env.Set("SLURM_NTASKS", "2");
  EXPECT_EQ(LauncherSize(), 2);
}

TEST(OpenJobStoreTest, AnUnusableJobIdIsAnErrorOfTheEnvironmentAndABadUrlIsNot) {
  const char* dir = std::getenv("TEST_TMPDIR") != nullptr ? std::getenv("TEST_TMPDIR") : "/tmp";
  const std::string url = std::string("file://") + dir + "/nmesh_open_job_store_test";
  const EnvironmentReader bad_id = [](const char* name) -> const char* {
    return std::string_view(name) == "NMESH_JOB_ID" ? "has space" : nullptr;
  };
  const absl::Status id = OpenJobStore(url, bad_id).status();
  EXPECT_THAT(id, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NMESH_JOB_ID")));
  EXPECT_TRUE(IsEnvironmentError(id));
  const EnvironmentReader none = [](const char*) -> const char* { return nullptr; };
  const absl::Status scheme = OpenJobStore("gopher://h:1", none).status();
  EXPECT_THAT(scheme, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gopher")));
  EXPECT_FALSE(IsEnvironmentError(scheme));
}

TEST(FailurePolicyTest, ConfigErrorsAreTheUsageCodes) {
  EXPECT_TRUE(IsConfigError(absl::InvalidArgumentError("x")));
  EXPECT_TRUE(IsConfigError(absl::NotFoundError("x")));
  EXPECT_TRUE(IsConfigError(absl::OutOfRangeError("x")));
  EXPECT_FALSE(IsConfigError(absl::DeadlineExceededError("x")));
  EXPECT_FALSE(IsConfigError(absl::FailedPreconditionError("x")));
  EXPECT_FALSE(IsConfigError(absl::InternalError("x")));
}

TEST(FailurePolicyTest, OnlyAFailureOfThisRankAloneEndsTheJob) {
  EXPECT_FALSE(MustEndJob(absl::OkStatus()));
  EXPECT_TRUE(MustEndJob(absl::DeadlineExceededError("timed out")));
  EXPECT_TRUE(MustEndJob(absl::InvalidArgumentError("not agreed")));
  EXPECT_FALSE(MustEndJob(MarkAgreed(absl::InvalidArgumentError("bad --tp"))));
  EXPECT_FALSE(MustEndJob(MarkAgreed(absl::FailedPreconditionError("no GPU"))));
}

TEST(FlagErrorTest, OutsideALauncherTheErrorIsReportedByRankZero) {
  ScopedEnv env;
  ClearLauncher(env);
  const FlagErrorOutcome outcome = AgreeOnFlagError(absl::InvalidArgumentError("--tp: bad"));
  EXPECT_THAT(outcome.status, StatusIs(absl::StatusCode::kInvalidArgument, "--tp: bad"));
  EXPECT_EQ(outcome.rank, 0);
  EXPECT_FALSE(outcome.end_job);
  EXPECT_EQ(outcome.session, nullptr);
}

TEST(FlagErrorTest, OutsideALauncherLeavingNeedsNoAgreement) {
  ScopedEnv env;
  ClearLauncher(env);
  const FlagErrorOutcome outcome = AgreeOnLeaving("--help");
  EXPECT_OK(outcome.status);
  EXPECT_FALSE(outcome.end_job);
  EXPECT_EQ(outcome.session, nullptr);
}

// A job's communicators get a timeout unless the caller opts out: the flag's, else the recipe's,
// else 10 minutes (PyTorch's default).
TEST(JobTimeoutTest, FlagOverRecipeOverTheDefaultUnlessOptedOut) {
  const absl::Duration recipe = absl::Minutes(3);
  EXPECT_EQ(JobTimeout({}, std::nullopt), absl::Minutes(10));
  EXPECT_EQ(comm::kDefaultTimeout, absl::Minutes(10));
  EXPECT_EQ(JobTimeout({}, recipe), recipe);
  EXPECT_EQ(JobTimeout({.mesh = {}, .timeout = absl::Seconds(5)}, recipe), absl::Seconds(5));
  EXPECT_EQ(JobTimeout({.mesh = {}, .recipe_timeout = false}, recipe), absl::Minutes(10));
  EXPECT_EQ(JobTimeout({.mesh = {}, .no_timeout = true}, recipe), std::nullopt);
  EXPECT_EQ(JobTimeout({.mesh = {}, .timeout = absl::Seconds(5), .no_timeout = true}, recipe),
            std::nullopt);
  // What a communicator or a mesh is created with, unless its creator says otherwise.
  EXPECT_EQ(comm::CommOptions{}.timeout, absl::Minutes(10));
  EXPECT_EQ(mesh::DeviceMeshOptions{}.timeout, absl::Minutes(10));
}

TEST(NcclSettingsStatusTest, NoneAppliedOrNotApplicable) {
  Backend nccl;
  nccl.name = "nccl";
  Backend mpi;
  mpi.name = "mpi";
  EXPECT_EQ(NcclSettingsStatus({}, nccl), "none");
  EXPECT_EQ(NcclSettingsStatus({}, mpi), "none");
  comm::NcclSettingsMap settings;
  settings["tp"].max_ctas = 16;
  EXPECT_EQ(NcclSettingsStatus(settings, nccl), "applied");
  EXPECT_EQ(NcclSettingsStatus(settings, mpi), "not applicable (mpi backend)");
}

RankVerification Sample() {
  RankVerification v;
  v.rank = 5;
  v.host = "node-1";
  v.local_rank = 1;
  v.coordinate = {0, 1, 2, 1};
  v.groups = {{.name = "tp", .observed = {4, 5}, .verified = true},
              {.name = "dp_shard_cp", .observed = {}, .verified = false}};
  v.moe_groups =
      std::vector<GroupCheck>{{.name = "ep", .observed = {1, 3, 5, 7}, .verified = true}};
  v.verified = false;
  v.mismatches = {"dp_shard_cp: skipped (fault injection)", ""};
  return v;
}

void ExpectSame(const RankVerification& a, const RankVerification& b) {
  EXPECT_EQ(a.rank, b.rank);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.local_rank, b.local_rank);
  EXPECT_EQ(a.coordinate, b.coordinate);
  ASSERT_EQ(a.groups.size(), b.groups.size());
  for (size_t g = 0; g < a.groups.size(); ++g) {
    EXPECT_EQ(a.groups[g].name, b.groups[g].name);
    EXPECT_EQ(a.groups[g].observed, b.groups[g].observed);
    EXPECT_EQ(a.groups[g].verified, b.groups[g].verified);
  }
  ASSERT_EQ(a.moe_groups.has_value(), b.moe_groups.has_value());
  if (a.moe_groups.has_value()) {
    ASSERT_EQ(a.moe_groups->size(), b.moe_groups->size());
    for (size_t g = 0; g < a.moe_groups->size(); ++g) {
      EXPECT_EQ((*a.moe_groups)[g].name, (*b.moe_groups)[g].name);
      EXPECT_EQ((*a.moe_groups)[g].observed, (*b.moe_groups)[g].observed);
    }
  }
  EXPECT_EQ(a.verified, b.verified);
  EXPECT_EQ(a.mismatches, b.mismatches);
}

TEST(RankResultsWireTest, RoundTripsMembersAndNonMembers) {
  RankVerification plain;
  plain.rank = 0;
  plain.host = "h";
  plain.coordinate = {0};
  plain.groups = {{.name = "dp_shard", .observed = {0, 1}, .verified = true}};
  const std::vector<std::optional<RankVerification>> results = {Sample(), std::nullopt, plain};
  const std::string text = EncodeRankResults(results);
  ASSERT_OK_AND_ASSIGN(std::vector<std::optional<RankVerification>> back,
                       DecodeRankResults(text, 3));
  ASSERT_EQ(back.size(), 3u);
  ASSERT_TRUE(back[0].has_value());
  ExpectSame(*back[0], Sample());
  EXPECT_FALSE(back[1].has_value());
  ASSERT_TRUE(back[2].has_value());
  ExpectSame(*back[2], plain);
  EXPECT_FALSE(back[2]->moe_groups.has_value());
}

TEST(RankResultsWireTest, NoMeshes) {
  ASSERT_OK_AND_ASSIGN(std::vector<std::optional<RankVerification>> back,
                       DecodeRankResults(EncodeRankResults({}), 0));
  EXPECT_TRUE(back.empty());
}

TEST(RankResultsWireTest, DamagedTextIsInternal) {
  const std::string text = EncodeRankResults({Sample()});
  // Every cut is refused, never read past its end.
  for (size_t cut = 0; cut < text.size(); ++cut) {
    EXPECT_THAT(DecodeRankResults(text.substr(0, cut), 1),
                StatusIs(absl::StatusCode::kInternal, HasSubstr("does not decode")))
        << "cut at " << cut;
  }
  EXPECT_THAT(DecodeRankResults(text + "x", 1),
              StatusIs(absl::StatusCode::kInternal, ::testing::_));
  EXPECT_THAT(DecodeRankResults(text, 2), StatusIs(absl::StatusCode::kInternal, ::testing::_));
  // A huge length is refused before anything is allocated for it.
  std::string huge = text;
  const int64_t count = int64_t{1} << 60;
  huge.replace(0, sizeof(count), reinterpret_cast<const char*>(&count), sizeof(count));
  EXPECT_THAT(DecodeRankResults(huge, 1), StatusIs(absl::StatusCode::kInternal, ::testing::_));
}

TEST(CrossHostWarningsTest, OnlyTpAndCpAcrossHosts) {
  const std::vector<GroupPlacement> rows = {
      {.name = "dp_shard", .size = 4, .count = 2, .intra_host = false},
      {.name = "cp", .size = 2, .count = 4, .intra_host = true},
      {.name = "tp", .size = 2, .count = 4, .intra_host = false}};
  EXPECT_THAT(CrossHostWarnings("flags", rows),
              ElementsAre("mesh 'flags': tp groups span hosts; keep tp within a node (--placement "
                          "pack orders the ranks by host, so that each host holds whole tp groups "
                          "when its ranks allow)"));
  EXPECT_TRUE(CrossHostWarnings("flags", {}).empty());
}

std::vector<JobMesh> PlannedMeshes(const MeshOptions& options, int64_t world) {
  absl::StatusOr<std::vector<MeshSpec>> specs = ResolveMeshSpecs(options, world, true);
  EXPECT_THAT(specs.status(), IsOk());
  std::vector<JobMesh> meshes;
  for (MeshSpec& spec : *specs) {
    JobMesh mesh;
    absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
    EXPECT_THAT(plan.status(), IsOk());
    mesh.spec = std::move(spec);
    mesh.plan = *std::move(plan);
    meshes.push_back(std::move(mesh));
  }
  return meshes;
}

TEST(CheckFaultSkipTest, RankInTheWorldAndAGroupOfItsMesh) {
  MeshOptions options;
  options.sizes.tp = 2;
  const std::vector<JobMesh> meshes = PlannedMeshes(options, 4);
  EXPECT_THAT(CheckFaultSkip({.rank = 3, .group = "tp"}, 4, meshes), IsOk());
  EXPECT_THAT(CheckFaultSkip({.rank = 0, .group = "dp_shard_cp"}, 4, meshes), IsOk());
  EXPECT_THAT(CheckFaultSkip({.rank = 4, .group = "tp"}, 4, meshes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--fault-skip 4:tp: rank 4 is outside the world (4 ranks)"));
  EXPECT_THAT(CheckFaultSkip({.rank = 1, .group = "ep"}, 4, meshes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--fault-skip 1:ep: no mesh with rank 1 as a member has a group 'ep'"));
}

TEST(PlanWithoutJobTest, NeedsAWorldAndHostsForPack) {
  MeshSpec spec;
  spec.label = "flags";
  spec.request.sizes.tp = 2;
  EXPECT_THAT(
      PlanWithoutJob(spec, std::nullopt, Placement::kAsLaunched),
      StatusIs(absl::StatusCode::kInvalidArgument, "--world is required unless --ranks is given"));
  spec.request.sizes.world_size = 8;
  EXPECT_THAT(
      PlanWithoutJob(spec, std::nullopt, Placement::kPack),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "--placement pack needs the hosts under plan: give --hosts H --ranks-per-host R"));
  ASSERT_OK_AND_ASSIGN(PlacedPlan plain,
                       PlanWithoutJob(spec, std::nullopt, Placement::kAsLaunched));
  EXPECT_EQ(plain.plan.world_size(), 8);
  EXPECT_TRUE(plain.groups.empty());
  ASSERT_OK_AND_ASSIGN(PlacedPlan placed,
                       PlanWithoutJob(spec,
                                      HostLayout{.hosts = 2,
                                                 .ranks_per_host = 4,
                                                 .order = LaunchOrder::kBySlot,
                                                 .ranks_per_domain = std::nullopt},
                                      Placement::kPack));
  EXPECT_FALSE(placed.groups.empty());
  // A rank list gives the world too.
  MeshSpec listed;
  listed.label = "flags";
  listed.request.ranks = std::vector<int64_t>{0, 2, 4, 6};
  listed.request.sizes.tp = 2;
  EXPECT_THAT(PlanWithoutJob(listed, std::nullopt, Placement::kAsLaunched).status(), IsOk());
}

TEST(EnumNamesTest, ParseAndNameAgreeWithTheMessages) {
  EXPECT_EQ(ParseBackendChoice("nccl").value(), BackendChoice::kNccl);
  EXPECT_EQ(BackendChoiceName(BackendChoice::kMpi), "mpi");
  EXPECT_EQ(ParseBackendChoice("gloo").value(), BackendChoice::kGloo);
  EXPECT_THAT(ParseBackendChoice("ucc"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unknown backend 'ucc': expected auto, mpi, nccl or gloo"));
  EXPECT_EQ(ParsePlacement("pack").value(), Placement::kPack);
  EXPECT_EQ(PlacementName(Placement::kAsLaunched), "as-launched");
  EXPECT_THAT(ParsePlacement("packed"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unknown placement 'packed': expected as-launched or pack"));
  EXPECT_EQ(ParseLaunchOrder("node").value(), LaunchOrder::kByNode);
  EXPECT_EQ(LaunchOrderName(LaunchOrder::kBySlot), "slot");
  EXPECT_THAT(ParseLaunchOrder("ring"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unknown launch order 'ring': expected slot or node"));
}

}  // namespace
}  // namespace nmesh::job
