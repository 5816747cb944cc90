// MpiRecoveryChannel (comm/mpi/recovery_channel.h) under mpirun: announcements reach every rank,
// the meeting's verdict is the same everywhere, a missing rank fails a need_all meeting naming it,
// and a rank that arrives after the meeting closed is told so. Expected verdicts are written out
// from the job's size here, not taken from the channel.
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/comm/mpi/recovery_channel.h"
#include "nmesh/comm/mpi/testing/session.h"

namespace nmesh::comm::mpi {
namespace {

using ::testing::HasSubstr;

struct World {
  int rank = 0;
  int size = 1;
};

World TheWorld() {
  World w;
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  return w;
}

std::unique_ptr<MpiRecoveryChannel> MakeChannel() {
  auto channel = MpiRecoveryChannel::Create(testing::TheSession());
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? std::move(*channel) : nullptr;
}

// Polls Announced(epoch) for up to 10 s.
std::optional<std::string> WaitAnnounced(MpiRecoveryChannel& channel, int64_t epoch) {
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (absl::Now() < until) {
    if (std::optional<std::string> cause = channel.Announced(epoch)) return cause;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return std::nullopt;
}

std::vector<int64_t> AllRanks(int size) {
  std::vector<int64_t> all(static_cast<size_t>(size));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

TEST(MpiRecoveryChannel, AnnouncementReachesEveryRankAndTheVerdictCarriesIt) {
  const World w = TheWorld();
  std::unique_ptr<MpiRecoveryChannel> channel = MakeChannel();
  ASSERT_NE(channel, nullptr);
  EXPECT_EQ(channel->Describe(), "MPI's world");
  const std::string cause = "rank " + std::to_string(w.size - 1) +
                            ": all_reduce on axis 'tp' "
                            "timed out after 2 s";
  if (w.rank == w.size - 1) {
    ASSERT_TRUE(channel->Announce(0, cause).ok());
  }
  std::optional<std::string> seen = WaitAnnounced(*channel, 0);
  ASSERT_TRUE(seen.has_value()) << "rank " << w.rank << " never saw the announcement";
  EXPECT_EQ(*seen, cause);
  EXPECT_FALSE(channel->Announced(1).has_value());
  // A later announcement of the same epoch changes nothing.
  if (w.rank == 0) {
    ASSERT_TRUE(channel->Announce(0, "another cause").ok());
  }

  absl::StatusOr<RecoveryVerdict> verdict =
      channel->Meet(0, {.launch_rank = w.rank,
                        .launch_size = w.size,
                        .need_all = true,
                        .deadline = absl::Now() + absl::Seconds(20)});
  ASSERT_TRUE(verdict.ok()) << verdict.status();
  EXPECT_EQ(verdict->epoch, 0);
  EXPECT_EQ(verdict->survivors, AllRanks(w.size));
  EXPECT_TRUE(verdict->dead.empty());
  EXPECT_EQ(verdict->cause, cause);
  EXPECT_EQ(channel->Announced(0), cause);
}

TEST(MpiRecoveryChannel, MissingRankFailsANeedAllMeetingAndIsToldItIsLate) {
  const World w = TheWorld();
  std::unique_ptr<MpiRecoveryChannel> channel = MakeChannel();
  ASSERT_NE(channel, nullptr);
  const int late = w.size - 1;
  if (w.size == 1) GTEST_SKIP() << "needs two ranks";
  if (w.rank != late) {
    absl::StatusOr<RecoveryVerdict> verdict =
        channel->Meet(5, {.launch_rank = w.rank,
                          .launch_size = w.size,
                          .need_all = true,
                          .deadline = absl::Now() + absl::Seconds(1)});
    ASSERT_FALSE(verdict.ok());
    EXPECT_EQ(verdict.status().code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_THAT(verdict.status().message(), HasSubstr("ranks [" + std::to_string(late) +
                                                      "] did not arrive at the meeting "
                                                      "of failure 5"));
  } else {
    absl::SleepFor(absl::Seconds(3));
    absl::StatusOr<RecoveryVerdict> verdict =
        channel->Meet(5, {.launch_rank = w.rank,
                          .launch_size = w.size,
                          .need_all = true,
                          .deadline = absl::Now() + absl::Seconds(20)});
    ASSERT_FALSE(verdict.ok());
    EXPECT_EQ(verdict.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(verdict.status().message(),
                HasSubstr("rank " + std::to_string(late) +
                          " arrived after the survivors of failure 5 agreed without it"));
  }
  // Everyone meets again for the next failure, the late rank included.
  absl::StatusOr<RecoveryVerdict> next =
      channel->Meet(6, {.launch_rank = w.rank,
                        .launch_size = w.size,
                        .need_all = true,
                        .deadline = absl::Now() + absl::Seconds(20)});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->survivors, AllRanks(w.size));
  EXPECT_TRUE(next->dead.empty());
}

TEST(MpiRecoveryChannel, WithoutNeedAllALateRankIsCountedDead) {
  const World w = TheWorld();
  if (w.size == 1) GTEST_SKIP() << "needs two ranks";
  std::unique_ptr<MpiRecoveryChannel> channel = MakeChannel();
  ASSERT_NE(channel, nullptr);
  const int late = w.size - 1;
  if (w.rank == late) absl::SleepFor(absl::Seconds(3));
  absl::StatusOr<RecoveryVerdict> verdict =
      channel->Meet(0, {.launch_rank = w.rank,
                        .launch_size = w.size,
                        .need_all = false,
                        .quiet = absl::Milliseconds(500),
                        .deadline = absl::Now() + absl::Seconds(20)});
  if (w.rank == late) {
    ASSERT_FALSE(verdict.ok());
    EXPECT_EQ(verdict.status().code(), absl::StatusCode::kFailedPrecondition);
    return;
  }
  ASSERT_TRUE(verdict.ok()) << verdict.status();
  std::vector<int64_t> survivors = AllRanks(w.size);
  survivors.pop_back();
  EXPECT_EQ(verdict->survivors, survivors);
  EXPECT_EQ(verdict->dead, std::vector<int64_t>{late});
  // The coordinator answers the late arrival the next time it polls.
  if (w.rank == 0) {
    const absl::Time until = absl::Now() + absl::Seconds(4);
    while (absl::Now() < until) {
      (void)channel->Announced(0);
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
}

TEST(MpiRecoveryChannel, RejectsAWrongLaunchRank) {
  const World w = TheWorld();
  std::unique_ptr<MpiRecoveryChannel> channel = MakeChannel();
  ASSERT_NE(channel, nullptr);
  absl::StatusOr<RecoveryVerdict> verdict =
      channel->Meet(0, {.launch_rank = w.rank, .launch_size = w.size + 1});
  ASSERT_FALSE(verdict.ok());
  EXPECT_EQ(verdict.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(verdict.status().message(), HasSubstr("launch rank"));
}

}  // namespace
}  // namespace nmesh::comm::mpi
