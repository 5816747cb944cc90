// The bench engine's pure parts: op names, the sweep, bus-bandwidth factors, axis selection
// (against partitions computed by brute force), the config check, and the buffers and result
// check of every op, all_to_all_v's uneven pattern included (expected layouts written out here from
// the pattern's definition, and an all_to_all_v simulated on the host from them). The collective
// part runs under mpirun: perf_mpi_test.cc.
#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/perf/bench.h"
#include "nmesh/perf/check.h"
#include "nmesh/tests/mesh/brute_force.h"

namespace nmesh::perf {
namespace {

using ::nmesh::mesh::testing::BruteMesh;
using ::nmesh::mesh::testing::BrutePartition;
using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P(IsOkAndHolds, value, "is OK and holds " + ::testing::PrintToString(value)) {
  return arg.ok() && *arg == value;
}

// The bench's memory check sums what the ranks sharing a host need: 16 ranks of 4 GiB each passed
// on a 24 GiB machine (each rank compared alone), then filled their buffers until killed.
TEST(CheckHostMemoryTest, SumsTheRanksSharingAHost) {
  constexpr uint64_t kGiB = uint64_t{1} << 30;
  std::vector<RankMemory> one_host(16, {.host = 7, .bytes = 4 * kGiB, .physical = 24 * kGiB});
  EXPECT_THAT(CheckHostMemory(one_host, 512 << 20),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("needs 68719476736 bytes of host memory on the host of ranks "
                                 "0..15 (16 ranks, up to 4294967296 bytes each")));
  // The same ranks over 4 hosts: 16 GiB each, which fits.
  std::vector<RankMemory> four_hosts = one_host;
  for (size_t r = 0; r < four_hosts.size(); ++r) four_hosts[r].host = r % 4;
  EXPECT_OK(CheckHostMemory(four_hosts, 512 << 20));
  // Exactly full fits; one byte more does not, and names that host's lowest rank.
  std::vector<RankMemory> full(6, {.host = 1, .bytes = 4 * kGiB, .physical = 24 * kGiB});
  EXPECT_OK(CheckHostMemory(full, 1));
  full.push_back({.host = 2, .bytes = 1, .physical = 24 * kGiB});
  full.push_back({.host = 1, .bytes = 1, .physical = 24 * kGiB});
  EXPECT_THAT(CheckHostMemory(full, 1),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("ranks 0..7 (7 ranks")));
  // One rank alone over its host, and sums that would overflow 64 bits.
  EXPECT_THAT(CheckHostMemory({{.host = 3, .bytes = 25 * kGiB, .physical = 24 * kGiB}}, 1),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("host of rank 0 (1 rank,")));
  std::vector<RankMemory> huge(3, {.host = 3, .bytes = UINT64_MAX / 2, .physical = 24 * kGiB});
  EXPECT_THAT(CheckHostMemory(huge, 1), StatusIs(absl::StatusCode::kResourceExhausted,
                                                 HasSubstr("18446744073709551615 bytes")));
  EXPECT_OK(CheckHostMemory({}, 1));
}

TEST(SweepSizesTest, MultipliesFromMinToMaxInclusive) {
  BenchConfig config;
  config.min_bytes = 8;
  config.max_bytes = 64 * 1024;
  config.factor = 2;
  std::vector<uint64_t> expected;
  for (uint64_t s = 8; s <= 64 * 1024; s *= 2) expected.push_back(s);
  EXPECT_EQ(SweepSizes(config), expected);
  EXPECT_EQ(expected.size(), 14u);

  config.min_bytes = 3;
  config.max_bytes = 100;
  config.factor = 3;
  EXPECT_THAT(SweepSizes(config), ElementsAre(3, 9, 27, 81));

  config.min_bytes = config.max_bytes = 5;
  EXPECT_THAT(SweepSizes(config), ElementsAre(5));

  // Stops before overflowing.
  config.min_bytes = 1;
  config.max_bytes = ~uint64_t{0};
  config.factor = int64_t{1} << 20;
  EXPECT_THAT(SweepSizes(config),
              ElementsAre(uint64_t{1}, uint64_t{1} << 20, uint64_t{1} << 40, uint64_t{1} << 60));
}

