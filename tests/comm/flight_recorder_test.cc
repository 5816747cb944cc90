// Unit tests of the flight recorder (comm/watch/flight_recorder.h): the ring, the culprit analysis
// as a pure function over hand-written records of several ranks, the JSON dump, and what a
// communicator records; and Communicator::SetTimeout's validation.
#include "nmesh/comm/watch/flight_recorder.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/watch/diagnosis.h"
#include "nmesh/comm/watch/watchdog.h"

// Counts every allocation of this test binary, to show that recording allocates nothing.
namespace {
std::atomic<int64_t> allocations{0};
}  // namespace

// GCC cannot see that these replace the global operator new, and warns on free().
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t bytes) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace nmesh::comm {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A record as a rank would have it. Times in seconds, for readability.
OpRecord Rec(uint64_t seq, uint64_t collective_seq, OpKind op, int64_t count, DataType type,
             OpState state, double start_s, int32_t peer = -1) {
  OpRecord r;
  r.seq = seq;
  r.collective_seq = collective_seq;
  r.op = op;
  r.count = count;
  r.type = type;
  r.state = state;
  r.peer = peer;
  r.start_ns = r.enqueue_ns = static_cast<int64_t>(start_s * 1e9);
  if (state != OpState::kRunning) r.end_ns = r.start_ns + 1000;
  return r;
}

RankRecords Rank(int rank, int64_t global, double now_s, std::vector<OpRecord> records) {
  RankRecords r;
  r.rank = rank;
  r.global_rank = global;
  r.answered = true;
  r.now_ns = static_cast<int64_t>(now_s * 1e9);
  r.records = std::move(records);
  return r;
}

RankRecords Silent(int rank, int64_t global) {
  RankRecords r;
  r.rank = rank;
  r.global_rank = global;
  return r;
}

std::vector<uint64_t> Seqs(const std::vector<OpRecord>& records) {
  std::vector<uint64_t> seqs;
  for (const OpRecord& r : records) seqs.push_back(r.seq);
  return seqs;
}

TEST(FlightRecorderTest, NumbersOperationsAndRecordsTheirEnd) {
  FlightRecorder recorder(4);
  EXPECT_EQ(recorder.last_seq(), 0u);
  EXPECT_TRUE(recorder.Snapshot().empty());
  const uint64_t a = recorder.Start(OpKind::kAllReduce, 1024, DataType::kFloat32, -1, 100, 0);
  const uint64_t b = recorder.Start(OpKind::kSend, 8, DataType::kInt64, 3, 200, 0);
  const uint64_t c = recorder.Start(OpKind::kBroadcast, 16, DataType::kInt32, 1, 300, 900);
  EXPECT_EQ(a, 1u);
  EXPECT_EQ(b, 2u);
  EXPECT_EQ(c, 3u);
  recorder.Finish(a, /*ok=*/true, 150);
  recorder.Finish(b, /*ok=*/false, 250);
  const std::vector<OpRecord> records = recorder.Snapshot();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].op, OpKind::kAllReduce);
  EXPECT_EQ(records[0].count, 1024);
  EXPECT_EQ(records[0].state, OpState::kCompleted);
  EXPECT_EQ(records[0].end_ns, 150);
  EXPECT_EQ(records[0].collective_seq, 1u);
  EXPECT_EQ(records[1].state, OpState::kFailed);
  EXPECT_EQ(records[1].peer, 3);
  EXPECT_EQ(records[1].collective_seq, 0u);  // point to point
  EXPECT_EQ(records[2].state, OpState::kRunning);
  EXPECT_EQ(records[2].collective_seq, 2u);
  EXPECT_EQ(records[2].deadline_ns, 900);
  // A second Finish changes nothing.
  recorder.Finish(a, /*ok=*/false, 999);
  EXPECT_EQ(recorder.Snapshot()[0].state, OpState::kCompleted);
}

