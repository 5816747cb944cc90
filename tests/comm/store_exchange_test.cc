// The meetings over a store (comm/store_exchange.h), with the ranks of a job as threads sharing
// one in-memory store: every value arrives in rank order, missing ranks are named, a store that
// goes away is reported, and the rank-0 decision reaches every rank.
#include "nmesh/comm/store_exchange.h"

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
using ::testing::Not;

// Runs `body(rank)` on `size` threads and waits for all.
template <typename Body>
void OnRanks(int size, Body body, absl::Span<const int> skip = {}) {
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    if (std::find(skip.begin(), skip.end(), r) != skip.end()) continue;
    threads.emplace_back([&body, r] { body(r); });
  }
  for (std::thread& t : threads) t.join();
}

TEST(StoreAllGatherTest, EveryRankGetsEveryValueInRankOrder) {
  MemoryStore store;
  constexpr int kSize = 6;
  std::vector<absl::StatusOr<std::vector<std::string>>> got(kSize);
  OnRanks(kSize, [&](int r) {
    got[r] = StoreAllGather(store, "hosts", r, kSize, absl::StrCat("host", r % 2),
                            absl::Now() + absl::Seconds(20));
  });
  for (int r = 0; r < kSize; ++r) {
    ASSERT_THAT(got[r].status(), IsOk());
    EXPECT_THAT(*got[r], ElementsAre("host0", "host1", "host0", "host1", "host0", "host1"));
  }
}

TEST(StoreAllGatherTest, NamesTheRanksThatNeverArriveAndTheStore) {
  MemoryStore store("job7");
  constexpr int kSize = 5;
  std::vector<absl::StatusOr<std::vector<std::string>>> got(kSize);
  OnRanks(kSize,
          [&](int r) {
            got[r] = StoreAllGather(store, "hosts", r, kSize, "h", absl::Now() + absl::Seconds(1));
          },
          /*skip=*/{1, 3});
  for (int r : {0, 2, 4}) {
    EXPECT_THAT(got[r].status(),
                StatusIs(absl::StatusCode::kDeadlineExceeded,
                         AllOf(HasSubstr("ranks 1, 3 did not arrive"), HasSubstr("memory://job7"),
                               HasSubstr("within 1s"))));
  }
}

TEST(StoreAllGatherTest, AStoreThatGoesAwayIsUnavailableNamingIt) {
  MemoryStore store("gone");
  // Rank 0 waits for the others, and the store goes away meanwhile.
  std::thread away([&store] {
    absl::SleepFor(absl::Milliseconds(200));
    store.GoAway();
  });
  absl::StatusOr<std::vector<std::string>> got =
      StoreAllGather(store, "hosts", 0, 4, "h", absl::Now() + absl::Seconds(30));
  away.join();
  EXPECT_THAT(got.status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("memory://gone")));
}

TEST(MissingRanksTest, NamesAtMostSixteen) {
  std::vector<std::optional<std::string>> values(40);
  values[0] = "x";
  EXPECT_THAT(MissingRanks(values),
              AllOf(HasSubstr("ranks 1, 2,"), HasSubstr("16, ... (39 ranks) did not arrive"),
                    Not(HasSubstr(" 17"))));
  values.assign(3, "x");
  EXPECT_EQ(MissingRanks(values), "");
  values[2].reset();
  EXPECT_EQ(MissingRanks(values), "rank 2 did not arrive");
}

TEST(StoreRendezvousTest, RankZeroDecidesOverEveryRecordAndEveryRankGetsTheVerdict) {
  MemoryStore store;
  constexpr int kSize = 4;
  std::vector<absl::StatusOr<std::string>> got(kSize);
  int decisions = 0;
  OnRanks(kSize, [&](int r) {
    got[r] =
        StoreRendezvous(store, "startup", r, kSize, absl::StrCat("r", r * 10), absl::Seconds(20),
                        [&](absl::Span<const std::optional<std::string>> records) {
                          ++decisions;  // rank 0 only
                          std::string all;
                          for (const auto& record : records) absl::StrAppend(&all, *record);
                          return all;
                        });
  });
  EXPECT_EQ(decisions, 1);
  for (int r = 0; r < kSize; ++r) {
    ASSERT_THAT(got[r].status(), IsOk());
    EXPECT_EQ(*got[r], "r0r10r20r30");
  }
}

TEST(StoreRendezvousTest, RankZeroSeesWhoIsMissingAndTheOthersHearIt) {
  MemoryStore store;
  constexpr int kSize = 4;
  std::vector<absl::StatusOr<std::string>> got(kSize);
  OnRanks(kSize,
          [&](int r) {
            got[r] = StoreRendezvous(store, "startup", r, kSize, "x", absl::Seconds(1),
                                     [](absl::Span<const std::optional<std::string>> records) {
                                       return MissingRanks(records);
                                     });
          },
          /*skip=*/{2});
  for (int r : {0, 1, 3}) {
    ASSERT_THAT(got[r].status(), IsOk());
    EXPECT_EQ(*got[r], "rank 2 did not arrive");
  }
}

TEST(StoreRendezvousTest, WithoutRankZeroTheOthersTimeOutNamingIt) {
  MemoryStore store("s");
  absl::StatusOr<std::string> got =
      StoreRendezvous(store, "startup", 1, 2, "x", absl::Milliseconds(200),
                      [](absl::Span<const std::optional<std::string>>) { return ""; });
  EXPECT_THAT(got.status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr("rank 0 did not answer"), HasSubstr("memory://s"))));
}

TEST(StoreAgreeOnStatusTest, TheLowestFailingRankIsEveryonesAnswer) {
  MemoryStore store;
  constexpr int kSize = 4;
  std::vector<absl::Status> got(kSize);
  OnRanks(kSize, [&](int r) {
    absl::Status local = r == 2   ? absl::FailedPreconditionError("no GPU on 2")
                         : r == 3 ? absl::NotFoundError("no GPU on 3")
                                  : absl::OkStatus();
    got[r] = StoreAgreeOnStatus(store, "gpus", r, kSize, local, absl::Now() + absl::Seconds(20));
  });
  EXPECT_THAT(got[0], StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("no GPU on 2 [reported by rank 2 of 4]")));
  EXPECT_THAT(got[1], StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("rank 2 of 4")));
  EXPECT_THAT(got[2], StatusIs(absl::StatusCode::kFailedPrecondition, "no GPU on 2"));
  EXPECT_THAT(got[3], StatusIs(absl::StatusCode::kNotFound, "no GPU on 3"));
  std::vector<absl::Status> ok(kSize);
  OnRanks(kSize, [&](int r) {
    ok[r] = StoreAgreeOnStatus(store, "again", r, kSize, absl::OkStatus(),
                               absl::Now() + absl::Seconds(20));
  });
  for (const absl::Status& s : ok) EXPECT_THAT(s, IsOk());
}

}  // namespace
}  // namespace nmesh::comm