TEST(BusBandwidthFactorTest, FollowsNcclTests) {
  for (int64_t n : {1, 2, 3, 8, 64}) {
    const double d = static_cast<double>(n);
    EXPECT_DOUBLE_EQ(BusBandwidthFactor(BenchOp::kAllReduce, n), 2 * (d - 1) / d) << n;
    EXPECT_DOUBLE_EQ(BusBandwidthFactor(BenchOp::kAllGather, n), (d - 1) / d) << n;
    EXPECT_DOUBLE_EQ(BusBandwidthFactor(BenchOp::kReduceScatter, n), (d - 1) / d) << n;
    EXPECT_DOUBLE_EQ(BusBandwidthFactor(BenchOp::kAllToAll, n), (d - 1) / d) << n;
    EXPECT_DOUBLE_EQ(BusBandwidthFactor(BenchOp::kAllToAllV, n), (d - 1) / d) << n;
    EXPECT_DOUBLE_EQ(BusBandwidthFactor(BenchOp::kBroadcast, n), 1.0) << n;
  }
}

TEST(BenchOpTest, NamesRoundTrip) {
  EXPECT_THAT(AllBenchOps(),
              ElementsAre(BenchOp::kAllReduce, BenchOp::kAllGather, BenchOp::kReduceScatter,
                          BenchOp::kBroadcast, BenchOp::kAllToAll, BenchOp::kAllToAllV));
  std::set<std::string> names;
  for (BenchOp op : AllBenchOps()) {
    EXPECT_THAT(ParseBenchOp(BenchOpName(op)), IsOkAndHolds(op));
    names.insert(std::string(BenchOpName(op)));
  }
  EXPECT_EQ(names.size(), AllBenchOps().size());
  EXPECT_EQ(BenchOpName(BenchOp::kAllToAllV), "all_to_all_v");
  EXPECT_THAT(ParseBenchOp("allreduce"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown collective 'allreduce'; expected all_reduce, all_gather, "
                                 "reduce_scatter, broadcast, all_to_all, all_to_all_v")));
}

mesh::MeshPlan Plan(int64_t world, int64_t tp, int64_t cp, int64_t ep = 1) {
  config::MeshRequest request;
  request.sizes.world_size = world;
  request.sizes.tp = tp;
  request.sizes.cp = cp;
  request.sizes.ep = ep;
  absl::StatusOr<mesh::MeshPlan> plan = mesh::PlanMesh(request);
  EXPECT_THAT(plan.status(), IsOk());
  return *std::move(plan);
}

// Sets of group names that split the ranks alike, with more than one rank per group, computed by
// brute force over the FSDP2 mesh (pp, dp_replicate, dp_shard, cp, tp).
std::set<std::set<std::string>> BruteKinds(const std::vector<int64_t>& shape) {
  const BruteMesh brute{shape, {}};
  const std::map<std::string, std::vector<bool>> groups =
      ::nmesh::mesh::testing::Fsdp2NamedGroups();
  std::map<std::vector<std::vector<int64_t>>, std::set<std::string>> by_partition;
  for (const auto& [name, axes] : groups) {
    by_partition[BrutePartition(brute, axes)].insert(name);
  }
  std::set<std::set<std::string>> kinds;
  for (const auto& [partition, names] : by_partition) {
    if (partition.front().size() > 1) kinds.insert(names);
  }
  return kinds;
}

std::set<std::set<std::string>> NameSets(const std::vector<mesh::GroupKind>& kinds) {
  std::set<std::set<std::string>> sets;
  for (const mesh::GroupKind& kind : kinds) {
    sets.insert(std::set<std::string>(kind.names.begin(), kind.names.end()));
  }
  return sets;
}

TEST(SelectBenchAxesTest, DefaultIsEveryKindWithMoreThanOneRankPerGroup) {
  for (const auto& [tp, cp] :
       std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {1, 1}, {8, 1}, {2, 4}, {1, 2}}) {
    const mesh::MeshPlan plan = Plan(16, tp, cp);
    ASSERT_OK_AND_ASSIGN(std::vector<mesh::GroupKind> kinds, SelectBenchAxes(plan, {}));
    EXPECT_EQ(NameSets(kinds), BruteKinds({1, 1, 16 / (tp * cp), cp, tp})) << tp << " " << cp;
    for (const mesh::GroupKind& kind : kinds) EXPECT_GT(kind.group_size, 1);
  }
}