TEST(FlightRecorderTest, WrapsAroundKeepingTheLastOperationsOldestFirst) {
  FlightRecorder recorder(3);
  for (int i = 0; i < 7; ++i) {
    const uint64_t seq = recorder.Start(OpKind::kBarrier, 1, DataType::kUint8, -1, i, 0);
    recorder.Finish(seq, true, i + 1);
  }
  EXPECT_EQ(recorder.last_seq(), 7u);
  EXPECT_THAT(Seqs(recorder.Snapshot()), ElementsAre(5u, 6u, 7u));
  // Finishing an operation whose slot was reused leaves the newer record alone.
  const uint64_t running = recorder.Start(OpKind::kAllGather, 2, DataType::kInt8, -1, 10, 0);
  recorder.Finish(running - 3, false, 11);  // seq 5: overwritten by seq 8
  EXPECT_EQ(recorder.Snapshot().back().state, OpState::kRunning);
  EXPECT_THAT(Seqs(recorder.Snapshot()), ElementsAre(6u, 7u, 8u));
}

TEST(FlightRecorderTest, RecordingAllocatesNothing) {
  FlightRecorder recorder(8);
  const int64_t before = allocations.load();
  for (int i = 0; i < 1000; ++i) {
    const uint64_t seq = recorder.Start(OpKind::kAllReduce, i, DataType::kFloat32, -1, i, i + 5);
    recorder.Finish(seq, true, i + 1);
  }
  EXPECT_EQ(allocations.load() - before, 0);
  // The counter works: a snapshot allocates.
  (void)recorder.Snapshot();
  EXPECT_GT(allocations.load() - before, 0);
}

TEST(FlightRecorderTest, FindsTheOldestExpiredRunningOperation) {
  FlightRecorder recorder(8);
  const uint64_t watched = recorder.Start(OpKind::kAllReduce, 1, DataType::kInt32, -1, 0, 100);
  recorder.Start(OpKind::kAllGather, 1, DataType::kInt32, -1, 10, 50);
  recorder.Start(OpKind::kBarrier, 1, DataType::kUint8, -1, 20, 0);  // not watched
  EXPECT_FALSE(recorder.FirstExpired(49).has_value());
  ASSERT_TRUE(recorder.FirstExpired(60).has_value());
  EXPECT_EQ(recorder.FirstExpired(60)->op, OpKind::kAllGather);
  EXPECT_EQ(recorder.FirstExpired(200)->seq, watched);  // the oldest of the two
  recorder.Finish(watched, true, 150);
  EXPECT_EQ(recorder.FirstExpired(200)->op, OpKind::kAllGather);
  recorder.Unwatch();
  EXPECT_FALSE(recorder.FirstExpired(1000).has_value());
}

TEST(FlightRecorderTest, DescribesRecordsAndSizes) {
  EXPECT_EQ(FormatBytes(16), "16 B");
  EXPECT_EQ(FormatBytes(4 << 20), "4 MiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(DescribeRecord(
                Rec(42, 40, OpKind::kAllReduce, 1 << 20, DataType::kFloat32, OpState::kRunning, 0)),
            "all_reduce #42 (4 MiB float32)");
  EXPECT_EQ(
      DescribeRecord(Rec(3, 3, OpKind::kBroadcast, 4, DataType::kInt32, OpState::kRunning, 0, 1)),
      "broadcast #3 (16 B int32, root 1)");
  EXPECT_EQ(DescribeRecord(Rec(9, 0, OpKind::kRecv, 1, DataType::kUint64, OpState::kRunning, 0, 2)),
            "recv #9 (8 B uint64, from 2)");
  EXPECT_EQ(DescribeRecord(Rec(7, 5, OpKind::kBarrier, 1, DataType::kUint8, OpState::kRunning, 0)),
            "barrier #7");
}

// The example of the design: rank 3 never entered the all_reduce that rank 2 waits in.
TEST(DiagnoseTimeoutTest, NamesTheRankThatNeverEntered) {
  const OpRecord stuck =
      Rec(42, 42, OpKind::kAllReduce, 1 << 20, DataType::kFloat32, OpState::kRunning, 10.0);
  const OpRecord done =
      Rec(41, 41, OpKind::kAllReduce, 1 << 20, DataType::kFloat32, OpState::kCompleted, 9.0);
  std::vector<RankRecords> ranks = {Rank(0, 2, 12.0, {done, stuck}), Rank(1, 3, 12.0, {done})};
  TimeoutDiagnosis d = DiagnoseTimeout("tp", stuck, ranks);
  EXPECT_EQ(d.summary,
            "timeout on axis 'tp' (group [2, 3]): rank 3 never entered all_reduce #42 (4 MiB "
            "float32); rank 2 waits in it since 2.0 s");
  EXPECT_THAT(d.culprits, ElementsAre(3));
  EXPECT_EQ(d.seq, 42u);
  // What the missing rank waits in instead, when its process said.
  ranks[1].blocked_in = "all_reduce #11 (8 B int64) on axis 'world' since 1.0 s";
  EXPECT_THAT(DiagnoseTimeout("tp", stuck, ranks).summary,
              HasSubstr("rank 3 never entered all_reduce #42 (4 MiB float32) (it waits in "
                        "all_reduce #11 (8 B int64) on axis 'world' since 1.0 s)"));
}

