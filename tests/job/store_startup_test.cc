// The start-up agreement over a store (StoreStartupExchange in job/startup.h), with the ranks of a
// job as threads sharing one in-memory store: agreement, a rank that never arrives named with the
// store, ranks launched with different world sizes, a rank claimed twice (two jobs on one prefix),
// a store that goes away; and Job::Start over a store for a job of one rank (no MPI initialised).
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/build_config.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/job/job.h"
#include "nmesh/job/startup.h"
#include "nmesh/tests/comm/memory_store.h"

namespace nmesh::job {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::MemoryStore;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

struct Launched {
  int rank = 0;
  int size = 1;
  std::string command = "run";
};

// Every launched process runs the agreement on its own thread; their results, in launch order.
std::vector<absl::Status> AgreeAll(comm::Store& store, const std::vector<Launched>& ranks,
                                   absl::Duration timeout = absl::Seconds(20)) {
  std::vector<absl::Status> results(ranks.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ranks.size(); ++i) {
    threads.emplace_back([&, i] {
      std::unique_ptr<StartupExchange> exchange =
          StoreStartupExchange(store, ranks[i].rank, ranks[i].size, "WORLD_SIZE");
      results[i] = AgreeAtStartup(
          *exchange,
          MakeStartupRecord(ranks[i].command, "gloo", std::nullopt, absl::OkStatus(), {}, {}),
          timeout);
    });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

TEST(StoreStartupTest, EightRanksAgree) {
  MemoryStore store;
  std::vector<Launched> ranks;
  for (int r = 0; r < 8; ++r) ranks.push_back({.rank = r, .size = 8});
  for (const absl::Status& s : AgreeAll(store, ranks)) EXPECT_THAT(s, IsOk());
}

TEST(StoreStartupTest, DisagreementIsAgreedOnEveryRank) {
  MemoryStore store;
  std::vector<Launched> ranks;
  for (int r = 0; r < 4; ++r) ranks.push_back({.rank = r, .size = 4});
  ranks[2].command = "bench";
  for (const absl::Status& s : AgreeAll(store, ranks)) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("rank 0 runs 'run', rank 2 runs 'bench'")));
    EXPECT_TRUE(IsAgreed(s));
  }
}

TEST(StoreStartupTest, ARankThatNeverArrivesIsNamedWithTheStore) {
  MemoryStore store("job1");
  const std::vector<Launched> ranks = {
      {.rank = 0, .size = 4}, {.rank = 1, .size = 4}, {.rank = 2, .size = 4}};
  for (const absl::Status& s : AgreeAll(store, ranks, absl::Seconds(1))) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                            AllOf(HasSubstr("rank 3 of 4 did not arrive at the store "
                                            "memory://job1 within 1s"))));
    EXPECT_FALSE(IsAgreed(s));
  }
}

TEST(StoreStartupTest, ARankWithAnotherWorldSizeIsNamed) {
  MemoryStore store;
  // Rank 3 was given WORLD_SIZE=5: rank 0 reads its record and tells every rank.
  std::vector<Launched> ranks;
  for (int r = 0; r < 4; ++r) ranks.push_back({.rank = r, .size = r == 3 ? 5 : 4});
  for (const absl::Status& s : AgreeAll(store, ranks, absl::Seconds(5))) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("ranks disagree on the world size: rank 0 was launched "
                                      "with WORLD_SIZE=4, rank 3 with WORLD_SIZE=5")));
  }
}

TEST(StoreStartupTest, AnExtraRankBeyondRankZerosWorldIsTold) {
  MemoryStore store;
  // Ranks 0-3 of WORLD_SIZE=4 agree; a fifth process launched with WORLD_SIZE=5, RANK=4 is never
  // read by rank 0, and learns from the verdict that its world differs.
  std::vector<Launched> ranks;
  for (int r = 0; r < 4; ++r) ranks.push_back({.rank = r, .size = 4});
  ranks.push_back({.rank = 4, .size = 5});
  const std::vector<absl::Status> results = AgreeAll(store, ranks, absl::Seconds(5));
  for (int r = 0; r < 4; ++r) EXPECT_THAT(results[r], IsOk());
  EXPECT_THAT(results[4], StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("rank 0 was launched with WORLD_SIZE=4, rank 4 "
                                             "with WORLD_SIZE=5")));
}

TEST(StoreStartupTest, ARankClaimedTwiceIsAnErrorNamingBothCauses) {
  MemoryStore store("shared");
  // A job that met on this prefix before: its claims are still there.
  std::vector<Launched> first;
  for (int r = 0; r < 2; ++r) first.push_back({.rank = r, .size = 2});
  for (const absl::Status& s : AgreeAll(store, first)) ASSERT_THAT(s, IsOk());
  for (const absl::Status& s : AgreeAll(store, first, absl::Seconds(1))) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr("is claimed twice at the store memory://shared"),
                                  HasSubstr("another job uses the same store prefix"),
                                  HasSubstr("NMESH_JOB_ID"))));
  }
}

