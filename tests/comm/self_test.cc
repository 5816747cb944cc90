// Unit tests of the self communicator (comm/self.h) and the pure topology arithmetic.
#include "nmesh/comm/self.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/topology.h"
#include "nmesh/tests/comm/test_values.h"

namespace nmesh::comm {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::nmesh::comm::testing;  // NOLINT: test values

// Issue 14, bad input: a split asking for an unusable timeout is InvalidArgument.
TEST(SelfCommunicatorTest, SplitRejectsUnusableTimeouts) {
  std::unique_ptr<Communicator> self = NewSelfCommunicator({.name = "world"});
  for (absl::Duration bad : {absl::ZeroDuration(), absl::Milliseconds(-5), absl::InfiniteDuration(),
                             absl::Seconds(1e-300)}) {
    EXPECT_THAT(self->Split(0, 0, {.name = "tp", .timeout = bad}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("CommOptions.timeout must be a positive, finite duration")));
  }
  EXPECT_OK(self->Split(0, 0, {.name = "tp", .timeout = absl::Nanoseconds(1)}).status());
}

TEST(SelfCommunicatorTest, DescribesItself) {
  auto self = NewSelfCommunicator({.name = "tp", .timeout = absl::Seconds(3)});
  EXPECT_EQ(self->rank(), 0);
  EXPECT_EQ(self->size(), 1);
  EXPECT_EQ(self->backend(), "self");
  EXPECT_EQ(self->memory_kind(), MemoryKind::kHost);
  EXPECT_EQ(self->options().name, "tp");
  EXPECT_EQ(self->options().timeout, absl::Seconds(3));
}

template <typename T>
class SelfTypedTest : public ::testing::Test {};
TYPED_TEST_SUITE(SelfTypedTest, AllTypes);

// With one rank, every reduction of a value is the value itself (avg included).
TYPED_TEST(SelfTypedTest, CollectivesCopyTheInput) {
  using T = TypeParam;
  auto self = NewSelfCommunicator({.name = "tp"});
  for (ReduceOp op : kAllOps) {
    for (size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}}) {
      const std::vector<T> send = Inputs<T>(0, count, op);
      std::vector<T> recv(count, Sentinel<T>());
      ASSERT_OK(self->AllReduce<T>(send, absl::MakeSpan(recv), op));
      EXPECT_EQ(recv, send);
      std::fill(recv.begin(), recv.end(), Sentinel<T>());
      ASSERT_OK(self->ReduceScatter<T>(send, absl::MakeSpan(recv), op));
      EXPECT_EQ(recv, send);
      EXPECT_EQ(Expected<T>(1, 0, op), Input<T>(0, 0, op));  // the arithmetic agrees
    }
  }
  const std::vector<T> send = Inputs<T>(0, 9, ReduceOp::kSum);
  std::vector<T> recv(9, Sentinel<T>());
  ASSERT_OK(self->AllGather<T>(send, absl::MakeSpan(recv)));
  EXPECT_EQ(recv, send);
  std::fill(recv.begin(), recv.end(), Sentinel<T>());
  ASSERT_OK(self->AllToAll<T>(send, absl::MakeSpan(recv)));
  EXPECT_EQ(recv, send);
  std::vector<T> buffer = send;
  ASSERT_OK(self->Broadcast<T>(absl::MakeSpan(buffer), 0));
  EXPECT_EQ(buffer, send);
  ASSERT_OK(self->AllReduce(buffer.data(), buffer.data(), buffer.size(), DataTypeOf<T>::value,
                            ReduceOp::kAvg));
  EXPECT_EQ(buffer, send);
  EXPECT_OK(self->Barrier());
}