TEST(SelectBenchAxesTest, AxesPickTheKindsNamingThem) {
  const mesh::MeshPlan plan = Plan(8, 2, 2);
  const std::vector<std::string> axes = {"dp", "tp", "dp_shard"};
  ASSERT_OK_AND_ASSIGN(std::vector<mesh::GroupKind> kinds, SelectBenchAxes(plan, axes));
  EXPECT_EQ(NameSets(kinds), (std::set<std::set<std::string>>{{"dp_shard", "dp"}, {"tp"}}));
  // A trivial kind may be asked for explicitly.
  const std::vector<std::string> pp = {"pp"};
  ASSERT_OK_AND_ASSIGN(kinds, SelectBenchAxes(plan, pp));
  ASSERT_EQ(kinds.size(), 1u);
  EXPECT_EQ(kinds[0].group_size, 1);
}

TEST(SelectBenchAxesTest, MoeAxesAreKindsToo) {
  const mesh::MeshPlan plan = Plan(8, 2, 1, /*ep=*/4);
  const std::vector<std::string> axes = {"ep", "ep_shard"};
  ASSERT_OK_AND_ASSIGN(std::vector<mesh::GroupKind> kinds, SelectBenchAxes(plan, axes));
  ASSERT_EQ(kinds.size(), 2u);
  EXPECT_EQ(kinds[0].names.front(), "ep_shard");
  EXPECT_EQ(kinds[0].group_size, 2);
  EXPECT_EQ(kinds[1].names.front(), "ep");
  EXPECT_EQ(kinds[1].group_size, 4);
}

