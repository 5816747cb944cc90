// The watchdog's side channel over a store (comm/watch/store_side_channel.h) and the bytes it
// carries (comm/watch/record_codec.h): the ranks of a job are hubs ("processes") over one
// in-memory store. A rank that serves is heard with its records, its state and its global rank;
// a rank that never serves is left unanswered once the silent deadline passes; an ask for one
// communicator is not answered by another's channel; a store that fails ends the exchange at
// once; decoding untrusted bytes stays in bounds.
#include "nmesh/comm/watch/store_side_channel.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/comm/watch/record_codec.h"
#include "nmesh/tests/comm/memory_store.h"

namespace nmesh::comm::internal {
namespace {

// A recorder with `n` all_reduce records of count 10, 11, ..., the last still running.
std::unique_ptr<FlightRecorder> Recorder(int n) {
  auto recorder = std::make_unique<FlightRecorder>(16);
  for (int i = 0; i < n; ++i) {
    const int64_t now = absl::GetCurrentTimeNanos();
    const uint64_t seq =
        recorder->Start(OpKind::kAllReduce, 10 + i, DataType::kFloat32, -1, now, 0);
    if (i + 1 < n) recorder->Finish(seq, true, now + 1);
  }
  return recorder;
}

ProcessState State(std::string blocked_in) {
  ProcessState state;
  state.blocked_in = std::move(blocked_in);
  AxisProgress axis;
  axis.axis = "tp";
  axis.group = 0x1234;
  axis.members = {4, 9};
  axis.entered = 3;
  axis.waiting.seq = 3;
  axis.waiting.op = OpKind::kAllGather;
  state.axes.push_back(axis);
  return state;
}

// Serves `side` on a thread (as the watchdog thread does on every tick) until destroyed.
class Server {
 public:
  Server(SideChannel& side, const FlightRecorder& recorder, ProcessState state)
      : thread_([&side, &recorder, state = std::move(state), this] {
          while (!stop_.load()) {
            side.Serve(recorder, [&state] { return state; });
            absl::SleepFor(absl::Milliseconds(10));
          }
        }) {}
  ~Server() {
    stop_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(StoreSideChannelTest, ExchangeHearsAServingRankWithItsRecordsAndState) {
  auto store = std::make_shared<testing::MemoryStore>();
  auto hub0 = std::make_shared<StoreWatchHub>(store, "w");
  auto hub1 = std::make_shared<StoreWatchHub>(store, "w");
  std::unique_ptr<SideChannel> rank0 = MakeStoreSideChannel(hub0, "x", 0, {4, 9});
  std::unique_ptr<SideChannel> rank1 = MakeStoreSideChannel(hub1, "x", 1, {4, 9});
  std::unique_ptr<FlightRecorder> mine = Recorder(2), theirs = Recorder(3);
  Server server(*rank1, *theirs, State("all_gather #3 on axis 'tp' since 1.0 s"));

  const absl::Time start = absl::Now();
  std::vector<RankRecords> all =
      rank0->Exchange(*mine, {start + absl::Seconds(20), start + absl::Seconds(20)}, [] {});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(all[0].answered);
  EXPECT_EQ(all[0].global_rank, 4);
  EXPECT_EQ(all[0].records.size(), 2u);
  ASSERT_TRUE(all[1].answered);
  EXPECT_EQ(all[1].rank, 1);
  EXPECT_EQ(all[1].global_rank, 9);
  EXPECT_EQ(all[1].blocked_in, "all_gather #3 on axis 'tp' since 1.0 s");
  ASSERT_EQ(all[1].records.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(all[1].records[i].seq, i + 1);
    EXPECT_EQ(all[1].records[i].count, static_cast<int64_t>(10 + i));
    EXPECT_EQ(all[1].records[i].op, OpKind::kAllReduce);
    EXPECT_EQ(all[1].records[i].state, i < 2 ? OpState::kCompleted : OpState::kRunning);
  }
  ASSERT_EQ(all[1].axes.size(), 1u);
  EXPECT_EQ(all[1].axes[0].axis, "tp");
  EXPECT_EQ(all[1].axes[0].group, 0x1234u);
  EXPECT_THAT(all[1].axes[0].members, ::testing::ElementsAre(4, 9));
  EXPECT_EQ(all[1].axes[0].waiting.op, OpKind::kAllGather);
  // Answered at the hub's pace, long before the deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(StoreSideChannelTest, ARankThatNeverServesIsLeftUnansweredAtTheSilentDeadline) {
  auto store = std::make_shared<testing::MemoryStore>();
  auto hub0 = std::make_shared<StoreWatchHub>(store, "w");
  auto hub1 = std::make_shared<StoreWatchHub>(store, "w");
  auto hub2 = std::make_shared<StoreWatchHub>(store, "w");
  std::unique_ptr<SideChannel> rank0 = MakeStoreSideChannel(hub0, "x", 0, {0, 1, 2});
  std::unique_ptr<SideChannel> rank1 = MakeStoreSideChannel(hub1, "x", 1, {0, 1, 2});
  std::unique_ptr<SideChannel> rank2 = MakeStoreSideChannel(hub2, "x", 2, {0, 1, 2});
  std::unique_ptr<FlightRecorder> recorder = Recorder(1);
  Server server(*rank2, *recorder, State(""));  // rank 1 stopped: nobody serves it

  const absl::Time start = absl::Now();
  int polls = 0;
  std::vector<RankRecords> all =
      rank0->Exchange(*recorder, {start + absl::Milliseconds(600), start + absl::Seconds(30)},
                      [&polls] { ++polls; });
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(all.size(), 3u);
  EXPECT_FALSE(all[1].answered);
  EXPECT_TRUE(all[2].answered);
  EXPECT_GE(took, absl::Milliseconds(600));
  EXPECT_LT(took, absl::Seconds(10));  // the alive deadline is not waited for
  EXPECT_GT(polls, 0);                 // `serve` ran between the polls
}

TEST(StoreSideChannelTest, AnAskForOneCommunicatorIsNotAnsweredByAnother) {
  auto store = std::make_shared<testing::MemoryStore>();
  auto hub0 = std::make_shared<StoreWatchHub>(store, "w");
  auto hub1 = std::make_shared<StoreWatchHub>(store, "w");
  const std::string x = StoreChannelId("world", "split", 1, 0);
  const std::string y = StoreChannelId("world", "split", 1, 1);
  ASSERT_NE(x, y);
  EXPECT_EQ(x, StoreChannelId("world", "split", 1, 0));
  std::unique_ptr<SideChannel> asker = MakeStoreSideChannel(hub0, x, 0, {0, 1});
  std::unique_ptr<SideChannel> other = MakeStoreSideChannel(hub1, y, 1, {0, 1});
  std::unique_ptr<FlightRecorder> recorder = Recorder(1);
  Server server(*other, *recorder, State(""));

  const absl::Time until = absl::Now() + absl::Milliseconds(300);
  std::vector<RankRecords> all = asker->Exchange(*recorder, {until, until}, [] {});
  EXPECT_FALSE(all[1].answered);
}

TEST(StoreSideChannelTest, AStoreThatFailsLeavesTheOthersUnansweredAtOnce) {
  auto store = std::make_shared<testing::MemoryStore>();
  auto hub = std::make_shared<StoreWatchHub>(store, "w");
  std::unique_ptr<SideChannel> rank0 = MakeStoreSideChannel(hub, "x", 0, {0, 1});
  std::unique_ptr<FlightRecorder> recorder = Recorder(1);
  store->FailAfter(0);
  const absl::Time start = absl::Now();
  std::vector<RankRecords> all =
      rank0->Exchange(*recorder, {start + absl::Seconds(20), start + absl::Seconds(20)}, [] {});
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(all[0].answered);
  EXPECT_FALSE(all[1].answered);
  EXPECT_EQ(rank0->Serve(*recorder, [] { return ProcessState(); }), 0);
}

TEST(RecordCodecTest, ShortOrMalformedBytesStayInBounds) {
  RankRecords entry;
  EXPECT_FALSE(DecodeRecords("", &entry));
  EXPECT_FALSE(DecodeRecords(std::string(10, 'x'), &entry));
  EXPECT_FALSE(entry.answered);

  std::unique_ptr<FlightRecorder> recorder = Recorder(2);
  std::vector<OpRecord> records = recorder->Snapshot();
  records[0].op = static_cast<OpKind>(250);  // out of range, as garbage from a store would be
  const std::string bytes = EncodeRecords(records, State("x"), 42);
  // Every prefix decodes without reading past it; a complete header is an answer.
  for (size_t n = 0; n <= bytes.size(); ++n) {
    RankRecords part;
    const bool ok = DecodeRecords(std::string_view(bytes).substr(0, n), &part);
    EXPECT_EQ(ok, part.answered);
    EXPECT_LE(part.records.size(), 2u);
  }
  RankRecords whole;
  ASSERT_TRUE(DecodeRecords(bytes, &whole));
  EXPECT_EQ(whole.now_ns, 42);
  ASSERT_EQ(whole.records.size(), 2u);
  EXPECT_TRUE(IsOpKind(whole.records[0].op));
  EXPECT_EQ(whole.records[1].op, OpKind::kAllReduce);
  ASSERT_EQ(whole.axes.size(), 1u);
  EXPECT_THAT(whole.axes[0].members, ::testing::ElementsAre(4, 9));
}

}  // namespace
}  // namespace nmesh::comm::internal