TEST(SelfCommunicatorTest, SendThenRecvDeliversInOrder) {
  auto self = NewSelfCommunicator({.name = "pp"});
  const std::vector<int32_t> first = {1, 2, 3}, second = {4, 5};
  ASSERT_OK(self->Send<int32_t>(first, 0));
  ASSERT_OK(self->Send<int32_t>(second, 0));
  std::vector<int32_t> a(3), b(2);
  ASSERT_OK(self->Recv<int32_t>(absl::MakeSpan(a), 0));
  ASSERT_OK(self->Recv<int32_t>(absl::MakeSpan(b), 0));
  EXPECT_THAT(a, ElementsAre(1, 2, 3));
  EXPECT_THAT(b, ElementsAre(4, 5));
  EXPECT_THAT(self->Recv<int32_t>(absl::MakeSpan(b), 0),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("recv on axis 'pp': no message from rank 0 is pending")));
  ASSERT_OK(self->Send<int32_t>(first, 0));
  EXPECT_THAT(self->Recv<int32_t>(absl::MakeSpan(b), 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("expected 2 elements of int32 but the pending message holds 3 "
                                 "elements of int32")));
}

TEST(SelfCommunicatorTest, SplitWithAndWithoutColor) {
  auto self = NewSelfCommunicator({.name = "world"});
  ASSERT_OK_AND_ASSIGN(auto child, self->Split(4, 0, {.name = "tp", .timeout = absl::Seconds(1)}));
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->backend(), "self");
  EXPECT_EQ(child->options().name, "tp");
  EXPECT_EQ(child->options().timeout, absl::Seconds(1));
  EXPECT_EQ(self->options().name, "world");
  ASSERT_OK_AND_ASSIGN(auto none, self->Split(std::nullopt, 0, {.name = "dp"}));
  EXPECT_EQ(none, nullptr);
  EXPECT_THAT(self->Split(-1, 0, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("split on axis 'world': color must be non-negative or absent, "
                                 "got -1")));
}

TEST(SelfCommunicatorTest, BadArguments) {
  auto self = NewSelfCommunicator({.name = "tp"});
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  std::vector<float> x(4), y(5);
  EXPECT_THAT(self->AllReduce<float>(x, absl::MakeSpan(y), ReduceOp::kSum),
              StatusIs(kInvalid, HasSubstr("all_reduce on axis 'tp': receive buffer holds 5 "
                                           "elements, expected 4")));
  EXPECT_THAT(self->AllReduce(nullptr, x.data(), 4, DataType::kFloat32, ReduceOp::kSum),
              StatusIs(kInvalid, HasSubstr("send buffer is null but the count is 4")));
  EXPECT_THAT(self->Broadcast<float>(absl::MakeSpan(x), 1),
              StatusIs(kInvalid, HasSubstr("root 1 is out of range [0, 1)")));
  EXPECT_THAT(self->Send<float>(x, 1), StatusIs(kInvalid, HasSubstr("peer 1 is out of range")));
  EXPECT_THAT(self->AllToAll(x.data(), x.data(), 4, DataType::kFloat32),
              StatusIs(kInvalid, HasSubstr("overlap")));
  EXPECT_OK(self->AllReduce(nullptr, nullptr, 0, DataType::kFloat32, ReduceOp::kSum));
}

TEST(SelfCommunicatorTest, AbortFromAnotherThreadIsIdempotent) {
  auto self = NewSelfCommunicator({.name = "ep"});
  std::thread t([&] { EXPECT_OK(self->Abort()); });
  t.join();
  EXPECT_OK(self->Abort());
  std::vector<float> x(2);
  EXPECT_THAT(self->AllReduce<float>(x, absl::MakeSpan(x), ReduceOp::kSum),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("all_reduce on axis 'ep': the communicator was aborted")));
  EXPECT_THAT(self->Split(0, 0, {}), StatusIs(absl::StatusCode::kFailedPrecondition, _));
}