// Ranks line up by collective sequence number: point-to-point calls in between (here rank 0 sent
// twice) do not make them look mismatched.
TEST(DiagnoseTimeoutTest, LinesUpCollectivesAcrossPointToPointTraffic) {
  const OpRecord stuck_on_0 =
      Rec(5, 3, OpKind::kAllGather, 2, DataType::kInt64, OpState::kRunning, 1.0);
  const OpRecord stuck_on_1 =
      Rec(3, 3, OpKind::kAllGather, 2, DataType::kInt64, OpState::kRunning, 1.5);
  std::vector<RankRecords> ranks = {
      Rank(
          0, -1, 3.0,
          {Rec(3, 0, OpKind::kSend, 1, DataType::kInt64, OpState::kCompleted, 0.5, 1),
           Rec(4, 0, OpKind::kSend, 1, DataType::kInt64, OpState::kCompleted, 0.6, 2), stuck_on_0}),
      Rank(
          1, -1, 3.0,
          {Rec(2, 2, OpKind::kBarrier, 1, DataType::kUint8, OpState::kCompleted, 0.1), stuck_on_1}),
      Rank(2, -1, 3.0,
           {Rec(2, 2, OpKind::kBarrier, 1, DataType::kUint8, OpState::kCompleted, 0.1)})};
  TimeoutDiagnosis d = DiagnoseTimeout("dp", stuck_on_0, ranks);
  EXPECT_EQ(d.summary,
            "timeout on axis 'dp' (group [0, 1, 2]): rank 2 never entered all_gather #5 (16 B "
            "int64); ranks 0, 1 wait in it since 2.0 s");
  EXPECT_THAT(d.culprits, ElementsAre(2));
}

TEST(DiagnoseTimeoutTest, NamesAMismatchAtTheSameSequenceNumber) {
  const OpRecord stuck =
      Rec(8, 8, OpKind::kAllReduce, 8, DataType::kFloat32, OpState::kRunning, 1.0);
  const OpRecord other_count =
      Rec(8, 8, OpKind::kAllReduce, 4, DataType::kFloat32, OpState::kRunning, 1.0);
  const OpRecord other_op =
      Rec(8, 8, OpKind::kBroadcast, 8, DataType::kFloat32, OpState::kRunning, 1.0, 0);
  std::vector<RankRecords> ranks = {Rank(0, 4, 2.0, {stuck}), Rank(1, 5, 2.0, {other_count}),
                                    Rank(2, 6, 2.0, {other_op})};
  TimeoutDiagnosis d = DiagnoseTimeout("dp_shard", stuck, ranks);
  EXPECT_EQ(d.summary,
            "timeout on axis 'dp_shard' (group [4, 5, 6]): rank 5 called all_reduce #8 (16 B "
            "float32) instead (mismatch); rank 6 called broadcast #8 (32 B float32, root 0) "
            "instead (mismatch); rank 4 waits in all_reduce #8 (32 B float32) since 1.0 s");
  EXPECT_THAT(d.culprits, ElementsAre(5, 6));
}

TEST(DiagnoseTimeoutTest, ReportsRanksThatDidNotAnswerAsStoppedOrDead) {
  const OpRecord stuck = Rec(2, 2, OpKind::kBarrier, 1, DataType::kUint8, OpState::kRunning, 0.0);
  std::vector<RankRecords> ranks = {Rank(0, 0, 1.0, {stuck}), Rank(1, 1, 1.0, {stuck}),
                                    Silent(2, 2), Rank(3, 3, 1.0, {stuck})};
  TimeoutDiagnosis d = DiagnoseTimeout("world", stuck, ranks);
  EXPECT_EQ(d.summary,
            "timeout on axis 'world' (group [0, 1, 2, 3]): rank 2 did not answer: stopped or "
            "dead; ranks 0, 1, 3 wait in barrier #2 since 1.0 s");
  EXPECT_THAT(d.culprits, ElementsAre(2));
}

