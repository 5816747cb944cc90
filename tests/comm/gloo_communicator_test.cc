// The gloo backend beyond the conformance suite: the world's rendezvous (bad arguments, ranks that
// never arrive), timeouts that end an operation and abort the communicator, Abort from another
// thread ending a blocked operation, and the native handle (gloo's own calls on nmesh's context,
// a context an engine connected itself adopted). Run under mpirun; gloo's traffic never uses MPI.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gloo/allreduce.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/file_store.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gloo/transport/tcp/device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/gloo/communicator.h"
#include "nmesh/comm/gloo/native.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/store/store.h"
#include "nmesh/tests/comm/backends.h"

namespace nmesh::comm {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::unique_ptr<Communicator> GlooWorld(const std::string& name) {
  for (const testing::Backend& backend : testing::Backends()) {
    if (backend.name != "gloo") continue;
    std::string skip;
    auto world = backend.make(name, &skip);
    EXPECT_THAT(world, IsOk());
    return world.ok() ? *std::move(world) : nullptr;
  }
  ADD_FAILURE() << "no gloo backend";
  return nullptr;
}

TEST(GlooWorldTest, BadArgumentsAreInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                       store::OpenStore("file://" + testing::GlooStoreDirectory()));
  EXPECT_THAT(gloo::WorldCommunicator(nullptr, 0, 1, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("store is null")));
  EXPECT_THAT(gloo::WorldCommunicator(store, 2, 2, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 2 of size 2")));
  EXPECT_THAT(gloo::WorldCommunicator(store, 0, 0, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("size 0")));
  EXPECT_THAT(gloo::WorldCommunicator(store, 0, 1, {.timeout = absl::ZeroDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CommOptions.timeout")));
}

// A world of three where ranks 1 and 2 never come: the rendezvous ends at its deadline, naming
// the store and the missing ranks. (One process plays rank 0, under its own prefix.)
TEST(GlooWorldTest, RanksThatNeverArriveAreNamed) {
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> root,
                       store::OpenStore("file://" + testing::GlooStoreDirectory()));
  ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      store::WithPrefix(
          root,
          absl::StrFormat("alone%d", testing::LauncherEnv("OMPI_COMM_WORLD_RANK", "PMI_RANK", 0))));
  EXPECT_THAT(gloo::WorldCommunicator(
                  store, 0, 3, {},
                  {.hostname = "127.0.0.1", .rendezvous_timeout = absl::Milliseconds(300)}),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr(store->Describe()),
                             HasSubstr("ranks 1, 2 never arrived within 300 ms"))));
}

// One rank skips an all_reduce on a communicator with a timeout: the others get DeadlineExceeded
// naming the operation, and their communicator is aborted; the one that skipped finds the
// connections closed; the world is untouched.
TEST(GlooTimeoutTest, TimeoutEndsTheCollectiveAndAbortsTheCommunicator) {
  std::unique_ptr<Communicator> world = GlooWorld("world");
  ASSERT_NE(world, nullptr);
  if (world->size() == 1) GTEST_SKIP() << "needs a peer that does not come";
  const int r = world->rank(), n = world->size();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> timed,
                       world->Split(0, r, {.name = "timed", .timeout = absl::Milliseconds(300)}));
  std::vector<float> x(16, 1.0f);
  if (r != 0) {
    EXPECT_THAT(
        timed->AllReduce<float>(x, absl::MakeSpan(x), ReduceOp::kSum),
        StatusIs(absl::StatusCode::kDeadlineExceeded,
                 HasSubstr(absl::StrFormat(
                     "all_reduce on axis 'timed' timed out after 300 ms (rank %d of %d)", r, n))));
    EXPECT_THAT(timed->Barrier(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("barrier on axis 'timed': the communicator was aborted (an "
                                   "earlier all_reduce timed out after 300 ms)")));
  }
  ASSERT_OK(world->Barrier());  // rank 0 arrives once the others have timed out
  if (r == 0) {
    // Its peers closed their connections: the operation fails instead of waiting.
    absl::Status status = timed->AllReduce<float>(x, absl::MakeSpan(x), ReduceOp::kSum);
    EXPECT_TRUE(absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("all_reduce on axis 'timed'"));
  }
  EXPECT_OK(world->Barrier());
}

// Abort from another thread ends an operation blocked in gloo: a receive nobody sends and an
// all_reduce the other ranks never join.
TEST(GlooAbortTest, AbortFromAnotherThreadEndsABlockedOperation) {
  std::unique_ptr<Communicator> world = GlooWorld("world");
  ASSERT_NE(world, nullptr);
  if (world->size() == 1) GTEST_SKIP() << "needs a peer";
  const int r = world->rank();
  for (const bool collective : {false, true}) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> child,
                         world->Split(0, r, {.name = "child"}));
    if (r == 0) {
      std::thread aborter([&] {
        absl::SleepFor(absl::Milliseconds(200));
        EXPECT_OK(child->Abort());
      });
      std::vector<int32_t> x(4, 1);
      absl::Status status = collective
                                ? child->AllReduce<int32_t>(x, absl::MakeSpan(x), ReduceOp::kSum)
                                : child->Recv<int32_t>(absl::MakeSpan(x), 1);
      aborter.join();
      EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("the communicator was aborted (Abort() was called)")))
          << (collective ? "all_reduce" : "recv");
    }
    ASSERT_OK(world->Barrier());
  }
}

