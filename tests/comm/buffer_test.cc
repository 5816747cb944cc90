// Backend-neutral buffers (Communicator::AllocateBuffer, CopyToHost, CopyFromHost), NewSelf, and
// the host collectives that stage through them, on self communicators: host memory, and a
// "device" memory kind simulated with host memory whose functions count their calls.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/self.h"

namespace nmesh::comm {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

TEST(BufferTest, ReleasesOnceAndMoves) {
  int released = 0;
  int storage = 0;
  {
    Buffer a(&storage, sizeof(storage), [&](void* p) {
      EXPECT_EQ(p, &storage);
      ++released;
    });
    Buffer b = std::move(a);
    EXPECT_EQ(a.data(), nullptr);
    EXPECT_EQ(b.data(), &storage);
    EXPECT_EQ(b.bytes(), sizeof(storage));
    Buffer c;
    c = std::move(b);
    EXPECT_EQ(released, 0);
  }
  EXPECT_EQ(released, 1);
}

TEST(BufferTest, HostCommunicatorsAllocateAndCopy) {
  std::unique_ptr<Communicator> self = NewSelfCommunicator({.name = "tp"});
  ASSERT_OK_AND_ASSIGN(Buffer buffer, self->AllocateBuffer(4 * sizeof(int32_t)));
  ASSERT_NE(buffer.data(), nullptr);
  const std::vector<int32_t> in = {1, 2, 3, 4};
  std::vector<int32_t> out(4, 0);
  ASSERT_OK(self->CopyFromHost(buffer.data(), in.data(), buffer.bytes()));
  ASSERT_OK(self->CopyToHost(out.data(), buffer.data(), buffer.bytes()));
  EXPECT_EQ(out, in);
  ASSERT_OK_AND_ASSIGN(Buffer empty, self->AllocateBuffer(0));
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_THAT(self->CopyToHost(nullptr, buffer.data(), 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("copy_to_host on axis 'tp': destination buffer is null")));
  EXPECT_OK(self->CopyToHost(nullptr, nullptr, 0));
}

TEST(BufferTest, NewSelfKeepsTheMemoryKind) {
  std::unique_ptr<Communicator> host = NewSelfCommunicator({.name = "world"});
  std::unique_ptr<Communicator> one = host->NewSelf({.name = "pp", .timeout = absl::Seconds(3)});
  EXPECT_EQ(one->backend(), "self");
  EXPECT_EQ(one->memory_kind(), MemoryKind::kHost);
  EXPECT_EQ(one->options().name, "pp");
  EXPECT_EQ(one->options().timeout, absl::Seconds(3));
}

TEST(BufferTest, DeviceKindWithoutAllocatorIsUnimplemented) {
  std::unique_ptr<Communicator> device = NewSelfCommunicator(
      {.name = "tp"}, MemoryKind::kDevice, [](void* dst, const void* src, size_t bytes) {
        std::memcpy(dst, src, bytes);
        return absl::OkStatus();
      });
  EXPECT_THAT(device->AllocateBuffer(8),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("allocate on axis 'tp'")));
  int64_t x = 0;
  EXPECT_THAT(device->CopyToHost(&x, &x, sizeof(x)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("copy_to_host")));
}

// Host memory posing as another memory kind, counting what the staging does.
struct FakeDevice {
  int allocations = 0, to_host = 0, from_host = 0, frees = 0;

  SelfMemory Memory() {
    auto copy = [](void* dst, const void* src, size_t bytes) {
      std::memmove(dst, src, bytes);
      return absl::OkStatus();
    };
    return SelfMemory{.kind = MemoryKind::kDevice,
                      .copy = copy,
                      .allocate = [this](size_t bytes) -> absl::StatusOr<Buffer> {
                        ++allocations;
                        return Buffer(new std::byte[bytes], bytes, [this](void* p) {
                          ++frees;
                          delete[] static_cast<std::byte*>(p);
                        });
                      },
                      .copy_to_host =
                          [this, copy](void* d, const void* s, size_t n) {
                            ++to_host;
                            return copy(d, s, n);
                          },
                      .copy_from_host =
                          [this, copy](void* d, const void* s, size_t n) {
                            ++from_host;
                            return copy(d, s, n);
                          }};
  }
};

TEST(HostCollectivesTest, StageThroughTheCommunicatorsMemory) {
  FakeDevice device;
  std::unique_ptr<Communicator> comm = NewSelfCommunicator({.name = "ep"}, device.Memory());
  const std::vector<int64_t> in = {5, -7};
  std::vector<int64_t> out(2, 0);
  ASSERT_OK(HostAllReduce<int64_t>(*comm, in, absl::MakeSpan(out), ReduceOp::kSum));
  EXPECT_EQ(out, in);
  EXPECT_EQ(device.allocations, 1);
  EXPECT_EQ(device.from_host, 1);
  EXPECT_EQ(device.to_host, 1);
  EXPECT_EQ(device.frees, 1);
  std::vector<int64_t> gathered(2, 0);
  ASSERT_OK(HostAllGather<int64_t>(*comm, in, absl::MakeSpan(gathered)));
  EXPECT_EQ(gathered, in);
  EXPECT_EQ(device.allocations, 2);
  // NewSelf keeps the memory functions.
  std::unique_ptr<Communicator> child = comm->NewSelf({.name = "ep_shard"});
  EXPECT_EQ(child->memory_kind(), MemoryKind::kDevice);
  ASSERT_OK_AND_ASSIGN(Buffer buffer, child->AllocateBuffer(8));
  EXPECT_EQ(device.allocations, 3);
  EXPECT_THAT(HostAllGather<int64_t>(*comm, in, absl::MakeSpan(out).subspan(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("size() times")));
}

TEST(HostCollectivesTest, AgreeOnStatusOnOneRank) {
  std::unique_ptr<Communicator> comm = NewSelfCommunicator({.name = "world"});
  EXPECT_OK(AgreeOnStatus(*comm, absl::OkStatus()));
  EXPECT_THAT(AgreeOnStatus(*comm, absl::NotFoundError("no recipe")),
              StatusIs(absl::StatusCode::kNotFound, "no recipe"));
}

}  // namespace
}  // namespace nmesh::comm