TEST(DiagnoseTimeoutTest, NamesThePeerOfAStuckReceive) {
  const OpRecord stuck = Rec(11, 0, OpKind::kRecv, 1, DataType::kUint64, OpState::kRunning, 0.0, 2);
  RankRecords peer = Rank(
      2, 2, 1.0, {Rec(10, 10, OpKind::kAllReduce, 1, DataType::kInt64, OpState::kCompleted, 0.0)});
  peer.blocked_in = "all_gather #1 (8 B int64) on axis 'tp' since 1.0 s";
  std::vector<RankRecords> ranks = {Rank(0, 0, 1.0, {stuck}), Rank(1, 1, 1.0, {}), peer};
  TimeoutDiagnosis d = DiagnoseTimeout("world", stuck, ranks);
  EXPECT_EQ(d.summary,
            "timeout on axis 'world' (group [0, 1, 2]): rank 0 waits in recv #11 (8 B uint64, "
            "from 2) since 1.0 s; rank 2 is in no operation on this axis: it waits in all_gather "
            "#1 (8 B int64) on axis 'tp' since 1.0 s");
  EXPECT_THAT(d.culprits, ElementsAre(2));
  ranks[2] = Silent(2, 2);
  EXPECT_THAT(DiagnoseTimeout("world", stuck, ranks).summary,
              HasSubstr("rank 2 did not answer: stopped or dead"));
}

TEST(DiagnoseTimeoutTest, SaysSoWhenEveryRankEntered) {
  const OpRecord stuck = Rec(1, 1, OpKind::kAllToAll, 4, DataType::kInt8, OpState::kRunning, 0.0);
  TimeoutDiagnosis d =
      DiagnoseTimeout("ep", stuck, {Rank(0, -1, 3.0, {stuck}), Rank(1, -1, 3.0, {stuck})});
  EXPECT_THAT(d.summary, HasSubstr("ranks 0, 1 wait in all_to_all #1 (4 B int8) since 3.0 s; "
                                   "every rank entered all_to_all #1"));
  EXPECT_TRUE(d.culprits.empty());
}

// Where one rank's process stands on one communicator (TraceWaits' input).
AxisProgress Axis(std::string name, uint64_t group, std::vector<int64_t> members, uint64_t entered,
                  OpRecord waiting = {}) {
  return {std::move(name), group, std::move(members), entered, waiting};
}

RankRecords WithAxes(RankRecords r, std::vector<AxisProgress> axes) {
  r.axes = std::move(axes);
  return r;
}

// Four ranks, tp groups [0, 1] and [2, 3] (group ids 10, 11), world group id 1. Rank 3 skipped
// tp's all_gather #1 and went on to the world's all_reduce (its 5th collective), where 0 and 1
// wait too; rank 2 waits for rank 3 in the all_gather.
std::vector<RankRecords> SkippedTpCollective() {
  const std::vector<int64_t> world = {0, 1, 2, 3};
  const OpRecord gather = Rec(1, 1, OpKind::kAllGather, 1, DataType::kInt64, OpState::kRunning, 1);
  const OpRecord reduce = Rec(5, 5, OpKind::kAllReduce, 1, DataType::kInt64, OpState::kRunning, 1);
  return {
      WithAxes(Rank(0, 0, 2, {}), {Axis("world", 1, world, 5, reduce), Axis("tp", 10, {0, 1}, 1)}),
      WithAxes(Rank(1, 1, 2, {}), {Axis("world", 1, world, 5, reduce), Axis("tp", 10, {0, 1}, 1)}),
      WithAxes(Rank(2, 2, 2, {}), {Axis("world", 1, world, 4), Axis("tp", 11, {2, 3}, 1, gather)}),
      WithAxes(Rank(3, 3, 2, {}), {Axis("world", 1, world, 5, reduce), Axis("tp", 11, {2, 3}, 0)}),
  };
}

TEST(TraceWaitsTest, FollowsAWaitAcrossAxesToACycle) {
  EXPECT_EQ(TraceWaits(SkippedTpCollective()),
            "rank 2 waits in all_gather #1 (8 B int64) on axis 'tp' (group [2, 3]), which rank 3 "
            "never entered; rank 3 waits in all_reduce #5 (8 B int64) on axis 'world' (group [0, "
            "1, 2, 3]), which rank 2 never entered: a cycle, each waiting for the next "
            "(collectives called in different orders, or one skipped)");
}