// Revoke from another thread ends a blocked receive and a pending asynchronous all_reduce with
// Aborted naming the cause; every later operation names it too, and the first cause wins.
TEST(GlooRevokeTest, RevokeEndsPendingOperationsNamingTheCause) {
  std::unique_ptr<Communicator> world = GlooWorld("world");
  ASSERT_NE(world, nullptr);
  if (world->size() == 1) GTEST_SKIP() << "needs a peer";
  const int r = world->rank();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> child, world->Split(0, r, {.name = "tp"}));
  if (r == 0) {
    const std::string cause = "mesh 'm' was revoked: rank 7: all_reduce on axis 'dp' timed out";
    std::vector<int32_t> x(4, 1), y(4, 1);
    ASSERT_OK_AND_ASSIGN(Work pending,
                         child->AllReduceAsync<int32_t>(x, absl::MakeSpan(x), ReduceOp::kSum));
    std::thread revoker([&] {
      absl::SleepFor(absl::Milliseconds(200));
      EXPECT_OK(child->Revoke(cause));
    });
    const absl::Time start = absl::Now();
    const absl::Status blocked = child->Recv<int32_t>(absl::MakeSpan(y), 1);
    revoker.join();
    EXPECT_LT(absl::Now() - start, absl::Seconds(10));
    EXPECT_THAT(blocked,
                StatusIs(absl::StatusCode::kAborted, HasSubstr("recv on axis 'tp': " + cause)));
    EXPECT_THAT(
        pending.Wait(absl::Seconds(10)),
        StatusIs(absl::StatusCode::kAborted, HasSubstr("all_reduce on axis 'tp': " + cause)));
    EXPECT_THAT(child->Barrier(),
                StatusIs(absl::StatusCode::kAborted, HasSubstr("barrier on axis 'tp': " + cause)));
    EXPECT_THAT(child->AllReduceAsync<int32_t>(x, absl::MakeSpan(x), ReduceOp::kSum),
                StatusIs(absl::StatusCode::kAborted, HasSubstr(cause)));
    EXPECT_THAT(child->Split(0, 0, {.name = "sub"}),
                StatusIs(absl::StatusCode::kAborted, HasSubstr("split on axis 'tp': " + cause)));
    EXPECT_OK(child->Revoke("a second cause"));
    EXPECT_EQ(child->revocation_cause(), cause);
    EXPECT_THAT(child->Barrier(), StatusIs(absl::StatusCode::kAborted, HasSubstr(cause)));
  }
  ASSERT_OK(world->Barrier());
  EXPECT_EQ(world->revocation_cause(), std::nullopt);
}

// gloo's own calls on nmesh's context, and a context an engine connected with gloo's own
// rendezvous (gloo's FileStore) used through nmesh, splits included.
TEST(GlooNativeTest, NativeContextAndAdoption) {
  std::unique_ptr<Communicator> world = GlooWorld("world");
  ASSERT_NE(world, nullptr);
  const int r = world->rank(), n = world->size();
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<::gloo::Context> raw, gloo::NativeContext(*world));
  EXPECT_EQ(raw->rank, r);
  EXPECT_EQ(raw->size, n);
  std::vector<int64_t> x = {r + 1, 10};
  {
    ::gloo::AllreduceOptions opts(raw);
    opts.setOutput<int64_t>(x.data(), x.size());
    opts.setReduceFunction([](void* c, const void* a, const void* b, size_t k) {
      for (size_t i = 0; i < k; ++i) {
        static_cast<int64_t*>(c)[i] =
            static_cast<const int64_t*>(a)[i] + static_cast<const int64_t*>(b)[i];
      }
    });
    ::gloo::allreduce(opts);
  }
  EXPECT_EQ(x[0], int64_t{n} * (n + 1) / 2);
  EXPECT_EQ(x[1], 10 * n);
  auto self = NewSelfCommunicator({.name = "self"});
  EXPECT_THAT(gloo::NativeContext(*self),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("self communicator")));
  EXPECT_THAT(gloo::AdoptContext(nullptr, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));

  // An engine's context.
  const std::string dir = testing::GlooStoreDirectory() + "/engine";
  std::filesystem::create_directories(dir);
  ::gloo::rendezvous::FileStore file_store(dir);
  ::gloo::rendezvous::PrefixStore prefixed("adopt", file_store);
  ::gloo::transport::tcp::attr attr;
  attr.hostname = "127.0.0.1";
  auto device = ::gloo::transport::tcp::CreateDevice(attr);
  auto engine = std::make_shared<::gloo::rendezvous::Context>(r, n);
  engine->connectFullMesh(prefixed, device);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> adopted,
                       gloo::AdoptContext(engine, {.name = "adopted"}));
  EXPECT_EQ(adopted->backend(), "gloo");
  std::vector<float> y(5, 1.5f);
  ASSERT_OK(adopted->AllReduce<float>(y, absl::MakeSpan(y), ReduceOp::kMax));
  EXPECT_EQ(y, std::vector<float>(5, 1.5f));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> halves,
                       adopted->Split(r % 2, r, {.name = "halves"}));
  std::vector<int32_t> ranks(1, r), all(static_cast<size_t>(halves->size()));
  ASSERT_OK(halves->AllGather<int32_t>(ranks, absl::MakeSpan(all)));
  for (int i = 0; i < halves->size(); ++i) EXPECT_EQ(all[i], r % 2 + 2 * i);
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<::gloo::Context> back, gloo::NativeContext(*adopted));
  EXPECT_EQ(back.get(), engine.get());
}

}  // namespace
}  // namespace nmesh::comm