TEST(StoreStartupTest, AStoreThatGoesAwayMidStartUpIsUnavailableNamingIt) {
  MemoryStore store("gone");
  store.FailAfter(5);  // the claims and a few records, then nothing
  std::vector<Launched> ranks;
  for (int r = 0; r < 4; ++r) ranks.push_back({.rank = r, .size = 4});
  for (const absl::Status& s : AgreeAll(store, ranks, absl::Seconds(5))) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("memory://gone")));
  }
}

TEST(StoreJobTest, OneRankStartsOverAStoreWithoutMpi) {
  auto store = std::make_shared<MemoryStore>();
  absl::StatusOr<std::unique_ptr<Job>> job =
      Job::Start({.store = store, .environment = LaunchEnvironment()},
                 {.mesh = {.sizes = {.tp = 1}}, .backend = BackendChoice::kGloo});
  ASSERT_THAT(job.status(), IsOk());
  EXPECT_TRUE((*job)->store_launched());
  EXPECT_EQ((*job)->world_size(), 1);
  EXPECT_EQ((*job)->topology().num_hosts, 1);
  ASSERT_EQ((*job)->meshes().size(), 1u);
  EXPECT_TRUE((*job)->meshes()[0].mesh->is_member());
  EXPECT_TRUE(store->Has("startup/verdict"));
  EXPECT_TRUE(store->Has("hosts/0"));
}

TEST(StoreJobTest, MpiIsRefusedUnderAStoreAndGlooWithoutOne) {
  auto store = std::make_shared<MemoryStore>();
  absl::StatusOr<std::unique_ptr<Job>> job =
      Job::Start({.store = store, .environment = LaunchEnvironment()},
                 {.mesh = {.sizes = {.tp = 1}}, .backend = BackendChoice::kMpi});
  EXPECT_THAT(job.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("--backend mpi: a job launched over a store")));
  EXPECT_TRUE(IsAgreed(job.status()));
}

// A plain pointer from DeviceMesh::Comm used after every handle of its mesh is gone, on a gloo job
// of four ranks (threads) over a store: the gloo communicator was destroyed with the mesh and the
// call read freed memory (ASan: heap-use-after-free). Now it stays, released, and says why.
TEST(StoreJobTest, AGlooCommunicatorPointerUsedAfterItsMeshIsGoneFailsCleanly) {
  if (!NMESH_HAVE_GLOO) GTEST_SKIP() << "built without gloo";
  auto store = std::make_shared<MemoryStore>();
  // Four ranks, so that tp (2) is a group of its own, not the whole world (see docs/RELIABILITY.md:
  // a whole-world group's communicator, shared, is not released).
  constexpr int kRanks = 4;
  std::vector<absl::Status> results(kRanks);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < kRanks; ++rank) {
    threads.emplace_back([&, rank] {
      LaunchEnvironment env;
      env.rank = rank;
      env.size = kRanks;
      absl::StatusOr<std::unique_ptr<Job>> job =
          Job::Start({.store = store, .environment = env},
                     {.mesh = {.sizes = {.tp = 2}}, .backend = BackendChoice::kGloo});
      if (!job.ok()) {
        results[rank] = job.status();
        return;
      }
      absl::StatusOr<comm::Communicator*> tp = (*job)->meshes().front().mesh->Comm("tp");
      if (!tp.ok()) {
        results[rank] = tp.status();
        return;
      }
      EXPECT_EQ((*tp)->backend(), "gloo");
      std::vector<float> send(4, 1.0f), recv(4);
      // Alive, it works: both ranks sum their ones.
      results[rank] = (*tp)->AllReduce<float>(send, absl::MakeSpan(recv), comm::ReduceOp::kSum);
      if (!results[rank].ok()) return;
      EXPECT_THAT(recv, ::testing::Each(2.0f));
      job->reset();  // the meshes and their communicators go with the job
      EXPECT_THAT((*tp)->AllReduce<float>(send, absl::MakeSpan(recv), comm::ReduceOp::kSum),
                  StatusIs(absl::StatusCode::kFailedPrecondition,
                           HasSubstr("its mesh 'device_mesh' has been destroyed")));
      EXPECT_THAT((*tp)->Barrier(),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has been destroyed")));
      EXPECT_THAT((*tp)->Split(0, rank, {.name = "again"}).status(),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has been destroyed")));
      EXPECT_EQ((*tp)->size(), 2);
      EXPECT_EQ((*tp)->rank(), rank % 2);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_THAT(s, IsOk());
}

}  // namespace
}  // namespace nmesh::job