TEST(TraceWaitsTest, ReportsRanksThatWaitForOneAnotherOnce) {
  // One tp group of four: ranks 0, 1, 2 wait for rank 3 in all_gather #1, which waits for them
  // in the world's all_reduce #5. Three cycles through rank 3, one set of ranks: one ending.
  const std::vector<int64_t> all = {0, 1, 2, 3};
  const OpRecord gather = Rec(1, 1, OpKind::kAllGather, 1, DataType::kInt64, OpState::kRunning, 1);
  const OpRecord reduce = Rec(5, 5, OpKind::kAllReduce, 1, DataType::kInt64, OpState::kRunning, 1);
  std::vector<RankRecords> ranks;
  for (int r = 0; r < 3; ++r) {
    ranks.push_back(
        WithAxes(Rank(r, r, 2, {}), {Axis("world", 1, all, 4), Axis("tp", 10, all, 1, gather)}));
  }
  ranks.push_back(
      WithAxes(Rank(3, 3, 2, {}), {Axis("world", 1, all, 5, reduce), Axis("tp", 10, all, 0)}));
  EXPECT_EQ(TraceWaits(ranks),
            "rank 3 waits in all_reduce #5 (8 B int64) on axis 'world' (group [0, 1, 2, 3]), "
            "which ranks 0, 1, 2 never entered; rank 0 waits in all_gather #1 (8 B int64) on axis "
            "'tp' (group [0, 1, 2, 3]), which rank 3 never entered: a cycle, each waiting for the "
            "next (collectives called in different orders, or one skipped)");
}

TEST(TraceWaitsTest, MatchesGroupsByIdWhenMembersAreNotListed) {
  std::vector<RankRecords> ranks = SkippedTpCollective();
  for (RankRecords& r : ranks) {
    for (AxisProgress& a : r.axes) a.members.clear();
  }
  EXPECT_EQ(TraceWaits(ranks),
            "rank 2 waits in all_gather #1 (8 B int64) on axis 'tp', which rank 3 never entered; "
            "rank 3 waits in all_reduce #5 (8 B int64) on axis 'world', which rank 2 never "
            "entered: a cycle, each waiting for the next (collectives called in different "
            "orders, or one skipped)");
}

TEST(TraceWaitsTest, EndsAtARankThatDidNotAnswer) {
  const OpRecord reduce =
      Rec(3, 3, OpKind::kAllReduce, 1 << 20, DataType::kFloat32, OpState::kRunning, 1);
  EXPECT_EQ(
      TraceWaits({WithAxes(Rank(0, 4, 2, {}), {Axis("tp", 7, {4, 5}, 3, reduce)}), Silent(1, 5)}),
      "rank 4 waits in all_reduce #3 (4 MiB float32) on axis 'tp' (group [4, 5]), for "
      "which rank 5 did not answer (stopped or dead)");
}

TEST(TraceWaitsTest, EndsAtARankThatWaitsInNothingWatched) {
  const OpRecord reduce = Rec(3, 3, OpKind::kAllReduce, 2, DataType::kInt32, OpState::kRunning, 1);
  RankRecords idle = WithAxes(Rank(1, 1, 2, {}), {Axis("tp", 7, {0, 1}, 2)});
  EXPECT_EQ(TraceWaits({WithAxes(Rank(0, 0, 2, {}), {Axis("tp", 7, {0, 1}, 3, reduce)}), idle}),
            "rank 0 waits in all_reduce #3 (8 B int32) on axis 'tp' (group [0, 1]), which rank 1 "
            "never entered; rank 1 waits in no watched operation");
  idle.blocked_in = "recv #4 (8 B int64, from 3) on axis 'pp' since 1.0 s";
  EXPECT_EQ(TraceWaits({WithAxes(Rank(0, 0, 2, {}), {Axis("tp", 7, {0, 1}, 3, reduce)}), idle}),
            "rank 0 waits in all_reduce #3 (8 B int32) on axis 'tp' (group [0, 1]), which rank 1 "
            "never entered; rank 1 waits in recv #4 (8 B int64, from 3) on axis 'pp' since 1.0 s");
}

