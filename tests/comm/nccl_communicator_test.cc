// Tests of the NCCL backend (comm/nccl), run under mpirun -np 1 and 2.
//
// Without a GPU only the no-device path and the error conversions run; the GPU tests skip with
// "no CUDA device". With a GPU they create NCCL worlds of size 1 (bootstrapped over a self
// communicator, on every rank independently) and, when there is one GPU per local rank, a world
// over MPI. See docs/NCCL.md for how to run them on a GPU machine.
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/nccl/communicator.h"
#include "nmesh/comm/nccl/native.h"
#include "nmesh/comm/nccl/recovery.h"
#include "nmesh/comm/nccl/runtime.h"
#include "nmesh/comm/nccl/status.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/watch/watchdog.h"
#include "nmesh/tests/comm/test_values.h"

namespace nmesh::comm {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;
using namespace ::nmesh::comm::testing;  // NOLINT: test values

std::unique_ptr<Communicator> MpiWorld() {
  static mpi::Session* session = mpi::Session::Init(nullptr, nullptr)->release();
  auto world = mpi::WorldCommunicator(*session);
  if (!world.ok()) {
    ADD_FAILURE() << world.status();
    return nullptr;
  }
  return *std::move(world);
}

bool HaveGpu() { return nccl::VisibleCudaDevices().ok(); }

TEST(NcclNoGpuTest, CreateWorldFailsCleanlyWithoutADevice) {
  if (HaveGpu()) GTEST_SKIP() << "a CUDA device is visible; this tests the machine without one";
  auto world = MpiWorld();
  ASSERT_NE(world, nullptr);
  EXPECT_THAT(nccl::CreateWorld(*world),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no CUDA device visible")));
  // Over a self bootstrap too, and the MPI world is still in step afterwards.
  auto self = NewSelfCommunicator({.name = "bootstrap"});
  EXPECT_THAT(nccl::CreateWorld(*self, {.comm = {.name = "gpu", .timeout = absl::Seconds(5)}}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no CUDA device visible")));
  EXPECT_OK(world->Barrier());
}

TEST(NcclArgumentTest, BootstrapMustBeHostMemory) {
  auto device_self = nccl::NewDeviceSelfCommunicator({.name = "gpu_self"}, 0);
  EXPECT_THAT(nccl::CreateWorld(*device_self),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host-memory bootstrap")));
  auto world = MpiWorld();
  ASSERT_NE(world, nullptr);
  EXPECT_THAT(nccl::DeviceOf(*world),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mpi backend")));
}

TEST(NcclStatusTest, ConvertsNcclAndCudaErrors) {
  EXPECT_OK(nccl::NcclStatus(ncclSuccess, "ncclAllReduce", 0));
  EXPECT_OK(nccl::NcclStatus(ncclInProgress, "ncclAllReduce", 0));
  EXPECT_THAT(nccl::NcclStatus(ncclInvalidArgument, "ncclAllReduce", 3),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrFormat("ncclAllReduce failed on rank 3: %s "
                                                 "(ncclInvalidArgument)",
                                                 ncclGetErrorString(ncclInvalidArgument)))));
  EXPECT_THAT(nccl::NcclStatus(ncclRemoteError, "ncclSend", 1),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("ncclRemoteError")));
  EXPECT_THAT(nccl::NcclStatus(ncclInvalidUsage, "ncclCommSplit", 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, _));
  EXPECT_THAT(nccl::NcclStatus(ncclInternalError, "ncclCommFinalize", 0),
              StatusIs(absl::StatusCode::kInternal, _));
  EXPECT_OK(nccl::CudaStatus(cudaSuccess, "cudaMalloc", 0));
  EXPECT_THAT(nccl::CudaStatus(cudaErrorNoDevice, "cudaSetDevice", 2),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrFormat("cudaSetDevice failed on rank 2: %s "
                                                 "(cudaErrorNoDevice)",
                                                 cudaGetErrorString(cudaErrorNoDevice)))));
  EXPECT_THAT(nccl::CudaStatus(cudaErrorMemoryAllocation, "cudaMalloc", 0),
              StatusIs(absl::StatusCode::kResourceExhausted, _));
}

// ---- GPU tests: skipped without a device ------------------------------------------------------

// Device memory holding `host`, freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const std::vector<T>& host) : count_(host.size()) {
    EXPECT_EQ(cudaMalloc(&data_, std::max<size_t>(1, count_) * sizeof(T)), cudaSuccess);
    if (count_ > 0) {
      EXPECT_EQ(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice),
                cudaSuccess);
    }
  }
  ~DeviceBuffer() { cudaFree(data_); }
  T* get() { return static_cast<T*>(data_); }
  std::vector<T> ToHost() const {
    std::vector<T> host(count_);
    if (count_ > 0) {
      EXPECT_EQ(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost),
                cudaSuccess);
    }
    return host;
  }

 private:
  void* data_ = nullptr;
  size_t count_;
};

class NcclGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  }

  // A world of one rank on this process's first visible device, bootstrapped over self.
  std::unique_ptr<Communicator> SoloWorld(CommOptions options) {
    auto self = NewSelfCommunicator({.name = "bootstrap"});
    auto world = nccl::CreateWorld(*self, {.comm = std::move(options), .device = 0});
    if (!world.ok()) {
      ADD_FAILURE() << world.status();
      return nullptr;
    }
    return *std::move(world);
  }
};

template <typename T>
void ExpectAllReduceOnDevice(Communicator& comm, int n, int r) {
  for (ReduceOp op : kAllOps) {
    for (size_t count : {size_t{1}, size_t{7}, size_t{1000}, size_t{65537}}) {
      DeviceBuffer<T> send(Inputs<T>(r, count, op));
      DeviceBuffer<T> recv(std::vector<T>(count, Sentinel<T>()));
      ASSERT_OK(comm.AllReduce(send.get(), recv.get(), count, DataTypeOf<T>::value, op));
      const std::vector<T> got = recv.ToHost();
      for (size_t i = 0; i < count; ++i) {
        ASSERT_EQ(ToDouble(got[i]), ToDouble(FromDouble<T>(Expected<T>(n, i, op))))
            << DataTypeName(DataTypeOf<T>::value) << " " << ReduceOpName(op) << " count " << count
            << " element " << i;
      }
    }
  }
}

template <typename... Ts>
void ExpectAllReduceEveryType(Communicator& comm) {
  (ExpectAllReduceOnDevice<Ts>(comm, comm.size(), comm.rank()), ...);
}

TEST_F(NcclGpuTest, InitSplitAllReduceDestroy) {
  auto world = SoloWorld({.name = "world", .timeout = absl::Seconds(60)});
  ASSERT_NE(world, nullptr);
  EXPECT_EQ(world->backend(), "nccl");
  EXPECT_EQ(world->memory_kind(), MemoryKind::kDevice);
  EXPECT_EQ(world->rank(), 0);
  EXPECT_EQ(world->size(), 1);
  ASSERT_OK_AND_ASSIGN(int device, nccl::DeviceOf(*world));
  EXPECT_EQ(device, 0);

  ASSERT_OK_AND_ASSIGN(auto tp, world->Split(0, 0, {.name = "tp"}));
  ASSERT_NE(tp, nullptr);
  EXPECT_EQ(tp->size(), 1);
  EXPECT_EQ(tp->options().name, "tp");
  ASSERT_OK_AND_ASSIGN(auto none, world->Split(std::nullopt, 0, {.name = "dp"}));
  EXPECT_EQ(none, nullptr);

  ExpectAllReduceEveryType<int8_t, uint8_t, int32_t, uint32_t, int64_t, uint64_t, Float16, BFloat16,
                           float, double>(*world);
  ExpectAllReduceEveryType<float, BFloat16>(*tp);
  EXPECT_OK(world->Barrier());
  EXPECT_OK(tp->Barrier());
  tp.reset();     // finalise + destroy the child first,
  world.reset();  // then the parent
}

TEST_F(NcclGpuTest, TimeoutAbortsTheCommunicator) {
  auto world = SoloWorld({.name = "world", .timeout = absl::Seconds(1)});
  ASSERT_NE(world, nullptr);
  DeviceBuffer<float> buffer(std::vector<float>(16, 0.0f));
  const auto start = std::chrono::steady_clock::now();
  // A receive from itself with no matching send never completes.
  absl::Status status = world->Recv(buffer.get(), 16, DataType::kFloat32, 0);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("recv on axis 'world' timed out after 1 s (rank 0 of 1)")));
  EXPECT_GE(elapsed, 1.0);
  std::printf("[timing] unmatched ncclRecv returned after %.3f s (timeout 1 s)\n", elapsed);
  EXPECT_THAT(world->Barrier(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("timed out")));
  EXPECT_OK(world->Abort());
  EXPECT_OK(world->Abort());
  world.reset();  // destroys an aborted communicator
}

