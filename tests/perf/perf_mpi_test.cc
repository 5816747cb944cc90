// The bench engine over MPI at np 1/2/4/8: every op, blocking and async, on every default axis
// comes back with #wrong = 0, the same report on every rank, and rows that follow the sweep; ranks
// outside a rank-subset mesh take part without a group; MeasureAxis measures one communicator on
// its own; and a communicator that corrupts one output element per call on each group's local
// rank 0 is caught: #wrong is then exactly the number of groups on every row (for broadcast, the
// number of ranks: the root's corrupted buffer is what the next call sends), on both paths.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/perf/bench.h"
#include "nmesh/tests/mesh/mesh_runtime_testing.h"

namespace nmesh::perf {
namespace {

using comm::Communicator;
using comm::DataType;
using ::nmesh::mesh::testing::NewWorld;
using ::nmesh::testing::IsOk;

const std::vector<BenchOp> kOps = AllBenchOps();

// Operations issued through the asynchronous hook of a CorruptingCommunicator, on this rank.
int64_t async_issued = 0;

// Forwards everything to an MPI communicator; once armed, adds 1000 to the first output element
// of every float32 collective on its local rank 0. Communicators split from it (and its self
// communicators) corrupt alike, so a DeviceMesh built over it corrupts every group.
class CorruptingCommunicator : public Communicator {
 public:
  CorruptingCommunicator(std::unique_ptr<Communicator> inner, std::shared_ptr<bool> armed)
      : inner_(std::move(inner)), armed_(std::move(armed)) {}

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string_view backend() const override { return inner_->backend(); }
  comm::MemoryKind memory_kind() const override { return inner_->memory_kind(); }
  const comm::CommOptions& options() const override { return inner_->options(); }

  absl::Status Abort() override { return inner_->Abort(); }
  std::unique_ptr<Communicator> NewSelf(comm::CommOptions options) const override {
    return std::make_unique<CorruptingCommunicator>(inner_->NewSelf(std::move(options)), armed_);
  }

 protected:
  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        comm::CommOptions options) override {
    return Wrap(inner_->Split(color, key, std::move(options)));
  }
  absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreed(std::optional<int> color, int key,
                                                              comm::CommOptions options) override {
    return Wrap(inner_->SplitAgreed(color, key, std::move(options)));
  }
  absl::Status DoAllReduce(const void* send, void* recv, size_t count, DataType type,
                           comm::ReduceOp op) override {
    return Corrupt(inner_->AllReduce(send, recv, count, type, op), recv, count, type);
  }
  absl::Status DoAllGather(const void* send, void* recv, size_t count, DataType type) override {
    return Corrupt(inner_->AllGather(send, recv, count, type), recv, count, type);
  }
  absl::Status DoReduceScatter(const void* send, void* recv, size_t count, DataType type,
                               comm::ReduceOp op) override {
    return Corrupt(inner_->ReduceScatter(send, recv, count, type, op), recv, count, type);
  }
  absl::Status DoBroadcast(void* buffer, size_t count, DataType type, int root) override {
    return Corrupt(inner_->Broadcast(buffer, count, type, root), buffer, count, type);
  }
  absl::Status DoAllToAll(const void* send, void* recv, size_t count, DataType type) override {
    return Corrupt(inner_->AllToAll(send, recv, count, type), recv, count, type);
  }
  absl::Status DoAllToAllV(const void* send, absl::Span<const size_t> send_counts,
                           absl::Span<const size_t> send_displs, void* recv,
                           absl::Span<const size_t> recv_counts,
                           absl::Span<const size_t> recv_displs, DataType type) override {
    size_t total = 0;
    for (size_t c : recv_counts) total += c;
    return Corrupt(
        inner_->AllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, type),
        recv, total, type);
  }
  // The asynchronous path: counted, then the default (the blocking hooks above, completed handle).
  absl::StatusOr<comm::Work> DoAsync(const comm::OpArgs& args,
                                     const comm::AsyncOptions& async) override {
    ++async_issued;
    return Communicator::DoAsync(args, async);
  }
  absl::Status DoSend(const void* buffer, size_t count, DataType type, int peer) override {
    return inner_->Send(buffer, count, type, peer);
  }
  absl::Status DoRecv(void* buffer, size_t count, DataType type, int peer) override {
    return inner_->Recv(buffer, count, type, peer);
  }
  absl::Status DoBarrier() override { return inner_->Barrier(); }

 private:
  absl::StatusOr<std::unique_ptr<Communicator>> Wrap(
      absl::StatusOr<std::unique_ptr<Communicator>> child) {
    if (!child.ok() || *child == nullptr) return child;
    return std::unique_ptr<Communicator>(
        std::make_unique<CorruptingCommunicator>(*std::move(child), armed_));
  }
  absl::Status Corrupt(absl::Status status, void* out, size_t count, DataType type) {
    if (status.ok() && *armed_ && type == DataType::kFloat32 && count > 0 && rank() == 0) {
      static_cast<float*>(out)[0] += 1000.0f;
    }
    return status;
  }