TEST(TraceWaitsTest, FollowsAReceiveToItsPeerAndShortensLongGroups) {
  std::vector<int64_t> world(16);
  for (int64_t r = 0; r < 16; ++r) world[static_cast<size_t>(r)] = r;
  const OpRecord recv = Rec(9, 0, OpKind::kRecv, 1, DataType::kUint64, OpState::kRunning, 1, 2);
  EXPECT_EQ(TraceWaits({WithAxes(Rank(0, 0, 2, {}), {Axis("world", 1, world, 8, recv)}),
                        WithAxes(Rank(2, 2, 2, {}), {Axis("world", 1, world, 8)})}),
            "rank 0 waits in recv #9 (8 B uint64, from 2) on axis 'world' (group [0, 1, 2, 3, "
            "..., 15] (16 ranks)), which rank 2 does not match; rank 2 waits in no watched "
            "operation");
}

TEST(TraceWaitsTest, NothingToFollow) {
  EXPECT_EQ(TraceWaits({}), "");
  // Records without axes (a backend that does not send them), and a wait every member entered.
  EXPECT_EQ(TraceWaits({Rank(0, 0, 2, {}), Silent(1, 1)}), "");
  const OpRecord reduce = Rec(3, 3, OpKind::kAllReduce, 2, DataType::kInt32, OpState::kRunning, 1);
  EXPECT_EQ(TraceWaits({WithAxes(Rank(0, 0, 2, {}), {Axis("tp", 7, {0, 1}, 3, reduce)}),
                        WithAxes(Rank(1, 1, 2, {}), {Axis("tp", 7, {0, 1}, 3, reduce)})}),
            "");
}

TEST(FlightRecordJsonTest, WritesEveryRanksRecords) {
  const OpRecord stuck =
      Rec(4, 4, OpKind::kReduceScatter, 3, DataType::kBFloat16, OpState::kRunning, 1.0);
  const std::string text =
      FlightRecordJson("tp", 2, "the diagnosis", {Rank(0, 2, 2.0, {stuck}), Silent(1, 3)});
  const nlohmann::json json = nlohmann::json::parse(text);
  EXPECT_EQ(json["version"], kFlightRecordJsonVersion);  // readers can tell the format
  EXPECT_EQ(json["axis"], "tp");
  EXPECT_EQ(json["reporting_rank"], 2);
  EXPECT_EQ(json["diagnosis"], "the diagnosis");
  ASSERT_EQ(json["ranks"].size(), 2u);
  EXPECT_EQ(json["ranks"][0]["global_rank"], 2);
  EXPECT_EQ(json["ranks"][0]["records"][0]["op"], "reduce_scatter");
  EXPECT_EQ(json["ranks"][0]["records"][0]["seq"], 4);
  EXPECT_EQ(json["ranks"][0]["records"][0]["count"], 3);
  EXPECT_EQ(json["ranks"][0]["records"][0]["datatype"], "bfloat16");
  EXPECT_EQ(json["ranks"][0]["records"][0]["state"], "running");
  EXPECT_EQ(json["ranks"][1]["answered"], false);
  EXPECT_TRUE(json["ranks"][1]["records"].empty());
  EXPECT_EQ(json["trace"], "");
}

TEST(FlightRecordJsonTest, WritesTheTraceAndEachRanksAxes) {
  const std::vector<RankRecords> ranks = SkippedTpCollective();
  const nlohmann::json json =
      nlohmann::json::parse(FlightRecordJson("tp", 2, "the diagnosis", ranks, "the trace"));
  EXPECT_EQ(json["trace"], "the trace");
  const nlohmann::json& axes = json["ranks"][2]["axes"];
  ASSERT_EQ(axes.size(), 2u);
  EXPECT_EQ(axes[0]["axis"], "world");
  EXPECT_EQ(axes[0]["entered"], 4);
  EXPECT_TRUE(axes[0]["waiting"].is_null());
  EXPECT_EQ(axes[1]["axis"], "tp");
  EXPECT_EQ(axes[1]["group"], "0x000000000000000b");
  EXPECT_EQ(axes[1]["members"], nlohmann::json({2, 3}));
  EXPECT_EQ(axes[1]["waiting"]["op"], "all_gather");
  EXPECT_EQ(axes[1]["waiting"]["seq"], 1);
}

TEST(FlightRecordJsonTest, AnUnwritableDirectoryIsAnErrorNamingThePath) {
  TimeoutReport report;
  report.axis = "tp";
  report.global_rank = 5;
  EXPECT_THAT(WriteFlightRecord("/nonexistent/dir", report),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("cannot write '/nonexistent/dir/nmesh_flight_rank5.json'")));
}

