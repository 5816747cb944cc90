// The recovery channel over a store (comm/recovery_channel.h), with the ranks of a job as threads
// sharing one in-memory store: announcements (the first wins, escaped and cut), and the survivors'
// meeting when every rank arrives, when one never does (shrink: it is dead), when every rank must
// (rebuild: a late one is waited for, a missing one fails every rank alike), for a rank that
// arrives after the verdict, and over a store that goes away. Expected verdicts are written out
// from the scenario (who was started), never read from the channel.
#include "nmesh/comm/recovery_channel.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/tests/comm/memory_store.h"

namespace nmesh::comm {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::MemoryStore;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

struct Arrival {
  int64_t rank = 0;
  absl::Duration delay = absl::ZeroDuration();  // after the others start
};

// Every arrival meets on its own thread (over its own channel on the shared store); the results
// by launch rank.
std::map<int64_t, absl::StatusOr<RecoveryVerdict>> MeetAll(std::shared_ptr<Store> store,
                                                           int64_t epoch,
                                                           const std::vector<Arrival>& arrivals,
                                                           RecoveryMeetOptions options) {
  std::vector<absl::StatusOr<RecoveryVerdict>> results(arrivals.size(),
                                                       absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < arrivals.size(); ++i) {
    threads.emplace_back([&, i] {
      absl::SleepFor(arrivals[i].delay);
      std::unique_ptr<RecoveryChannel> channel = StoreRecoveryChannel(store);
      RecoveryMeetOptions mine = options;
      mine.launch_rank = arrivals[i].rank;
      results[i] = channel->Meet(epoch, mine);
    });
  }
  for (std::thread& t : threads) t.join();
  std::map<int64_t, absl::StatusOr<RecoveryVerdict>> by_rank;
  for (size_t i = 0; i < arrivals.size(); ++i) by_rank.emplace(arrivals[i].rank, results[i]);
  return by_rank;
}

TEST(StoreRecoveryChannelTest, FirstAnnouncementWinsEscapedAndCut) {
  auto store = std::make_shared<MemoryStore>("job1");
  std::unique_ptr<RecoveryChannel> a = StoreRecoveryChannel(store);
  std::unique_ptr<RecoveryChannel> b = StoreRecoveryChannel(store);
  EXPECT_EQ(a->Describe(), "the store memory://job1");
  EXPECT_EQ(a->Announced(0), std::nullopt);
  ASSERT_OK(b->Announce(0, "rank 3: all_reduce on axis 'tp' timed out\x1b[2J"));
  ASSERT_OK(a->Announce(0, "rank 1: later"));
  EXPECT_EQ(a->Announced(0), "rank 3: all_reduce on axis 'tp' timed out\\x1b[2J");
  EXPECT_EQ(b->Announced(0), a->Announced(0));
  EXPECT_EQ(a->Announced(1), std::nullopt);
  ASSERT_OK(a->Announce(1, std::string(5000, 'x')));
  std::optional<std::string> cut = b->Announced(1);
  ASSERT_TRUE(cut.has_value());
  EXPECT_EQ(cut->substr(0, 1024), std::string(1024, 'x'));
  EXPECT_THAT(*cut, HasSubstr("(5000 bytes)"));
  EXPECT_LT(cut->size(), 1100u);
  EXPECT_THAT(a->Announce(-1, "x"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_EQ(a->Announced(-1), std::nullopt);
}

// An announcer that counted itself but died before writing its cause does not hide the next one.
TEST(StoreRecoveryChannelTest, AGapInTheAnnouncementsIsSkipped) {
  auto store = std::make_shared<MemoryStore>();
  ASSERT_OK(store->Add("recover/0/announce", 1).status());
  std::unique_ptr<RecoveryChannel> channel = StoreRecoveryChannel(store);
  EXPECT_EQ(channel->Announced(0), std::nullopt);
  ASSERT_OK(channel->Announce(0, "rank 2: gone"));
  EXPECT_EQ(channel->Announced(0), "rank 2: gone");
}

TEST(StoreRecoveryChannelTest, EveryRankArrives) {
  auto store = std::make_shared<MemoryStore>();
  ASSERT_OK(StoreRecoveryChannel(store)->Announce(0, "rank 2: recv on axis 'pp' failed"));
  // A quiet period and a deadline far away: the meeting closes because every rank is there.
  const absl::Time start = absl::Now();
  auto results = MeetAll(
      store, 0, {{0}, {1}, {2}, {3, absl::Milliseconds(300)}},
      {.launch_size = 4, .quiet = absl::Minutes(10), .deadline = absl::Now() + absl::Minutes(10)});
  EXPECT_LT(absl::Now() - start, absl::Minutes(1));
  for (auto& [rank, verdict] : results) {
    ASSERT_THAT(verdict, IsOk()) << "rank " << rank;
    EXPECT_EQ(verdict->epoch, 0);
    EXPECT_THAT(verdict->survivors, ElementsAre(0, 1, 2, 3));
    EXPECT_THAT(verdict->dead, IsEmpty());
    EXPECT_EQ(verdict->cause, "rank 2: recv on axis 'pp' failed");
  }
}

// Shrink: rank 2 never comes; once nobody new has arrived for the quiet period the others agree
// that it is dead.
TEST(StoreRecoveryChannelTest, ARankThatNeverArrivesIsDead) {
  auto store = std::make_shared<MemoryStore>();
  auto results = MeetAll(
      store, 0, {{0}, {1, absl::Milliseconds(200)}, {3}},
      {.launch_size = 4, .quiet = absl::Seconds(2), .deadline = absl::Now() + absl::Minutes(10)});
  for (auto& [rank, verdict] : results) {
    ASSERT_THAT(verdict, IsOk()) << "rank " << rank;
    EXPECT_THAT(verdict->survivors, ElementsAre(0, 1, 3));
    EXPECT_THAT(verdict->dead, ElementsAre(2));
    EXPECT_EQ(verdict->cause, "no cause was announced");
  }
  // A second failure of the same job: rank 2 is gone, rank 0 now never arrives.
  auto second = MeetAll(store, 1, {{1}, {3}},
                        {.launch_size = 4,
                         .gone = {2},
                         .quiet = absl::Seconds(2),
                         .deadline = absl::Now() + absl::Minutes(10)});
  for (auto& [rank, verdict] : second) {
    ASSERT_THAT(verdict, IsOk()) << "rank " << rank;
    EXPECT_EQ(verdict->epoch, 1);
    EXPECT_THAT(verdict->survivors, ElementsAre(1, 3));
    EXPECT_THAT(verdict->dead, ElementsAre(0));
  }
}

// Beats `rank` (RecoveryChannel::Alive) every 50 ms on its own thread until destroyed, as
// job::Job's monitor does for a process that still runs.
class Beating {
 public:
  Beating(std::shared_ptr<Store> store, int64_t rank)
      : thread_([this, store, rank] {
          std::unique_ptr<RecoveryChannel> channel = StoreRecoveryChannel(store);
          while (!stop_.HasBeenNotified()) {
            (void)channel->Alive(rank);
            stop_.WaitForNotificationWithTimeout(absl::Milliseconds(50));
          }
        }) {}
  ~Beating() {
    stop_.Notify();
    thread_.join();
  }

 private:
  absl::Notification stop_;
  std::thread thread_;
};

// Shrink, with a rank that is slow but alive: it still beats, so the meeting waits past the quiet
// period for it (it arrives after 8 quiet periods), while the rank that neither beats nor arrives
// is dead. Without the beats, ranks 0 and 3 would close the meeting after 100 ms and count rank 1
// dead too.
TEST(StoreRecoveryChannelTest, ASlowRankThatStillBeatsIsWaitedFor) {
  auto store = std::make_shared<MemoryStore>();
  Beating slow(store, 1);
  const absl::Time start = absl::Now();
  auto results = MeetAll(
      store, 0, {{0}, {1, absl::Milliseconds(800)}, {3}},
      {.launch_size = 4, .quiet = absl::Milliseconds(100), .deadline = start + absl::Seconds(30)});
  for (auto& [rank, verdict] : results) {
    ASSERT_THAT(verdict, IsOk()) << "rank " << rank;
    EXPECT_THAT(verdict->survivors, ElementsAre(0, 1, 3));
    EXPECT_THAT(verdict->dead, ElementsAre(2));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

// A rank that beats but never arrives is waited for until the deadline, then counted dead: the
// meeting stays bounded.
TEST(StoreRecoveryChannelTest, ARankThatBeatsButNeverArrivesIsDeadAtTheDeadline) {
  auto store = std::make_shared<MemoryStore>();
  Beating stuck(store, 2);
  const absl::Time start = absl::Now();
  auto results = MeetAll(
      store, 0, {{0}, {1}},
      {.launch_size = 3, .quiet = absl::Milliseconds(50), .deadline = start + absl::Seconds(1)});
  for (auto& [rank, verdict] : results) {
    ASSERT_THAT(verdict, IsOk()) << "rank " << rank;
    EXPECT_THAT(verdict->survivors, ElementsAre(0, 1));
    EXPECT_THAT(verdict->dead, ElementsAre(2));
  }
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
}

// Rebuild: every rank must come; a rank later than the quiet period (but within the deadline) is
// waited for.
TEST(StoreRecoveryChannelTest, NeedAllWaitsForALateRank) {
  auto store = std::make_shared<MemoryStore>();
  auto results = MeetAll(store, 0, {{0}, {1}, {2}, {3, absl::Seconds(1)}},
                         {.launch_size = 4,
                          .need_all = true,
                          .quiet = absl::Milliseconds(50),
                          .deadline = absl::Now() + absl::Seconds(30)});
  for (auto& [rank, verdict] : results) {
    ASSERT_THAT(verdict, IsOk()) << "rank " << rank;
    EXPECT_THAT(verdict->survivors, ElementsAre(0, 1, 2, 3));
    EXPECT_THAT(verdict->dead, IsEmpty());
  }
}

// Rebuild with a rank missing at the deadline: every rank that came fails alike, naming it.
TEST(StoreRecoveryChannelTest, NeedAllFailsOnEveryRankNamingTheMissingOne) {
  auto store = std::make_shared<MemoryStore>("job7");
  ASSERT_OK(StoreRecoveryChannel(store)->Announce(0, "rank 1: the peer went away"));
  auto results = MeetAll(
      store, 0, {{0}, {1}, {3}},
      {.launch_size = 4, .need_all = true, .deadline = absl::Now() + absl::Milliseconds(800)});
  for (auto& [rank, verdict] : results) {
    EXPECT_THAT(verdict,
                StatusIs(absl::StatusCode::kDeadlineExceeded,
                         AllOf(HasSubstr("after failure 0, rank 2 did not arrive at the "
                                         "survivors' meeting over the store memory://job7"),
                               HasSubstr("rank 1: the peer went away"))))
        << "rank " << rank;
  }
}

// A rank that arrives after the others agreed without it is told so; the next epoch is a meeting
// of its own.
TEST(StoreRecoveryChannelTest, ARankAfterTheVerdictIsTold) {
  auto store = std::make_shared<MemoryStore>();
  ASSERT_OK(StoreRecoveryChannel(store)->Announce(0, "rank 0: tp timed out"));
  const RecoveryMeetOptions options{
      .launch_size = 4, .quiet = absl::Seconds(2), .deadline = absl::Now() + absl::Minutes(10)};
  auto results = MeetAll(store, 0, {{0}, {1}, {2}}, options);
  for (auto& [rank, verdict] : results) {
    ASSERT_THAT(verdict, IsOk());
    EXPECT_THAT(verdict->dead, ElementsAre(3));
  }
  auto late = MeetAll(store, 0, {{3}}, options);
  EXPECT_THAT(late.at(3),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("rank 3 arrived after the survivors of failure 0 agreed "
                                       "without it (survivors: ranks 0, 1, 2; failure: rank 0: "
                                       "tp timed out"))));
  auto next = MeetAll(store, 1, {{0}, {1}, {2}, {3}}, options);
  for (auto& [rank, verdict] : next) {
    ASSERT_THAT(verdict, IsOk());
    EXPECT_THAT(verdict->survivors, ElementsAre(0, 1, 2, 3));
  }
}

// The rank that took the decision died before writing the verdict: the others give up after a
// grace period instead of waiting forever, and say what happened.
TEST(StoreRecoveryChannelTest, ADeciderThatDiesEndsTheMeeting) {
  auto store = std::make_shared<MemoryStore>();
  ASSERT_OK(store->Add("recover/0/decide", 1).status());
  ASSERT_OK(store->Set("recover/0/decider", "2"));
  auto results =
      MeetAll(store, 0, {{0}, {1}},
              {.launch_size = 3, .quiet = absl::Milliseconds(100), .deadline = absl::Now()});
  for (auto& [rank, verdict] : results) {
    EXPECT_THAT(verdict, StatusIs(absl::StatusCode::kUnavailable,
                                  HasSubstr("rank 2 took the decision and wrote no verdict")));
  }
}

TEST(StoreRecoveryChannelTest, AStoreThatGoesAwayIsNamed) {
  auto store = std::make_shared<MemoryStore>("gone");
  std::unique_ptr<RecoveryChannel> channel = StoreRecoveryChannel(store);
  std::thread away([&] {
    absl::SleepFor(absl::Milliseconds(300));
    store->GoAway();
  });
  // Rank 1 never comes and the quiet period is long: the meeting is still open when the store goes.
  absl::StatusOr<RecoveryVerdict> verdict =
      channel->Meet(0, {.launch_rank = 0,
                        .launch_size = 2,
                        .quiet = absl::Minutes(10),
                        .deadline = absl::Now() + absl::Minutes(10)});
  away.join();
  EXPECT_THAT(verdict, StatusIs(absl::StatusCode::kUnavailable,
                                AllOf(HasSubstr("over the store memory://gone"),
                                      HasSubstr("cannot reach the store memory://gone"))));
  EXPECT_THAT(channel->Announce(0, "x"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("memory://gone")));
  EXPECT_EQ(channel->Announced(0), std::nullopt);
}

TEST(StoreRecoveryChannelTest, BadOptionsAreInvalidArgument) {
  auto store = std::make_shared<MemoryStore>();
  std::unique_ptr<RecoveryChannel> channel = StoreRecoveryChannel(store);
  const absl::Time soon = absl::Now() + absl::Seconds(1);
  EXPECT_THAT(channel->Meet(0, {.launch_rank = 4, .launch_size = 4, .deadline = soon}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 4 of a job of 4")));
  EXPECT_THAT(channel->Meet(0, {.launch_rank = 1, .launch_size = 4, .gone = {1}, .deadline = soon}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 1 cannot be among")));
  EXPECT_THAT(channel->Meet(0, {.launch_rank = 1, .launch_size = 4, .gone = {9}, .deadline = soon}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 9")));
  EXPECT_THAT(channel->Meet(-2, {.launch_size = 1, .deadline = soon}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_FALSE(store->Has("recover/0/here/1"));
}

// Untrusted store contents: a verdict that is not one is DataLoss, not a crash.
TEST(StoreRecoveryChannelTest, AGarbledVerdictIsDataLoss) {
  auto store = std::make_shared<MemoryStore>();
  ASSERT_OK(store->Set("recover/0/verdict", "0\n0,1,99\n\nx"));
  EXPECT_THAT(StoreRecoveryChannel(store)->Meet(
                  0, {.launch_rank = 0, .launch_size = 4, .deadline = absl::Now()}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("rank '99'")));
  ASSERT_OK(store->Set("recover/1/verdict", "garbage"));
  EXPECT_THAT(StoreRecoveryChannel(store)->Meet(
                  1, {.launch_rank = 0, .launch_size = 4, .deadline = absl::Now()}),
              StatusIs(absl::StatusCode::kDataLoss, Not(HasSubstr("\n"))));
}

}  // namespace
}  // namespace nmesh::comm