// Revocation: every later operation is Aborted naming the cause, a handle that completed before
// keeps its status, the first cause wins, and RevokeTogether gives one cause to communicators
// aborted before (their failures name it from then on).
TEST(SelfCommunicatorTest, RevokeNamesTheCause) {
  auto tp = NewSelfCommunicator({.name = "tp"});
  auto dp = NewSelfCommunicator({.name = "dp"});
  std::vector<float> x(2, 1.0f);
  ASSERT_OK_AND_ASSIGN(Work done, tp->AllReduceAsync<float>(x, absl::MakeSpan(x), ReduceOp::kSum));
  EXPECT_EQ(tp->revocation_cause(), std::nullopt);
  ASSERT_OK(dp->Abort());
  Communicator* both[] = {tp.get(), nullptr, dp.get()};
  ASSERT_OK(RevokeTogether(both, "rank 3: gone"));
  ASSERT_OK(tp->Revoke("later"));
  EXPECT_EQ(tp->revocation_cause(), "rank 3: gone");
  EXPECT_OK(done.Wait());
  EXPECT_THAT(tp->AllReduce<float>(x, absl::MakeSpan(x), ReduceOp::kSum),
              StatusIs(absl::StatusCode::kAborted, "all_reduce on axis 'tp': rank 3: gone"));
  EXPECT_THAT(dp->Barrier(),
              StatusIs(absl::StatusCode::kAborted, "barrier on axis 'dp': rank 3: gone"));
  EXPECT_THAT(dp->BarrierAsync(), StatusIs(absl::StatusCode::kAborted, HasSubstr("rank 3: gone")));
  EXPECT_THAT(dp->SetTimeout(absl::Seconds(1)),
              StatusIs(absl::StatusCode::kAborted, "set_timeout on axis 'dp': rank 3: gone"));
  // Zero-count collectives still check the state first.
  EXPECT_THAT(tp->AllReduce(nullptr, nullptr, 0, DataType::kFloat32, ReduceOp::kSum),
              StatusIs(absl::StatusCode::kAborted, _));
  auto ep = NewSelfCommunicator({.name = "ep"});
  ASSERT_OK(ep->Revoke(""));
  EXPECT_THAT(ep->Barrier(), StatusIs(absl::StatusCode::kAborted,
                                      "barrier on axis 'ep': the communicator was revoked"));
}

TEST(SelfCommunicatorTest, CustomMemoryKindUsesTheGivenCopy) {
  int copies = 0;
  auto self = NewSelfCommunicator({.name = "tp"}, MemoryKind::kDevice,
                                  [&](void* dst, const void* src, size_t bytes) {
                                    ++copies;
                                    std::memcpy(dst, src, bytes);
                                    return absl::OkStatus();
                                  });
  EXPECT_EQ(self->memory_kind(), MemoryKind::kDevice);
  std::vector<double> a = {1.5, 2.5}, b(2);
  ASSERT_OK(self->AllReduce<double>(a, absl::MakeSpan(b), ReduceOp::kMax));
  EXPECT_EQ(b, a);
  ASSERT_OK(self->AllReduce(b.data(), b.data(), 2, DataType::kFloat64, ReduceOp::kSum));
  EXPECT_EQ(copies, 1);  // in place needs no copy
  ASSERT_OK_AND_ASSIGN(auto child, self->Split(0, 0, {.name = "child"}));
  EXPECT_EQ(child->memory_kind(), MemoryKind::kDevice);
  EXPECT_THAT(self->Send<double>(a, 0), StatusIs(absl::StatusCode::kUnimplemented, _));
}

TEST(TopologyTest, FromHostNames) {
  ASSERT_OK_AND_ASSIGN(Topology topo, TopologyFromHostNames({"a", "b", "a", "a", "b"}, 3));
  EXPECT_EQ(topo.rank, 3);
  EXPECT_EQ(topo.size, 5);
  EXPECT_EQ(topo.local_rank, 2);
  EXPECT_EQ(topo.local_size, 3);
  EXPECT_EQ(topo.num_hosts, 2);
  EXPECT_THAT(TopologyFromHostNames({"a"}, 1), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST(TopologyTest, ExchangeOverSelf) {
  auto self = NewSelfCommunicator({.name = "world"});
  ASSERT_OK_AND_ASSIGN(std::string host, LocalHostName());
  EXPECT_FALSE(host.empty());
  ASSERT_OK_AND_ASSIGN(Topology topo, ExchangeHostNames(*self, host));
  EXPECT_THAT(topo.host_names, ElementsAre(host));
  EXPECT_EQ(topo.local_rank, 0);
  EXPECT_EQ(topo.local_size, 1);
  auto device = NewSelfCommunicator({.name = "gpu"}, MemoryKind::kDevice,
                                    [](void*, const void*, size_t) { return absl::OkStatus(); });
  EXPECT_THAT(ExchangeHostNames(*device, host),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host-memory")));
}

}  // namespace
}  // namespace nmesh::comm