TEST_F(NcclGpuTest, AbortFromAnotherThread) {
  auto world = SoloWorld({.name = "world", .timeout = absl::Seconds(60)});
  ASSERT_NE(world, nullptr);
  DeviceBuffer<int32_t> buffer(std::vector<int32_t>(4, 0));
  std::thread aborter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_OK(world->Abort());
  });
  EXPECT_THAT(world->Recv(buffer.get(), 4, DataType::kInt32, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Abort() was called")));
  aborter.join();
}

// The watchdog on NCCL (comm/watch/watchdog.h): an all_reduce enqueued on the engine's stream
// behind a host function that spins on a flag never starts; past its deadline the watchdog aborts
// its family (tp and cp, split from one world) in one grouped call and reports it, and the handle
// fails.
TEST_F(NcclGpuTest, WatchdogAbortsTheFamilyOfAStuckAsyncOperation) {
  auto world = SoloWorld({.name = "world", .timeout = absl::Seconds(60)});
  ASSERT_NE(world, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> tp,
                       world->Split(0, 0, {.name = "tp", .timeout = absl::Seconds(1)}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> cp,
                       world->Split(0, 0, {.name = "cp", .timeout = absl::Seconds(1)}));
  std::vector<Communicator*> family = {tp.get(), cp.get()};
  for (Communicator* comm : family) comm->SetAbortFamily([family] { (void)AbortTogether(family); });
  std::mutex mu;
  std::vector<TimeoutReport> reports;
  SetTimeoutHandler([&](const TimeoutReport& report) {
    std::lock_guard<std::mutex> lock(mu);
    reports.push_back(report);
  });

  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  static std::atomic<bool> release{false};
  release = false;
  ASSERT_EQ(cudaLaunchHostFunc(
                stream,
                [](void*) {
                  while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                },
                nullptr),
            cudaSuccess);
  DeviceBuffer<float> buffer(std::vector<float>(1024, 1.0f));
  ASSERT_OK_AND_ASSIGN(Work work,
                       tp->AllReduceAsync(buffer.get(), buffer.get(), 1024, DataType::kFloat32,
                                          ReduceOp::kSum, {.stream = stream}));
  // Wait for the report (at most 10 s), then let the stream go in any case.
  const auto start = std::chrono::steady_clock::now();
  bool reported = false;
  while (!reported && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::lock_guard<std::mutex> lock(mu);
    reported = !reports.empty();
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  release = true;
  ASSERT_TRUE(reported) << "the watchdog did not report the stuck all_reduce";
  std::printf("[timing] stuck async all_reduce reported after %.3f s (timeout 1 s)\n", elapsed);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(reports[0].axis, "tp");
    EXPECT_EQ(reports[0].stuck.op, OpKind::kAllReduce);
    EXPECT_EQ(reports[0].stuck.seq, 1u);
    EXPECT_THAT(reports[0].error, HasSubstr("all_reduce on axis 'tp' timed out after 1 s"));
  }
  EXPECT_FALSE(work.Wait(absl::Seconds(30)).ok());
  EXPECT_THAT(cp->Barrier(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      HasSubstr("abort")));  // aborted with tp
  EXPECT_OK(world->Barrier());                               // the parent is not part of the family
  SetTimeoutHandler(nullptr);
  cudaStreamSynchronize(stream);
  cudaStreamDestroy(stream);
}

// Recovery on one GPU (comm/nccl/recovery.h): a revoked communicator fails its operations, and a
// shrink of it (with abort; excluding no rank on a world of one) gives a working communicator.
TEST_F(NcclGpuTest, RevokeThenShrink) {
  if (!nccl::HasCommShrink()) {
    GTEST_SKIP() << "NCCL " << nccl::LinkedNcclVersion() << " has no ncclCommShrink";
  }
  auto world = SoloWorld({.name = "world", .timeout = absl::Seconds(60)});
  ASSERT_NE(world, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> tp,
                       world->Split(0, 0, {.name = "tp", .timeout = absl::Seconds(30)}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> healthy,
                       nccl::ShrinkComm(*tp, {}, {.name = "tp_healthy"}));
  ExpectAllReduceEveryType<float>(*healthy);
  std::vector<Communicator*> family = {tp.get()};
  ASSERT_OK(nccl::RevokeTogether(family, "rank 1 died"));
  EXPECT_THAT(tp->Barrier(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("rank 1 died")));
  absl::StatusOr<std::unique_ptr<Communicator>> shrunk =
      nccl::ShrinkComm(*tp, {}, {.name = "tp", .timeout = absl::Seconds(30)});
  if (!nccl::HasCommRevoke()) {
    EXPECT_THAT(shrunk,
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("nothing to shrink")));
    return;
  }
  ASSERT_OK(shrunk.status());
  EXPECT_EQ((*shrunk)->size(), 1);
  ExpectAllReduceEveryType<float, BFloat16>(**shrunk);
  EXPECT_OK(world->Barrier());  // the world was not revoked
  shrunk->reset();
  tp.reset();  // a revoked parent: aborted, never finalised
}

TEST_F(NcclGpuTest, WorldOverMpi) {
  auto mpi_world = MpiWorld();
  ASSERT_NE(mpi_world, nullptr);
  ASSERT_OK_AND_ASSIGN(Topology topo, mpi::GetTopology(*mpi_world));
  ASSERT_OK_AND_ASSIGN(int devices, nccl::VisibleCudaDevices());
  auto world =
      nccl::CreateWorld(*mpi_world, {.comm = {.name = "world", .timeout = absl::Seconds(120)}});
  if (topo.local_size > devices) {
    EXPECT_THAT(world, StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr(absl::StrFormat("runs %d ranks but only %d CUDA devices",
                                                          topo.local_size, devices))));
    return;
  }
  ASSERT_OK(world.status());
  EXPECT_EQ((*world)->size(), mpi_world->size());
  EXPECT_EQ((*world)->rank(), mpi_world->rank());
  ASSERT_OK_AND_ASSIGN(int device, nccl::DeviceOf(**world));
  EXPECT_EQ(device, topo.local_rank);
  ExpectAllReduceEveryType<int32_t, Float16, BFloat16, float, double>(**world);
  const int r = (*world)->rank();
  ASSERT_OK_AND_ASSIGN(auto parity, (*world)->Split(r % 2, r, {.name = "parity"}));
  ASSERT_NE(parity, nullptr);
  EXPECT_EQ(parity->rank(), r / 2);
  EXPECT_OK(parity->Barrier());
}

TEST_F(NcclGpuTest, DeviceSelfCommunicatorCopiesDeviceMemory) {
  auto self = nccl::NewDeviceSelfCommunicator({.name = "tp"}, 0);
  EXPECT_EQ(self->memory_kind(), MemoryKind::kDevice);
  const std::vector<float> values = {1.0f, 2.5f, -3.0f};
  DeviceBuffer<float> send(values), recv(std::vector<float>(3, 0.0f));
  ASSERT_OK(self->AllReduce(send.get(), recv.get(), 3, DataType::kFloat32, ReduceOp::kSum));
  EXPECT_EQ(recv.ToHost(), values);
}

// Native handles and adoption (issue 13, comm/nccl/native.h): the checks that need no GPU.
TEST(NcclNativeTest, NullHandlesAndOtherBackendsAreInvalidArgument) {
  EXPECT_THAT(nccl::AdoptComm(nullptr, 0, nccl::Ownership::kBorrowed, {.name = "tp"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("nccl::AdoptComm: the NCCL communicator for axis 'tp' is null")));
  auto self = NewSelfCommunicator({.name = "solo"});
  EXPECT_THAT(nccl::NativeComm(*self),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("self backend")));
  EXPECT_THAT(nccl::EventOf(Work()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("an empty handle")));
  ASSERT_OK_AND_ASSIGN(Work host_work, self->BarrierAsync());
  EXPECT_THAT(nccl::StreamWaitWork(host_work, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("another backend")));
}

}  // namespace
}  // namespace nmesh::comm