  std::unique_ptr<Communicator> inner_;
  std::shared_ptr<bool> armed_;
};

BenchConfig SmallSweep(BenchOp op, bool async = false) {
  BenchConfig config;
  config.op = op;
  config.async = async;
  config.min_bytes = 64;
  config.max_bytes = 4096;
  config.factor = 8;
  config.iters = 2;
  config.warmup = 1;
  return config;
}

// The tp/cp sizes the world allows: tp 2 from 2 ranks, cp 2 from 4.
config::MeshRequest DefaultRequest(int world) {
  config::MeshRequest request;
  request.sizes.world_size = world;
  request.sizes.tp = world % 2 == 0 ? 2 : 1;
  request.sizes.cp = world % 4 == 0 ? 2 : 1;
  return request;
}

// Rows follow the sweep with nccl-tests' size convention (the size is the largest buffer, whole
// elements per rank; for all_to_all_v whole units of n(n-1)/2 elements), computed here from the
// sizes alone.
std::vector<uint64_t> ExpectedSizes(BenchOp op, int64_t n) {
  std::vector<uint64_t> sizes;
  for (uint64_t requested = 64; requested <= 4096; requested *= 8) {
    const uint64_t elements = requested / 4;
    if (op == BenchOp::kAllToAllV) {
      const uint64_t units = n == 1 ? 1 : static_cast<uint64_t>(n * (n - 1) / 2);
      if (elements / units > 0) sizes.push_back(elements / units * units * 4);
      continue;
    }
    const bool per_rank =
        op == BenchOp::kAllGather || op == BenchOp::kReduceScatter || op == BenchOp::kAllToAll;
    const uint64_t effective = per_rank ? elements / n * n : elements;
    if (effective > 0) sizes.push_back(effective * 4);
  }
  return sizes;
}

TEST(BenchMpiTest, EveryOpOnEveryAxisIsRightEverywhere) {
  std::unique_ptr<Communicator> world = NewWorld();
  ASSERT_OK_AND_ASSIGN(mesh::MeshPlan plan, mesh::PlanMesh(DefaultRequest(world->size())));
  ASSERT_OK_AND_ASSIGN(mesh::DeviceMesh mesh, mesh::DeviceMesh::Create(plan, *world));
  ASSERT_OK_AND_ASSIGN(std::vector<mesh::GroupKind> kinds, SelectBenchAxes(plan, {}));
  for (bool async : {false, true}) {
    for (BenchOp op : kOps) {
      SCOPED_TRACE(std::string(BenchOpName(op)) + (async ? " async" : ""));
      ASSERT_OK_AND_ASSIGN(BenchReport report, RunBench(plan, mesh, *world, SmallSweep(op, async)));
      EXPECT_EQ(report.async, async);
      EXPECT_EQ(report.backend, "mpi");
      EXPECT_EQ(report.world_size, world->size());
      ASSERT_EQ(report.axes.size(), kinds.size());
      for (const BenchAxis& axis : report.axes) {
        SCOPED_TRACE(axis.name);
        EXPECT_GT(axis.group_size, 1);
        EXPECT_EQ(axis.group_size * axis.group_count, world->size());
        std::vector<uint64_t> sizes;
        for (const BenchRow& row : axis.rows) {
          sizes.push_back(row.size);
          EXPECT_EQ(row.wrong, 0);
          EXPECT_GT(row.time_us, 0);
          EXPECT_DOUBLE_EQ(row.algbw, static_cast<double>(row.size) / (row.time_us * 1e3));
          EXPECT_DOUBLE_EQ(row.busbw, row.algbw * BusBandwidthFactor(op, axis.group_size));
          // Every rank holds the slowest rank's time.
          double extremes[2] = {row.time_us, -row.time_us};
          ASSERT_THAT(comm::HostAllReduce(*world, extremes, extremes, 2, DataType::kFloat64,
                                          comm::ReduceOp::kMin),
                      IsOk());
          EXPECT_EQ(extremes[0], -extremes[1]);
        }
        EXPECT_EQ(sizes, ExpectedSizes(op, axis.group_size));
      }
    }
  }
}