TEST(SelectBenchAxesTest, UnknownAxisNamesTheMeshAxes) {
  const mesh::MeshPlan plan = Plan(8, 2, 2);
  const std::vector<std::string> axes = {"tp", "ring"};
  EXPECT_THAT(SelectBenchAxes(plan, axes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown axis 'ring'; this mesh has pp, ")));
}

TEST(ValidateBenchConfigTest, NamesTheBadField) {
  EXPECT_THAT(ValidateBenchConfig(BenchConfig{}), IsOk());
  for (const BenchConfig& bad :
       {BenchConfig{.factor = 1}, BenchConfig{.iters = 0}, BenchConfig{.warmup = -1},
        BenchConfig{.min_bytes = 0}, BenchConfig{.min_bytes = 64, .max_bytes = 8}}) {
    EXPECT_THAT(ValidateBenchConfig(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad BenchConfig")));
  }
}

// nccl-tests' conventions for the even ops, from the requested size alone.
TEST(ShapeOfTest, EvenOpsFollowNcclTests) {
  const uint64_t bytes = 4096 + 12;  // 1027 elements
  EXPECT_EQ(ShapeOf(BenchOp::kAllReduce, bytes, 4).count, 1027u);
  EXPECT_EQ(ShapeOf(BenchOp::kAllReduce, bytes, 4).bytes(), 4108u);
  EXPECT_EQ(ShapeOf(BenchOp::kBroadcast, bytes, 4).send, 0u);
  const CallShape gather = ShapeOf(BenchOp::kAllGather, bytes, 4);
  EXPECT_EQ(gather.count, 256u);
  EXPECT_EQ(gather.recv, 1024u);
  EXPECT_EQ(gather.bytes(), 4096u);
  const CallShape scatter = ShapeOf(BenchOp::kReduceScatter, bytes, 4);
  EXPECT_EQ(scatter.count, 256u);
  EXPECT_EQ(scatter.send, 1024u);
  const CallShape a2a = ShapeOf(BenchOp::kAllToAll, bytes, 4);
  EXPECT_EQ(a2a.count, 256u);
  EXPECT_EQ(a2a.send, 1024u);
  EXPECT_EQ(a2a.recv, 1024u);
  EXPECT_EQ(ShapeOf(BenchOp::kAllToAll, 12, 4).count, 0u);  // skipped: no element per rank
}

// all_to_all_v over n ranks, written out from the pattern: s sends unit * ((s + d) mod n) to d
// (one unit to itself when n == 1), blocks back to back in peer order.
struct Layout {
  uint64_t unit = 0;
  std::vector<std::vector<size_t>> counts;  // counts[s][d]
  size_t Count(int64_t s, int64_t d) const {
    return counts[static_cast<size_t>(s)][static_cast<size_t>(d)];
  }
};

Layout ExpectedLayout(uint64_t elements, int64_t n) {
  const uint64_t units = n == 1 ? 1 : static_cast<uint64_t>(n * (n - 1) / 2);
  Layout layout;
  layout.unit = elements / units;
  layout.counts.assign(static_cast<size_t>(n), std::vector<size_t>(static_cast<size_t>(n)));
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t d = 0; d < n; ++d) {
      layout.counts[static_cast<size_t>(s)][static_cast<size_t>(d)] =
          layout.unit * (n == 1 ? 1 : static_cast<uint64_t>((s + d) % n));
    }
  }
  return layout;
}

TEST(ShapeOfTest, AllToAllVIsUnevenAndBalanced) {
  for (int64_t n : {1, 2, 3, 4, 8}) {
    for (uint64_t bytes : {uint64_t{8}, uint64_t{100}, uint64_t{4096}, uint64_t{1} << 20}) {
      SCOPED_TRACE(::testing::Message() << "n " << n << " bytes " << bytes);
      const Layout want = ExpectedLayout(bytes / 4, n);
      for (int64_t r = 0; r < n; ++r) {
        const CallShape shape = ShapeOf(BenchOp::kAllToAllV, bytes, n, r);
        EXPECT_EQ(shape.unit, want.unit);
        // Send: peer order. Receive: reverse peer order after a gap, the smallest positive one
        // that puts no non-empty block at its send displacement (found by trying each).
        std::vector<size_t> send_displs(static_cast<size_t>(n)), packed(send_displs.size());
        size_t sent = 0, received = 0;
        for (int64_t p = 0; p < n; ++p) {
          send_displs[static_cast<size_t>(p)] = sent;
          sent += want.Count(r, p);
        }
        for (int64_t p = n - 1; p >= 0; --p) {
          packed[static_cast<size_t>(p)] = received;
          received += want.Count(p, r);
        }
        size_t gap = 1;
        for (bool clash = true; clash; gap += clash ? 1 : 0) {
          clash = false;
          for (int64_t p = 0; p < n; ++p) {
            const size_t up = static_cast<size_t>(p);
            if (want.Count(p, r) > 0 && packed[up] + gap == send_displs[up]) clash = true;
          }
        }
        EXPECT_EQ(shape.recv_gap, gap);
        for (int64_t p = 0; p < n; ++p) {
          const size_t up = static_cast<size_t>(p);
          EXPECT_EQ(shape.send_counts[up], want.Count(r, p));
          EXPECT_EQ(shape.recv_counts[up], want.Count(p, r));
          EXPECT_EQ(shape.send_displs[up], send_displs[up]);
          EXPECT_EQ(shape.recv_displs[up], gap + packed[up]);
          if (want.Count(p, r) > 0) {
            EXPECT_NE(shape.recv_displs[up], shape.send_displs[up]) << p;
          }
        }
        // Every rank sends and receives the same total: the count, the send buffer and the
        // output after its gap (the size column).
        EXPECT_EQ(shape.count, sent);
        EXPECT_EQ(shape.send, sent);
        EXPECT_EQ(shape.recv, gap + received);
        EXPECT_EQ(shape.bytes(), sent * 4);
        EXPECT_LE(shape.bytes(), bytes);
        if (n > 1 && want.unit > 0) {
          // Uneven: one peer gets nothing, another (n-1) units.
          const auto& row = shape.send_counts;
          EXPECT_EQ(*std::min_element(row.begin(), row.end()), 0u);
          EXPECT_EQ(*std::max_element(row.begin(), row.end()),
                    want.unit * static_cast<uint64_t>(n - 1));
        }
      }
    }
  }
  EXPECT_EQ(ShapeOf(BenchOp::kAllToAllV, 8, 8).count, 0u);  // 2 elements, 28 units: skipped
}

// Every op's check, against outputs computed here from the op's definition over known inputs:
// correct outputs count 0, each corrupted element counts 1.
TEST(CountWrongTest, CorrectOutputsPassAndEveryCorruptionCounts) {
  const int64_t n = 4;
  const uint64_t bytes = 4 * 1000;
  for (BenchOp op : AllBenchOps()) {
    SCOPED_TRACE(std::string(BenchOpName(op)));
    std::vector<CallShape> shapes;
    std::vector<std::vector<float>> send(n), recv(n);
    for (int64_t r = 0; r < n; ++r) {
      shapes.push_back(ShapeOf(op, bytes, n, r));
      send[r].resize(shapes[r].send);
      recv[r].resize(shapes[r].recv);
      FillInputs(op, shapes[r], r, absl::MakeSpan(send[r]), absl::MakeSpan(recv[r]));
    }
    const uint64_t c = shapes[0].count;
    const Layout layout = ExpectedLayout(bytes / 4, n);
    for (int64_t me = 0; me < n; ++me) {
      std::vector<float>& out = recv[me];
      for (size_t k = 0; k < out.size(); ++k) {
        double sum = 0;
        switch (op) {
          case BenchOp::kAllReduce:
            for (int64_t r = 0; r < n; ++r) sum += send[r][k];
            out[k] = static_cast<float>(sum);
            break;
          case BenchOp::kBroadcast:
            out[k] = recv[0][k];
            break;
          case BenchOp::kAllGather:
            out[k] = send[k / c][k % c];
            break;
          case BenchOp::kReduceScatter:
            for (int64_t r = 0; r < n; ++r) sum += send[r][me * c + k];
            out[k] = static_cast<float>(sum);
            break;
          case BenchOp::kAllToAll:
            out[k] = send[k / c][me * c + k % c];
            break;
          default:  // all_to_all_v has its own test; no other op is benched
            break;
        }
      }
      if (op == BenchOp::kAllToAllV) {
        // Reverse peer order after the gap, which keeps FillInputs' marks.
        size_t at = shapes[me].recv_gap;
        for (int64_t s = n - 1; s >= 0; --s) {
          size_t from = 0;
          for (int64_t d = 0; d < me; ++d) from += layout.Count(s, d);
          for (size_t k = 0; k < layout.Count(s, me); ++k) out[at++] = send[s][from + k];
        }
        ASSERT_EQ(at, out.size());
      }
    }
    for (int64_t me = 0; me < n; ++me) {
      EXPECT_EQ(CountWrong(op, shapes[me], me, n, recv[me]), 0) << "rank " << me;
    }
    recv[1][0] += 1000;
    recv[1].back() = kUnwritten;
    EXPECT_EQ(CountWrong(op, shapes[1], 1, n, recv[1]), 2);
  }
}

// all_to_all_v: an output that follows the send layout instead of the receive layout is wrong on
// every rank (each rank's receive displacements differ from its send ones), and so is a write into
// the gap.
TEST(CountWrongTest, AllToAllVAtTheSendDisplacementsIsWrong) {
  for (int64_t n : {1, 2, 3, 4, 8}) {
    const Layout layout = ExpectedLayout(4000 / 4, n);
    for (int64_t me = 0; me < n; ++me) {
      SCOPED_TRACE(::testing::Message() << "n " << n << " rank " << me);
      const CallShape shape = ShapeOf(BenchOp::kAllToAllV, 4000, n, me);
      std::vector<float> out(shape.recv, kUnwritten);
      for (int64_t s = 0; s < n; ++s) {
        size_t from = 0;
        for (int64_t d = 0; d < me; ++d) from += layout.Count(s, d);
        for (size_t k = 0; k < layout.Count(s, me); ++k) {
          out[shape.send_displs[static_cast<size_t>(s)] + k] = InputValue(s, from + k);
        }
      }
      EXPECT_GT(CountWrong(BenchOp::kAllToAllV, shape, me, n, out), 0);
      std::vector<float> gap_written(shape.recv, kUnwritten);
      for (int64_t s = 0; s < n; ++s) {
        size_t from = 0;
        for (int64_t d = 0; d < me; ++d) from += layout.Count(s, d);
        for (size_t k = 0; k < layout.Count(s, me); ++k) {
          gap_written[shape.recv_displs[static_cast<size_t>(s)] + k] = InputValue(s, from + k);
        }
      }
      EXPECT_EQ(CountWrong(BenchOp::kAllToAllV, shape, me, n, gap_written), 0);
      gap_written[0] = 0.0f;
      EXPECT_EQ(CountWrong(BenchOp::kAllToAllV, shape, me, n, gap_written), 1);
    }
  }
}

// A block from the wrong peer is caught: the inputs of different ranks differ.
TEST(CountWrongTest, AllToAllVBlocksFromTheWrongPeerAreWrong) {
  const int64_t n = 3;
  const CallShape shape = ShapeOf(BenchOp::kAllToAllV, 4 * 300, n, 0);
  ASSERT_GT(shape.unit, 0u);
  // Rank 0 receives 0 units from 0, 1 from rank 1 and 2 from rank 2: fill both blocks with what
  // rank 1 sent to rank 2 (its second unit onwards), i.e. the wrong source and offset.
  std::vector<float> out(shape.recv);
  for (size_t k = 0; k < out.size(); ++k) out[k] = InputValue(1, k);
  EXPECT_GT(CountWrong(BenchOp::kAllToAllV, shape, 0, n, out), 0);
}

}  // namespace
}  // namespace nmesh::perf