// A link planted where the dump goes is not followed (its target is left as it was), and an
// existing dump is not truncated: both are errors naming the path.
TEST(FlightRecordJsonTest, NeverFollowsALinkOrOverwritesAFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("nmesh_flight_link_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path victim = dir / "victim.txt";
  { std::ofstream(victim) << "precious"; }
  std::filesystem::create_symlink(victim, dir / "nmesh_flight_rank5.json");
  TimeoutReport report;
  report.axis = "tp";
  report.global_rank = 5;
  EXPECT_THAT(WriteFlightRecord(dir.string(), report),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("a symbolic link")));
  std::stringstream kept;
  kept << std::ifstream(victim).rdbuf();
  EXPECT_EQ(kept.str(), "precious");

  report.global_rank = 6;
  ASSERT_OK(WriteFlightRecord(dir.string(), report).status());
  EXPECT_THAT(WriteFlightRecord(dir.string(), report),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("nmesh_flight_rank6.json': a file already exists")));
  std::filesystem::remove_all(dir);
}

// What a communicator records: every operation that communicates, with its arguments, in order;
// zero-count collectives are not recorded; a failed operation is recorded as failed.
TEST(CommunicatorRecordingTest, RecordsEachOperation) {
  std::unique_ptr<Communicator> self =
      NewSelfCommunicator({.name = "tp", .flight_recorder_entries = 4});
  std::vector<float> a(6, 1.0f), b(6);
  ASSERT_OK(self->AllReduce<float>(a, absl::MakeSpan(b), ReduceOp::kSum));
  ASSERT_OK(self->AllReduce<float>({}, {}, ReduceOp::kSum));  // zero count: not recorded
  ASSERT_OK(self->Broadcast<float>(absl::MakeSpan(b), 0));
  ASSERT_OK_AND_ASSIGN(Work work, self->AllGatherAsync<float>(a, absl::MakeSpan(b)));
  ASSERT_OK(work.Wait());
  // A receive nobody sent: the self communicator fails it at once.
  EXPECT_FALSE(self->Recv<float>(absl::MakeSpan(b), 0).ok());
  std::shared_ptr<const FlightRecorder> recorder = self->flight_recorder();
  EXPECT_EQ(recorder->capacity(), 4u);
  const std::vector<OpRecord> records = recorder->Snapshot();
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].op, OpKind::kAllReduce);
  EXPECT_EQ(records[0].count, 6);
  EXPECT_EQ(records[0].type, DataType::kFloat32);
  EXPECT_EQ(records[0].state, OpState::kCompleted);
  EXPECT_EQ(records[1].op, OpKind::kBroadcast);
  EXPECT_EQ(records[1].peer, 0);
  EXPECT_EQ(records[2].op, OpKind::kAllGather);
  EXPECT_EQ(records[2].state, OpState::kCompleted);
  EXPECT_EQ(records[3].op, OpKind::kRecv);
  EXPECT_EQ(records[3].state, OpState::kFailed);
  EXPECT_THAT(Seqs(records), ElementsAre(1u, 2u, 3u, 4u));
  // The self communicator is not watched: no deadline, even with a timeout.
  EXPECT_EQ(records[0].deadline_ns, 0);
}

TEST(SetTimeoutTest, ChangesTheTimeoutAndRejectsUnusableOnes) {
  std::unique_ptr<Communicator> self = NewSelfCommunicator({.name = "tp"});
  EXPECT_EQ(self->options().timeout, kDefaultTimeout);
  ASSERT_OK(self->SetTimeout(absl::Seconds(30)));
  EXPECT_EQ(self->options().timeout, absl::Seconds(30));
  for (absl::Duration bad : {absl::ZeroDuration(), absl::Seconds(-1), absl::InfiniteDuration(),
                             -absl::InfiniteDuration(), absl::Seconds(1e-300)}) {
    EXPECT_THAT(self->SetTimeout(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("the timeout of axis 'tp' must be a positive, finite "
                                   "duration")));
    EXPECT_EQ(self->options().timeout, absl::Seconds(30)) << "unchanged after a rejected value";
  }
  ASSERT_OK(self->SetTimeout(std::nullopt));
  EXPECT_FALSE(self->options().timeout.has_value());
  ASSERT_OK(self->Abort());
  EXPECT_THAT(self->SetTimeout(absl::Seconds(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("aborted")));
}

}  // namespace
}  // namespace nmesh::comm