TEST(BenchMpiTest, RanksOutsideTheMeshTakePartWithoutAGroup) {
  std::unique_ptr<Communicator> world = NewWorld();
  const int n = world->size();
  if (n < 4) GTEST_SKIP() << "needs 4 ranks";
  // The mesh spans the upper half, in reverse order; the lower half are non-members.
  config::MeshRequest request;
  request.ranks.emplace();
  for (int r = n - 1; r >= n / 2; --r) request.ranks->push_back(r);
  request.job_world_size = n;
  request.sizes.tp = 2;
  ASSERT_OK_AND_ASSIGN(mesh::MeshPlan plan, mesh::PlanMesh(request));
  ASSERT_OK_AND_ASSIGN(mesh::DeviceMesh mesh, mesh::DeviceMesh::Create(plan, *world));
  EXPECT_EQ(mesh.is_member(), world->rank() >= n / 2);
  for (BenchOp op : {BenchOp::kAllReduce, BenchOp::kAllToAll, BenchOp::kAllToAllV}) {
    ASSERT_OK_AND_ASSIGN(BenchReport report, RunBench(plan, mesh, *world, SmallSweep(op, true)));
    ASSERT_FALSE(report.axes.empty());
    for (const BenchAxis& axis : report.axes) {
      EXPECT_EQ(axis.group_size * axis.group_count, n / 2) << axis.name;
      ASSERT_FALSE(axis.rows.empty());
      for (const BenchRow& row : axis.rows) {
        EXPECT_EQ(row.wrong, 0) << axis.name;
        EXPECT_GT(row.time_us, 0) << axis.name;  // the members' time, on every rank
      }
    }
  }
}

TEST(BenchMpiTest, CorruptedOutputsAreCounted) {
  auto armed = std::make_shared<bool>(false);
  auto world = std::make_unique<CorruptingCommunicator>(NewWorld(), armed);
  ASSERT_OK_AND_ASSIGN(mesh::MeshPlan plan, mesh::PlanMesh(DefaultRequest(world->size())));
  ASSERT_OK_AND_ASSIGN(mesh::DeviceMesh mesh, mesh::DeviceMesh::Create(plan, *world));
  // Every axis, the trivial ones included: a size-1 group has a local rank 0 too.
  const std::vector<std::string> axes = {"pp", "dp_shard", "tp"};
  *armed = true;
  for (bool async : {false, true}) {
    for (BenchOp op : kOps) {
      SCOPED_TRACE(std::string(BenchOpName(op)) + (async ? " async" : ""));
      BenchConfig config = SmallSweep(op, async);
      config.axes = axes;
      const int64_t issued_before = async_issued;
      ASSERT_OK_AND_ASSIGN(BenchReport report, RunBench(plan, mesh, *world, config));
      // With async, every warm-up and timed call of every row goes through the asynchronous
      // path (the size-1 groups too: NewSelf gives CorruptingCommunicators); without, none.
      int64_t calls = 0;
      for (const BenchAxis& axis : report.axes) {
        calls += static_cast<int64_t>(axis.rows.size()) * (config.iters + config.warmup);
      }
      EXPECT_EQ(async_issued - issued_before, async ? calls : 0);
      ASSERT_FALSE(report.axes.empty());
      int64_t total = 0;
      for (const BenchAxis& axis : report.axes) {
        ASSERT_FALSE(axis.rows.empty()) << axis.name;
        // One element per group; broadcast's root corrupts its own buffer, which the next call
        // sends to the whole group, so there every rank has one.
        const int64_t expected =
            op == BenchOp::kBroadcast ? world->size() : world->size() / axis.group_size;
        for (const BenchRow& row : axis.rows) {
          EXPECT_EQ(row.wrong, expected) << axis.name << " " << row.size;
          total += row.wrong;
        }
      }
      EXPECT_EQ(report.TotalWrong(), total);
      EXPECT_GT(total, 0);
    }
  }
}

// One communicator measured on its own: it is both the group and the world.
TEST(BenchMpiTest, MeasureAxisOnOneCommunicator) {
  std::unique_ptr<Communicator> world = NewWorld();
  BenchAxis axis;
  axis.name = "world";
  axis.group_size = world->size();
  for (BenchOp op : {BenchOp::kAllToAllV, BenchOp::kAllReduce}) {
    ASSERT_OK_AND_ASSIGN(BenchAxis measured,
                         MeasureAxis(axis, world.get(), *world, SmallSweep(op, true)));
    EXPECT_EQ(measured.name, "world");
    std::vector<uint64_t> sizes;
    for (const BenchRow& row : measured.rows) {
      sizes.push_back(row.size);
      EXPECT_EQ(row.wrong, 0);
    }
    EXPECT_EQ(sizes, ExpectedSizes(op, world->size()));
  }
  // A group that is not the axis' size is refused before any communication.
  axis.group_size = world->size() + 1;
  EXPECT_THAT(MeasureAxis(axis, world.get(), *world, SmallSweep(BenchOp::kAllReduce)),
              ::nmesh::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                         ::testing::HasSubstr("group size")));
}

}  // namespace
}  // namespace nmesh::perf
