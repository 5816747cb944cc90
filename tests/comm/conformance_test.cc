// The conformance suite of the communicator backends (issue 13): one set of tests, parameterised
// over backend factories, that every backend must pass. Run under mpirun -np 1, 2, 4 and 8.
//
// Covered: the existing collectives and their in-place layouts, the new operations (all_to_all_v,
// gather, scatter, reduce, sendrecv), zero counts, argument guards, abort, timeout, asynchronous
// operations (completion, several in flight, waited in any order, misuse), batches (the 1F1B
// exchange, misuse) and the optional argument check.
//
// Factories (tests/comm/backends.h, shared with the mesh runtime tests): "mpi" (the MPI world,
// blocking), "mpi_timed" (the MPI world with a timeout: still the blocking calls, watched by the
// watchdog), "self", where the build has NCCL, "nccl" (skipped with "no CUDA device" without a
// GPU), and here also "mpi_interruptible" (polled operations on staging copies). Buffers go through
// the communicator's own AllocateBuffer/CopyFromHost/CopyToHost, so the same test runs on host and
// device memory. Expected values come from tests/comm/test_values.h (each rank computes every
// rank's known inputs itself).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/tests/comm/backends.h"
#include "nmesh/tests/comm/test_values.h"

namespace nmesh::comm {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;
using namespace ::nmesh::comm::testing;  // NOLINT: test values

class ConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    std::string skip;
    auto comm = GetParam().make("conf", &skip);
    ASSERT_TRUE(comm.ok()) << comm.status();
    if (*comm == nullptr) GTEST_SKIP() << skip;
    comm_ = *std::move(comm);
  }

  // A buffer of comm_'s memory kind holding `host`.
  template <typename T>
  Buffer Upload(const std::vector<T>& host) {
    absl::StatusOr<Buffer> buffer = comm_->AllocateBuffer(host.size() * sizeof(T));
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    if (!buffer.ok()) return Buffer();
    EXPECT_OK(comm_->CopyFromHost(buffer->data(), host.data(), buffer->bytes()));
    return *std::move(buffer);
  }
  template <typename T>
  std::vector<T> Download(const Buffer& buffer) {
    std::vector<T> host(buffer.bytes() / sizeof(T));
    EXPECT_OK(comm_->CopyToHost(host.data(), buffer.data(), buffer.bytes()));
    return host;
  }
  template <typename T>
  T* At(const Buffer& buffer, size_t i = 0) {
    return static_cast<T*>(buffer.data()) + i;
  }

  int n() const { return comm_->size(); }
  int r() const { return comm_->rank(); }
  size_t un() const { return static_cast<size_t>(comm_->size()); }

  std::unique_ptr<Communicator> comm_;
};

// The existing collectives, with their in-place layouts.
TEST_P(ConformanceTest, AllReduceEveryOpInPlaceAndNot) {
  for (ReduceOp op : kAllOps) {
    for (size_t count : {size_t{1}, size_t{7}, size_t{4099}}) {
      Buffer send = Upload(Inputs<float>(r(), count, op));
      Buffer recv = Upload(std::vector<float>(count, Sentinel<float>()));
      ASSERT_OK(comm_->AllReduce(send.data(), recv.data(), count, DataType::kFloat32, op));
      const std::string what = absl::StrFormat("%s count %d", ReduceOpName(op), count);
      ExpectElements<float>(
          Download<float>(recv), [&](size_t i) { return Expected<float>(n(), i, op); }, what);
      ASSERT_OK(comm_->AllReduce(send.data(), send.data(), count, DataType::kFloat32, op));
      ExpectElements<float>(
          Download<float>(send), [&](size_t i) { return Expected<float>(n(), i, op); },
          what + " in place");
    }
  }
}

TEST_P(ConformanceTest, AllGatherReduceScatterBroadcastAllToAll) {
  const size_t count = 5;
  std::vector<int32_t> mine(count);
  for (size_t i = 0; i < count; ++i) mine[i] = Tag<int32_t>(r(), i);
  Buffer send = Upload(mine);
  Buffer all = Upload(std::vector<int32_t>(count * un(), Sentinel<int32_t>()));
  ASSERT_OK(comm_->AllGather(send.data(), all.data(), count, DataType::kInt32));
  ExpectElements<int32_t>(
      Download<int32_t>(all),
      [&](size_t k) { return Tag<int32_t>(static_cast<int>(k / count), k % count); }, "all_gather");

  Buffer rs_send = Upload(Inputs<int32_t>(r(), count * un(), ReduceOp::kSum));
  Buffer rs_recv = Upload(std::vector<int32_t>(count, Sentinel<int32_t>()));
  ASSERT_OK(comm_->ReduceScatter(rs_send.data(), rs_recv.data(), count, DataType::kInt32,
                                 ReduceOp::kSum));
  ExpectElements<int32_t>(
      Download<int32_t>(rs_recv),
      [&](size_t i) {
        return Expected<int32_t>(n(), static_cast<size_t>(r()) * count + i, ReduceOp::kSum);
      },
      "reduce_scatter");

  for (int root = 0; root < n(); ++root) {
    Buffer buffer = Upload(r() == root ? mine : std::vector<int32_t>(count, Sentinel<int32_t>()));
    ASSERT_OK(comm_->Broadcast(buffer.data(), count, DataType::kInt32, root));
    ExpectElements<int32_t>(
        Download<int32_t>(buffer), [&](size_t i) { return Tag<int32_t>(root, i); },
        absl::StrFormat("broadcast from %d", root));
  }

  std::vector<int32_t> blocks(count * un());
  for (size_t j = 0; j < un(); ++j) {
    for (size_t i = 0; i < count; ++i)
      blocks[j * count + i] = Tag<int32_t>(r() * n() + static_cast<int>(j), i);
  }
  Buffer a2a_send = Upload(blocks);
  Buffer a2a_recv = Upload(std::vector<int32_t>(count * un(), Sentinel<int32_t>()));
  ASSERT_OK(comm_->AllToAll(a2a_send.data(), a2a_recv.data(), count, DataType::kInt32));
  ExpectElements<int32_t>(
      Download<int32_t>(a2a_recv),
      [&](size_t k) { return Tag<int32_t>(static_cast<int>(k / count) * n() + r(), k % count); },
      "all_to_all");
}

// all_to_all_v with uneven counts (some zero), gaps between the blocks that must stay untouched,
// and blocks laid out in reverse order.
TEST_P(ConformanceTest, AllToAllVUnevenCounts) {
  // Rank s sends Count(s, d) elements to rank d.
  auto count_of = [](int s, int d) { return static_cast<size_t>((s + 2 * d) % 4); };
  std::vector<size_t> send_counts(un()), send_displs(un()), recv_counts(un()), recv_displs(un());
  size_t send_total = 0, recv_total = 0;
  for (int j = n() - 1; j >= 0; --j) {  // reverse layout, one gap element after each block
    const size_t uj = static_cast<size_t>(j);
    send_counts[uj] = count_of(r(), j);
    send_displs[uj] = send_total;
    send_total += send_counts[uj] + 1;
    recv_counts[uj] = count_of(j, r());
    recv_displs[uj] = recv_total;
    recv_total += recv_counts[uj] + 1;
  }
  std::vector<float> send(send_total, Sentinel<float>());
  for (size_t j = 0; j < un(); ++j) {
    for (size_t i = 0; i < send_counts[j]; ++i) {
      send[send_displs[j] + i] = Tag<float>(r() * n() + static_cast<int>(j), i);
    }
  }
  std::vector<float> want(recv_total, -1.0f);
  for (size_t j = 0; j < un(); ++j) {
    for (size_t i = 0; i < recv_counts[j]; ++i) {
      want[recv_displs[j] + i] = Tag<float>(static_cast<int>(j) * n() + r(), i);
    }
  }
  Buffer send_buffer = Upload(send);
  Buffer recv_buffer = Upload(std::vector<float>(recv_total, -1.0f));
  ASSERT_OK(comm_->AllToAllV(send_buffer.data(), send_counts, send_displs, recv_buffer.data(),
                             recv_counts, recv_displs, DataType::kFloat32));
  EXPECT_EQ(Download<float>(recv_buffer), want);

  // The typed overload over host-visible spans (host backends only), and its extent check.
  if (comm_->memory_kind() == MemoryKind::kHost) {
    std::vector<float> recv(recv_total, -1.0f);
    ASSERT_OK(comm_->AllToAllV<float>(send, send_counts, send_displs, absl::MakeSpan(recv),
                                      recv_counts, recv_displs));
    EXPECT_EQ(recv, want);
    size_t needed = 0;  // the end of the last non-empty block
    for (size_t j = 0; j < un(); ++j) {
      if (recv_counts[j] > 0) needed = std::max(needed, recv_displs[j] + recv_counts[j]);
    }
    std::vector<float> short_recv(needed == 0 ? 0 : needed - 1);
    if (needed > 0) {
      EXPECT_THAT(comm_->AllToAllV<float>(send, send_counts, send_displs,
                                          absl::MakeSpan(short_recv), recv_counts, recv_displs),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ends past the")));
    }
  }
}

// all_to_all_v is the interface's only v-collective (comm/op.h). Here the receive side's layout
// shares nothing with the send side's, on every rank and for every peer: the send buffer holds the
// blocks in peer order after a gap of 2 elements, one gap element after each; the receive buffer
// holds them in reverse peer order, starting past the send buffer's whole length, with 2 gap
// elements after each. So recv_displs[j] != send_displs[j] for every peer j (checked), and every
// block is non-empty: a backend that takes any receive displacement (or count) from the send side,
// or writes outside the blocks, fails. Blocking, asynchronous and (host memory) typed calls.
TEST_P(ConformanceTest, AllToAllVReceiveLayoutDiffersFromSendLayoutOnEveryPeer) {
  auto count_of = [](int s, int d) { return static_cast<size_t>(1 + (s + 2 * d) % 3); };
  std::vector<size_t> send_counts(un()), send_displs(un()), recv_counts(un()), recv_displs(un());
  size_t send_total = 2;
  for (size_t j = 0; j < un(); ++j) {
    send_counts[j] = count_of(r(), static_cast<int>(j));
    send_displs[j] = send_total;
    send_total += send_counts[j] + 1;
  }
  size_t recv_total = send_total;
  for (int j = n() - 1; j >= 0; --j) {
    const size_t uj = static_cast<size_t>(j);
    recv_counts[uj] = count_of(j, r());
    recv_displs[uj] = recv_total;
    recv_total += recv_counts[uj] + 2;
  }
  for (size_t j = 0; j < un(); ++j) {
    ASSERT_NE(recv_displs[j], send_displs[j]) << "peer " << j;
    ASSERT_GT(recv_counts[j], 0u) << "peer " << j;
  }
  std::vector<int32_t> send(send_total, Sentinel<int32_t>());
  for (size_t j = 0; j < un(); ++j) {
    for (size_t i = 0; i < send_counts[j]; ++i) {
      send[send_displs[j] + i] = Tag<int32_t>(r() * n() + static_cast<int>(j), i);
    }
  }
  // Block j of the receive buffer: what rank j sent to this rank; gaps keep the sentinel.
  std::vector<int32_t> want(recv_total, Sentinel<int32_t>());
  for (size_t j = 0; j < un(); ++j) {
    for (size_t i = 0; i < recv_counts[j]; ++i) {
      want[recv_displs[j] + i] = Tag<int32_t>(static_cast<int>(j) * n() + r(), i);
    }
  }
  Buffer send_buffer = Upload(send);
  Buffer recv_buffer = Upload(std::vector<int32_t>(recv_total, Sentinel<int32_t>()));
  ASSERT_OK(comm_->AllToAllV(send_buffer.data(), send_counts, send_displs, recv_buffer.data(),
                             recv_counts, recv_displs, DataType::kInt32));
  EXPECT_EQ(Download<int32_t>(recv_buffer), want) << "blocking";

  Buffer async_recv = Upload(std::vector<int32_t>(recv_total, Sentinel<int32_t>()));
  ASSERT_OK_AND_ASSIGN(Work work, comm_->AllToAllVAsync(send_buffer.data(), send_counts,
                                                        send_displs, async_recv.data(), recv_counts,
                                                        recv_displs, DataType::kInt32));
  ASSERT_OK(work.Wait(absl::Seconds(120)));
  EXPECT_EQ(Download<int32_t>(async_recv), want) << "async";

  if (comm_->memory_kind() == MemoryKind::kHost) {
    std::vector<int32_t> recv(recv_total, Sentinel<int32_t>());
    ASSERT_OK(comm_->AllToAllV<int32_t>(send, send_counts, send_displs, absl::MakeSpan(recv),
                                        recv_counts, recv_displs));
    EXPECT_EQ(recv, want) << "typed";
  }
}

TEST_P(ConformanceTest, GatherAndScatterFromEveryRootInPlaceAndNot) {
  const size_t count = 6;
  for (int root = 0; root < n(); ++root) {
    std::vector<int64_t> mine(count);
    for (size_t i = 0; i < count; ++i) mine[i] = Tag<int64_t>(r(), i);
    Buffer send = Upload(mine);
    Buffer all = Upload(std::vector<int64_t>(count * un(), Sentinel<int64_t>()));
    ASSERT_OK(comm_->Gather(send.data(), r() == root ? all.data() : nullptr, count,
                            DataType::kInt64, root));
    const auto gathered = [&](size_t k) {
      return Tag<int64_t>(static_cast<int>(k / count), k % count);
    };
    if (r() == root) {
      ExpectElements<int64_t>(Download<int64_t>(all), gathered,
                              absl::StrFormat("gather to %d", root));
    } else {
      EXPECT_EQ(Download<int64_t>(all), std::vector<int64_t>(count * un(), Sentinel<int64_t>()))
          << "gather wrote into a non-root's receive buffer";
    }
    // In place on the root: its own block is already in the receive buffer.
    std::vector<int64_t> root_all(count * un(), Sentinel<int64_t>());
    for (size_t i = 0; i < count; ++i) root_all[static_cast<size_t>(r()) * count + i] = mine[i];
    Buffer in_place = Upload(root_all);
    const void* gather_send =
        r() == root
            ? static_cast<const void*>(At<int64_t>(in_place, static_cast<size_t>(r()) * count))
            : send.data();
    ASSERT_OK(comm_->Gather(gather_send, in_place.data(), count, DataType::kInt64, root));
    if (r() == root) {
      ExpectElements<int64_t>(Download<int64_t>(in_place), gathered,
                              absl::StrFormat("gather to %d in place", root));
    }

    // Scatter: block j of the root's buffer holds tags of source root*n+j.
    std::vector<int64_t> blocks(count * un());
    for (size_t k = 0; k < blocks.size(); ++k) {
      blocks[k] = Tag<int64_t>(root * n() + static_cast<int>(k / count), k % count);
    }
    Buffer scatter_send = Upload(r() == root ? blocks : std::vector<int64_t>());
    Buffer scatter_recv = Upload(std::vector<int64_t>(count, Sentinel<int64_t>()));
    ASSERT_OK(
        comm_->Scatter(scatter_send.data(), scatter_recv.data(), count, DataType::kInt64, root));
    const auto scattered = [&](size_t i) { return Tag<int64_t>(root * n() + r(), i); };
    ExpectElements<int64_t>(Download<int64_t>(scatter_recv), scattered,
                            absl::StrFormat("scatter from %d", root));
    if (r() == root) {
      Buffer root_blocks = Upload(blocks);
      ASSERT_OK(comm_->Scatter(root_blocks.data(),
                               At<int64_t>(root_blocks, static_cast<size_t>(r()) * count), count,
                               DataType::kInt64, root));
      ExpectElements<int64_t>(
          Download<int64_t>(root_blocks), [&](size_t k) { return ToDouble(blocks[k]); },
          "scatter in place leaves the root alone");
    } else {
      ASSERT_OK(comm_->Scatter(nullptr, scatter_recv.data(), count, DataType::kInt64, root));
      ExpectElements<int64_t>(Download<int64_t>(scatter_recv), scattered,
                              absl::StrFormat("scatter from %d, null send off the root", root));
    }
  }
}

template <typename T>
void ReduceEveryOpAndRoot(Communicator& comm) {
  const DataType type = DataTypeOf<T>::value;
  const int n = comm.size(), r = comm.rank();
  for (ReduceOp op : kAllOps) {
    for (int root = 0; root < n; ++root) {
      const size_t count = 33;
      const std::string what =
          absl::StrFormat("reduce %s %s to %d", DataTypeName(type), ReduceOpName(op), root);
      std::vector<T> inputs = Inputs<T>(r, count, op);
      absl::StatusOr<Buffer> send = comm.AllocateBuffer(count * sizeof(T));
      absl::StatusOr<Buffer> recv = comm.AllocateBuffer(count * sizeof(T));
      ASSERT_TRUE(send.ok() && recv.ok());
      ASSERT_OK(comm.CopyFromHost(send->data(), inputs.data(), send->bytes()));
      std::vector<T> sentinel(count, Sentinel<T>());
      ASSERT_OK(comm.CopyFromHost(recv->data(), sentinel.data(), recv->bytes()));
      ASSERT_OK(comm.Reduce(send->data(), recv->data(), count, type, op, root)) << what;
      std::vector<T> got(count);
      ASSERT_OK(comm.CopyToHost(got.data(), recv->data(), recv->bytes()));
      if (r == root) {
        ExpectElements<T>(
            got, [&](size_t i) { return Expected<T>(n, i, op); }, what);
      } else {
        EXPECT_EQ(got, sentinel) << what << ": wrote into a non-root's receive buffer";
      }
      // In place on the root; a null receive buffer elsewhere.
      ASSERT_OK(comm.CopyFromHost(send->data(), inputs.data(), send->bytes()));
      ASSERT_OK(
          comm.Reduce(send->data(), r == root ? send->data() : nullptr, count, type, op, root));
      if (r == root) {
        ASSERT_OK(comm.CopyToHost(got.data(), send->data(), send->bytes()));
        ExpectElements<T>(
            got, [&](size_t i) { return Expected<T>(n, i, op); }, what + " in place");
      }
    }
  }
}

TEST_P(ConformanceTest, ReduceEveryTypeOpAndRoot) {
  ReduceEveryOpAndRoot<int8_t>(*comm_);
  ReduceEveryOpAndRoot<uint32_t>(*comm_);
  ReduceEveryOpAndRoot<int64_t>(*comm_);
  ReduceEveryOpAndRoot<Float16>(*comm_);
  ReduceEveryOpAndRoot<BFloat16>(*comm_);
  ReduceEveryOpAndRoot<float>(*comm_);
  ReduceEveryOpAndRoot<double>(*comm_);
}

// The 1F1B exchange: every rank sends 4 MiB to its successor and receives 4 MiB from its
// predecessor at once (a ring; at two ranks, both neighbours send first), which Send-then-Recv
// cannot do without deadlock.
TEST_P(ConformanceTest, SendRecvRingOfFourMiB) {
  const size_t count = (size_t{4} << 20) / sizeof(float);
  const int next = (r() + 1) % n(), prev = (r() + n() - 1) % n();
  std::vector<float> mine(count);
  for (size_t i = 0; i < count; ++i) mine[i] = Tag<float>(r(), i);
  Buffer send = Upload(mine);
  Buffer recv = Upload(std::vector<float>(count, Sentinel<float>()));
  ASSERT_OK(
      comm_->SendRecv(send.data(), count, next, recv.data(), count, prev, DataType::kFloat32));
  ExpectElements<float>(
      Download<float>(recv), [&](size_t i) { return Tag<float>(prev, i); }, "sendrecv");
  // Zero counts exchange nothing and succeed.
  EXPECT_OK(comm_->SendRecv(nullptr, 0, next, nullptr, 0, prev, DataType::kFloat32));
}

TEST_P(ConformanceTest, ZeroCountsSucceedWithNullBuffers) {
  const std::vector<size_t> zeros(un(), 0);
  EXPECT_OK(comm_->AllReduce(nullptr, nullptr, 0, DataType::kFloat32, ReduceOp::kSum));
  EXPECT_OK(comm_->AllGather(nullptr, nullptr, 0, DataType::kFloat32));
  EXPECT_OK(comm_->ReduceScatter(nullptr, nullptr, 0, DataType::kFloat32, ReduceOp::kSum));
  EXPECT_OK(comm_->Broadcast(nullptr, 0, DataType::kFloat32, 0));
  EXPECT_OK(comm_->AllToAll(nullptr, nullptr, 0, DataType::kFloat32));
  EXPECT_OK(comm_->AllToAllV(nullptr, zeros, zeros, nullptr, zeros, zeros, DataType::kFloat32));
  EXPECT_OK(comm_->Gather(nullptr, nullptr, 0, DataType::kFloat32, 0));
  EXPECT_OK(comm_->Scatter(nullptr, nullptr, 0, DataType::kFloat32, 0));
  EXPECT_OK(comm_->Reduce(nullptr, nullptr, 0, DataType::kFloat32, ReduceOp::kMax, 0));
  EXPECT_OK(comm_->Barrier());
}

// The guards run before any communication, the same way on every backend: nothing here reaches
// the backend, so ranks need not agree.
TEST_P(ConformanceTest, UnknownDataTypeAndReduceOpAreInvalidArgument) {
  const auto bad_type = static_cast<DataType>(42);
  const auto bad_op = static_cast<ReduceOp>(17);
  float x[8] = {};
  const std::vector<size_t> ones(un(), 1), displs(un(), 0);
  const auto unknown_type = [](std::string_view op) {
    return StatusIs(absl::StatusCode::kInvalidArgument,
                    HasSubstr(absl::StrFormat("%s on axis 'conf': unknown DataType value 42", op)));
  };
  EXPECT_THAT(comm_->AllReduce(x, x, 1, bad_type, ReduceOp::kSum), unknown_type("all_reduce"));
  EXPECT_THAT(comm_->AllGather(x, x, 1, bad_type), unknown_type("all_gather"));
  EXPECT_THAT(comm_->ReduceScatter(x, x, 1, bad_type, ReduceOp::kSum),
              unknown_type("reduce_scatter"));
  EXPECT_THAT(comm_->Broadcast(x, 1, bad_type, 0), unknown_type("broadcast"));
  EXPECT_THAT(comm_->AllToAll(x, x + 4, 1, bad_type), unknown_type("all_to_all"));
  EXPECT_THAT(comm_->Send(x, 1, bad_type, 0), unknown_type("send"));
  EXPECT_THAT(comm_->Recv(x, 1, bad_type, 0), unknown_type("recv"));
  EXPECT_THAT(comm_->AllToAllV(x, ones, displs, x + 4, ones, displs, bad_type),
              unknown_type("all_to_all_v"));
  EXPECT_THAT(comm_->Gather(x, x, 1, bad_type, 0), unknown_type("gather"));
  EXPECT_THAT(comm_->Scatter(x, x, 1, bad_type, 0), unknown_type("scatter"));
  EXPECT_THAT(comm_->Reduce(x, x, 1, bad_type, ReduceOp::kSum, 0), unknown_type("reduce"));
  EXPECT_THAT(comm_->SendRecv(x, 1, 0, x + 4, 1, 0, bad_type), unknown_type("sendrecv"));
  const auto unknown_op = [](std::string_view op) {
    return StatusIs(absl::StatusCode::kInvalidArgument,
                    HasSubstr(absl::StrFormat("%s on axis 'conf': unknown ReduceOp value 17", op)));
  };
  EXPECT_THAT(comm_->AllReduce(x, x, 1, DataType::kFloat32, bad_op), unknown_op("all_reduce"));
  EXPECT_THAT(comm_->ReduceScatter(x, x, 1, DataType::kFloat32, bad_op),
              unknown_op("reduce_scatter"));
  EXPECT_THAT(comm_->Reduce(x, x, 1, DataType::kFloat32, bad_op, 0), unknown_op("reduce"));
}

TEST_P(ConformanceTest, BadArgumentsOfTheNewOperations) {
  float x[8] = {};
  const std::vector<size_t> ones(un(), 1), displs(un(), 0), short_counts(un() + 1, 0);
  const auto invalid = [](const std::string& text) {
    return StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(text));
  };
  EXPECT_THAT(comm_->AllToAllV(x, short_counts, displs, x + 4, ones, displs, DataType::kFloat32),
              invalid(absl::StrFormat("all_to_all_v on axis 'conf': send_counts has %d entries, "
                                      "expected one per rank (%d)",
                                      un() + 1, un())));
  EXPECT_THAT(comm_->AllToAllV(nullptr, ones, displs, x + 4, ones, displs, DataType::kFloat32),
              invalid("send buffer is null"));
  EXPECT_THAT(comm_->AllToAllV(x, ones, displs, x, ones, displs, DataType::kFloat32),
              invalid("overlap"));
  EXPECT_THAT(comm_->Gather(x, x, 1, DataType::kFloat32, n()),
              invalid(absl::StrFormat("gather on axis 'conf': root %d is out of range", n())));
  EXPECT_THAT(comm_->Scatter(x, x, 1, DataType::kFloat32, -1),
              invalid("scatter on axis 'conf': root -1 is out of range"));
  EXPECT_THAT(comm_->Reduce(x, x, 1, DataType::kFloat32, ReduceOp::kSum, n()),
              invalid("reduce on axis 'conf': root"));
  EXPECT_THAT(comm_->Gather(nullptr, x, 1, DataType::kFloat32, 0), invalid("send buffer is null"));
  EXPECT_THAT(
      comm_->SendRecv(x, 1, n(), x + 4, 1, 0, DataType::kFloat32),
      invalid(absl::StrFormat("sendrecv on axis 'conf': destination %d is out of range", n())));
  EXPECT_THAT(comm_->SendRecv(x, 1, 0, x + 4, 1, -2, DataType::kFloat32),
              invalid("sendrecv on axis 'conf': source -2 is out of range"));
  EXPECT_THAT(comm_->SendRecv(x, 4, 0, x + 2, 4, 0, DataType::kFloat32), invalid("overlap"));
  // On the root, gather/scatter/reduce buffers overlapping other than in place.
  const int root = 0;
  if (r() == root) {
    const void* misaligned = reinterpret_cast<const char*>(x) + 2;
    EXPECT_THAT(comm_->Gather(misaligned, x, 1, DataType::kFloat32, root),
                invalid("overlap other than in place"));
    EXPECT_THAT(comm_->Reduce(x, x + 1, 2, DataType::kFloat32, ReduceOp::kSum, root),
                invalid("overlap other than in place"));
  }
}

TEST_P(ConformanceTest, AbortedCommunicatorRefusesEveryOperation) {
  ASSERT_OK(comm_->Abort());
  float x[8] = {};
  const std::vector<size_t> ones(un(), 1), displs(un(), 0);
  const auto aborted = [](std::string_view op) {
    return StatusIs(
        absl::StatusCode::kFailedPrecondition,
        HasSubstr(absl::StrFormat("%s on axis 'conf': the communicator was aborted", op)));
  };
  EXPECT_THAT(comm_->AllReduce(x, x, 1, DataType::kFloat32, ReduceOp::kSum), aborted("all_reduce"));
  EXPECT_THAT(comm_->Barrier(), aborted("barrier"));
  EXPECT_THAT(comm_->Split(0, 0, {.name = "child"}), aborted("split"));
  EXPECT_THAT(comm_->SplitAgreed(0, 0, {.name = "child"}), aborted("split"));
  EXPECT_THAT(comm_->AllToAllV(x, ones, displs, x + 4, ones, displs, DataType::kFloat32),
              aborted("all_to_all_v"));
  EXPECT_THAT(comm_->Gather(x, x, 1, DataType::kFloat32, 0), aborted("gather"));
  EXPECT_THAT(comm_->Scatter(x, x, 1, DataType::kFloat32, 0), aborted("scatter"));
  EXPECT_THAT(comm_->Reduce(x, x, 1, DataType::kFloat32, ReduceOp::kSum, 0), aborted("reduce"));
  EXPECT_THAT(comm_->SendRecv(x, 1, 0, x + 4, 1, 0, DataType::kFloat32), aborted("sendrecv"));
  // Even a zero-count operation reports the abort (the state is checked first).
  EXPECT_THAT(comm_->Gather(nullptr, nullptr, 0, DataType::kFloat32, 0), aborted("gather"));
}

// Asynchronous operations (issue 13): every operation through its Async entry point, several in
// flight at once, waited in the reverse order of issue.
TEST_P(ConformanceTest, AsyncOperationsInFlightTogetherWaitedInAnyOrder) {
  const size_t count = 9;
  Buffer reduce_send = Upload(Inputs<float>(r(), count, ReduceOp::kAvg));
  Buffer reduce_recv = Upload(std::vector<float>(count, Sentinel<float>()));
  std::vector<int32_t> mine(count);
  for (size_t i = 0; i < count; ++i) mine[i] = Tag<int32_t>(r(), i);
  Buffer gather_send = Upload(mine);
  Buffer gather_recv = Upload(std::vector<int32_t>(count * un(), Sentinel<int32_t>()));
  Buffer bcast = Upload(r() == n() - 1 ? mine : std::vector<int32_t>(count, Sentinel<int32_t>()));
  Buffer root_recv = Upload(std::vector<float>(count, Sentinel<float>()));
  const int next = (r() + 1) % n(), prev = (r() + n() - 1) % n();
  Buffer p2p_recv = Upload(std::vector<int32_t>(count, Sentinel<int32_t>()));
  Buffer sr_recv = Upload(std::vector<int32_t>(count, Sentinel<int32_t>()));

  std::vector<Work> works;
  auto issue = [&](absl::StatusOr<Work> work) {
    ASSERT_TRUE(work.ok()) << work.status();
    ASSERT_TRUE(work->valid());
    works.push_back(*std::move(work));
  };
  issue(comm_->AllReduceAsync(reduce_send.data(), reduce_recv.data(), count, DataType::kFloat32,
                              ReduceOp::kAvg));
  issue(comm_->AllGatherAsync(gather_send.data(), gather_recv.data(), count, DataType::kInt32));
  issue(comm_->BroadcastAsync(bcast.data(), count, DataType::kInt32, n() - 1));
  issue(comm_->ReduceAsync(reduce_send.data(), root_recv.data(), count, DataType::kFloat32,
                           ReduceOp::kMax, 0));
  issue(comm_->BarrierAsync());
  // Non-blocking send and receive, the send first (the self backend buffers the message). On
  // NCCL, point-to-point operations outside a batch run in stream order, so a ring of them would
  // wait on each other: only the grouped sendrecv runs there.
  const bool p2p = comm_->backend() != "nccl";
  if (p2p) {
    issue(comm_->SendAsync(gather_send.data(), count, DataType::kInt32, next));
    issue(comm_->RecvAsync(p2p_recv.data(), count, DataType::kInt32, prev));
  }
  issue(comm_->SendRecvAsync(gather_send.data(), count, prev, sr_recv.data(), count, next,
                             DataType::kInt32));
  EXPECT_EQ(works[0].op(), "all_reduce");
  EXPECT_EQ(works.back().op(), "sendrecv");
  for (auto it = works.rbegin(); it != works.rend(); ++it) {
    EXPECT_OK(it->Wait(absl::Seconds(120))) << it->op();
    EXPECT_OK(it->status()) << it->op();
    ASSERT_OK_AND_ASSIGN(bool done, it->Test());
    EXPECT_TRUE(done);
  }
  ExpectElements<float>(
      Download<float>(reduce_recv),
      [&](size_t i) { return Expected<float>(n(), i, ReduceOp::kAvg); }, "all_reduce avg");
  ExpectElements<int32_t>(
      Download<int32_t>(gather_recv),
      [&](size_t k) { return Tag<int32_t>(static_cast<int>(k / count), k % count); }, "all_gather");
  ExpectElements<int32_t>(
      Download<int32_t>(bcast), [&](size_t i) { return Tag<int32_t>(n() - 1, i); }, "broadcast");
  if (r() == 0) {
    ExpectElements<float>(
        Download<float>(root_recv),
        [&](size_t i) {
          double m = Input<float>(0, i, ReduceOp::kAvg);
          for (int q = 1; q < n(); ++q) m = std::max(m, Input<float>(q, i, ReduceOp::kAvg));
          return m;
        },
        "reduce max");
  }
  if (p2p) {
    ExpectElements<int32_t>(
        Download<int32_t>(p2p_recv), [&](size_t i) { return Tag<int32_t>(prev, i); }, "recv");
  }
  ExpectElements<int32_t>(
      Download<int32_t>(sr_recv), [&](size_t i) { return Tag<int32_t>(next, i); }, "sendrecv");
}

// The 1F1B steady state with non-blocking point to point: both pipeline neighbours send 4 MiB
// first (each rank sends to its successor and its predecessor), then receive.
TEST_P(ConformanceTest, NonBlockingSendsFirstDoNotDeadlock) {
  if (comm_->backend() == "nccl") {
    GTEST_SKIP() << "NCCL runs separate sends and receives in stream order: this exchange needs a "
                    "batch (ncclGroupStart/End), which nmesh does not provide yet";
  }
  const size_t count = (size_t{4} << 20) / sizeof(float);
  const int next = (r() + 1) % n(), prev = (r() + n() - 1) % n();
  std::vector<float> mine(count);
  for (size_t i = 0; i < count; ++i) mine[i] = Tag<float>(r(), i);
  Buffer send = Upload(mine);
  Buffer from_prev = Upload(std::vector<float>(count, Sentinel<float>()));
  Buffer from_next = Upload(std::vector<float>(count, Sentinel<float>()));
  ASSERT_OK_AND_ASSIGN(Work to_next,
                       comm_->SendAsync(send.data(), count, DataType::kFloat32, next));
  ASSERT_OK_AND_ASSIGN(Work to_prev,
                       comm_->SendAsync(send.data(), count, DataType::kFloat32, prev));
  ASSERT_OK_AND_ASSIGN(Work recv_prev,
                       comm_->RecvAsync(from_prev.data(), count, DataType::kFloat32, prev));
  ASSERT_OK_AND_ASSIGN(Work recv_next,
                       comm_->RecvAsync(from_next.data(), count, DataType::kFloat32, next));
  for (Work* w : {&to_next, &to_prev, &recv_prev, &recv_next}) EXPECT_OK(w->Wait());
  ExpectElements<float>(
      Download<float>(from_prev), [&](size_t i) { return Tag<float>(prev, i); },
      "from the predecessor");
  ExpectElements<float>(
      Download<float>(from_next), [&](size_t i) { return Tag<float>(next, i); },
      "from the successor");
}

TEST_P(ConformanceTest, WorkHandleMisuseIsAClearStatus) {
  // Waited twice.
  std::vector<float> host(3, 1.0f);
  Buffer buffer = Upload(host);
  ASSERT_OK_AND_ASSIGN(Work work, comm_->AllReduceAsync(buffer.data(), buffer.data(), 3,
                                                        DataType::kFloat32, ReduceOp::kSum));
  EXPECT_OK(work.Wait());
  EXPECT_THAT(work.Wait(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    HasSubstr("all_reduce on axis 'conf': this work handle was "
                                              "already waited (its status was OK)")));
  EXPECT_OK(work.status());
  ExpectElements<float>(
      Download<float>(buffer), [&](size_t) { return n(); }, "sum of ones");
  // Empty and moved-from handles.
  Work moved = std::move(work);
  EXPECT_THAT(work.Wait(),
              StatusIs(absl::StatusCode::kFailedPrecondition,  // NOLINT: use after move
                       HasSubstr("empty handle")));
  EXPECT_THAT(Work().Test().status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_EQ(Work().op(), "");
  // Argument errors come back at once, not through the handle.
  EXPECT_THAT(comm_->AllReduceAsync(buffer.data(), buffer.data(), 3, static_cast<DataType>(99),
                                    ReduceOp::kSum),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown DataType value 99")));
  EXPECT_THAT(comm_->GatherAsync(buffer.data(), buffer.data(), 1, DataType::kFloat32, n()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("root")));
  // Zero counts: a handle that is already complete.
  ASSERT_OK_AND_ASSIGN(Work empty, comm_->AllGatherAsync(nullptr, nullptr, 0, DataType::kFloat32));
  ASSERT_OK_AND_ASSIGN(bool done, empty.Test());
  EXPECT_TRUE(done);
  EXPECT_OK(empty.Wait());
  // After Abort, enqueueing fails at once.
  ASSERT_OK(comm_->Abort());
  EXPECT_THAT(comm_->BarrierAsync(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                              HasSubstr("barrier on axis 'conf': the "
                                                        "communicator was aborted")));
}

// A receive nobody has sent yet: Wait with a short timeout is DeadlineExceeded and leaves it
// pending; the matching send then completes it. A handle still pending when its communicator is
// destroyed ends with FailedPrecondition. (Backends whose operations complete at once have no
// pending state to test.)
TEST_P(ConformanceTest, PendingWorkTimesOutThenCompletesAndOutlivesItsCommunicator) {
  if (comm_->backend() == "self") GTEST_SKIP() << "self operations complete when issued";
  if (comm_->memory_kind() != MemoryKind::kHost) {
    GTEST_SKIP() << "needs host memory (a self-send on the device backend is a group operation)";
  }
  std::vector<int64_t> mine = {r() * 10, r() * 10 + 1};
  std::vector<int64_t> got(2, -1);
  ASSERT_OK_AND_ASSIGN(Work recv, comm_->RecvAsync(got.data(), 2, DataType::kInt64, r()));
  EXPECT_THAT(recv.Wait(absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("recv on axis 'conf': the operation did not complete within 20 "
                                 "ms; it is still pending")));
  EXPECT_THAT(recv.status(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("pending")));
  ASSERT_OK_AND_ASSIGN(Work send, comm_->SendAsync(mine.data(), 2, DataType::kInt64, r()));
  EXPECT_OK(recv.Wait());
  EXPECT_OK(send.Wait());
  EXPECT_EQ(got, mine);

  ASSERT_OK_AND_ASSIGN(Work orphan, comm_->RecvAsync(got.data(), 2, DataType::kInt64, r()));
  comm_.reset();
  EXPECT_THAT(orphan.Wait(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("recv on axis 'conf': the communicator was destroyed while the "
                                 "operation was pending")));
  EXPECT_THAT(orphan.status(), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
}

// Batches (issue 13). The 1F1B steady state: pipeline neighbours both send 4 MiB first, then
// receive, on two communicators of the backend at once (the world and a split of it), issued in
// one batch.
TEST_P(ConformanceTest, OneFOneBExchangeCompletesInABatch) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> pp, comm_->Split(0, r(), {.name = "pp"}));
  ASSERT_NE(pp, nullptr);
  const size_t count = (size_t{4} << 20) / sizeof(float);
  const int next = (r() + 1) % n(), prev = (r() + n() - 1) % n();
  std::vector<float> act(count), grad(count);
  for (size_t i = 0; i < count; ++i) {
    act[i] = Tag<float>(r(), i);
    grad[i] = Tag<float>(r() + 50, i);
  }
  Buffer act_send = Upload(act), grad_send = Upload(grad);
  Buffer act_recv = Upload(std::vector<float>(count, Sentinel<float>()));
  Buffer grad_recv = Upload(std::vector<float>(count, Sentinel<float>()));
  Buffer sum = Upload(std::vector<float>(5, 1.0f));
  ASSERT_OK_AND_ASSIGN(Batch batch, Batch::Begin());
  std::vector<Work> works;
  // Forward activations to the successor and gradients to the predecessor, both first.
  auto add = [&](absl::StatusOr<Work> work) {
    ASSERT_TRUE(work.ok()) << work.status();
    works.push_back(*std::move(work));
  };
  add(pp->SendAsync(act_send.data(), count, DataType::kFloat32, next));
  add(pp->SendAsync(grad_send.data(), count, DataType::kFloat32, prev));
  add(pp->RecvAsync(act_recv.data(), count, DataType::kFloat32, prev));
  add(pp->RecvAsync(grad_recv.data(), count, DataType::kFloat32, next));
  add(comm_->AllReduceAsync(sum.data(), sum.data(), 5, DataType::kFloat32, ReduceOp::kSum));
  ASSERT_OK_AND_ASSIGN(Work all, batch.End());
  EXPECT_EQ(all.op(), "batch");
  EXPECT_OK(all.Wait(absl::Seconds(120)));
  for (Work& work : works) EXPECT_OK(work.Wait()) << work.op();
  ExpectElements<float>(
      Download<float>(act_recv), [&](size_t i) { return Tag<float>(prev, i); }, "activations");
  ExpectElements<float>(
      Download<float>(grad_recv), [&](size_t i) { return Tag<float>(next + 50, i); }, "gradients");
  ExpectElements<float>(
      Download<float>(sum), [&](size_t) { return n(); }, "all_reduce");
}

// Several agreed splits made together (SplitAgreedMany): pairs (the last rank alone at odd sizes),
// the ranks of this rank's parity in descending order, the lower half only (the others join
// none), the pairs again (a second group with the same members), and everyone. Each group's size,
// rank order and an all_gather of its members' ranks in this communicator are checked against the
// members listed here, written out from the rank numbers.
TEST_P(ConformanceTest, SplitAgreedManyMakesEveryGroupTogether) {
  const int me = r();
  std::vector<int> pair, parity, lower, all;
  for (int q = 0; q < n(); ++q) {
    if (q / 2 == me / 2) pair.push_back(q);
    if (q % 2 == me % 2) parity.insert(parity.begin(), q);
    if (me < n() / 2 && q < n() / 2) lower.push_back(q);
    all.push_back(q);
  }
  const std::vector<std::vector<int>> groups = {pair, parity, lower, pair, all};
  std::vector<AgreedSplit> splits;
  for (size_t i = 0; i < groups.size(); ++i) {
    splits.push_back({.members = groups[i], .options = {.name = absl::StrCat("many", i)}});
  }
  ASSERT_OK_AND_ASSIGN(std::vector<std::unique_ptr<Communicator>> made,
                       comm_->SplitAgreedMany(splits));
  ASSERT_EQ(made.size(), groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    const std::vector<int>& members = groups[i];
    if (members.empty()) {
      EXPECT_EQ(made[i], nullptr) << "split " << i;
      continue;
    }
    ASSERT_NE(made[i], nullptr) << "split " << i;
    Communicator& child = *made[i];
    ASSERT_EQ(child.size(), static_cast<int>(members.size())) << "split " << i;
    EXPECT_EQ(child.rank(),
              static_cast<int>(std::find(members.begin(), members.end(), me) - members.begin()))
        << "split " << i;
    EXPECT_EQ(child.options().name, absl::StrCat("many", i));
    Buffer mine = Upload(std::vector<int64_t>{me});
    Buffer gathered = Upload(std::vector<int64_t>(members.size(), -1));
    ASSERT_OK(child.AllGather(mine.data(), gathered.data(), 1, DataType::kInt64)) << "split " << i;
    ExpectElements<int64_t>(
        Download<int64_t>(gathered), [&](size_t j) { return members[j]; },
        absl::StrCat("split ", i));
  }
  // Each new communicator works on its own after the others are gone.
  made.front().reset();
  Buffer one = Upload(std::vector<int64_t>{1});
  ASSERT_OK(made.back()->AllReduce(one.data(), one.data(), 1, DataType::kInt64, ReduceOp::kSum));
  ExpectElements<int64_t>(
      Download<int64_t>(one), [&](size_t) { return n(); }, "all");
  // An entry that does not hold the caller is refused on every rank, before any split is made.
  std::vector<AgreedSplit> bad = {{.members = {(me + 1) % n()}, .options = {.name = "bad"}}};
  if (n() > 1) {
    EXPECT_THAT(comm_->SplitAgreedMany(bad).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("split")));
  }
}

TEST_P(ConformanceTest, BatchMisuseIsAClearStatus) {
  float x[4] = {1, 1, 1, 1};
  {
    ASSERT_OK_AND_ASSIGN(Batch batch, Batch::Begin());
    EXPECT_THAT(Batch::Begin().status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("a batch is already open on this thread")));
    // Blocking operations would wait for operations the batch has not issued.
    EXPECT_THAT(comm_->Barrier(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("barrier on axis 'conf': a batch is open on this thread")));
    EXPECT_THAT(comm_->AllReduce(x, x, 4, DataType::kFloat32, ReduceOp::kSum),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("a batch is open")));
    ASSERT_OK_AND_ASSIGN(Work work, comm_->BarrierAsync());
    EXPECT_THAT(work.Wait(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      HasSubstr("barrier on axis 'conf': Wait on a handle whose "
                                                "batch is still open")));
    EXPECT_THAT(work.Test().status(),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("still open")));
    if (comm_->backend() != "self") {
      // One backend per batch.
      auto other = NewSelfCommunicator({.name = "other"});
      EXPECT_THAT(other->BarrierAsync(),
                  StatusIs(absl::StatusCode::kInvalidArgument,
                           HasSubstr("barrier on axis 'other': the open batch holds")));
    }
    ASSERT_OK_AND_ASSIGN(Work all, batch.End());
    EXPECT_THAT(batch.End().status(),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already ended")));
    EXPECT_OK(work.Wait());
    EXPECT_OK(all.Wait());
    // A batch left open is ended when destroyed (its handles stay usable).
    ASSERT_OK_AND_ASSIGN(Batch forgotten, Batch::Begin());
    ASSERT_OK_AND_ASSIGN(Work late, comm_->BarrierAsync());
    { Batch gone = std::move(forgotten); }
    EXPECT_OK(late.Wait());
  }
  // Closed: blocking operations work again, and a new batch may open.
  EXPECT_OK(comm_->Barrier());
  ASSERT_OK_AND_ASSIGN(Batch again, Batch::Begin());
  ASSERT_OK_AND_ASSIGN(Work empty, again.End());
  EXPECT_OK(empty.Wait());
}

// The optional argument check (CommOptions::check_arguments, issue 13).
TEST_P(ConformanceTest, ArgumentCheckFindsMismatchesOnEveryRank) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> checked,
                       comm_->Split(0, r(), {.name = "checked", .check_arguments = true}));
  ASSERT_NE(checked, nullptr);
  // Matching calls pass, zero counts included.
  Buffer x = Upload(std::vector<int32_t>(8 * un(), 1));
  ASSERT_OK(checked->AllReduce(x.data(), x.data(), 8, DataType::kInt32, ReduceOp::kSum));
  ASSERT_OK(checked->AllReduce(nullptr, nullptr, 0, DataType::kInt32, ReduceOp::kSum));
  ASSERT_OK(checked->Broadcast(x.data(), 3, DataType::kInt32, n() - 1));
  ASSERT_OK(checked->Barrier());
  const std::vector<size_t> ones(un(), 1), displs = [&] {
    std::vector<size_t> d(un());
    for (size_t j = 0; j < un(); ++j) d[j] = j;
    return d;
  }();
  Buffer y = Upload(std::vector<int32_t>(un(), 0));
  ASSERT_OK(checked->AllToAllV(x.data(), ones, displs, y.data(), ones, displs, DataType::kInt32));
  if (n() == 1) return;  // nothing can disagree

  // Counts: rank 0 passes 8, the others 4.
  EXPECT_THAT(
      checked->AllReduce(x.data(), x.data(), r() == 0 ? 8 : 4, DataType::kInt32, ReduceOp::kSum),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("all_reduce on axis 'checked': ranks disagree: rank 0 called all_reduce "
                         "count 8 int32 sum, rank 1 called all_reduce count 4 int32 sum")));
  // Roots: every rank names itself.
  EXPECT_THAT(checked->Broadcast(x.data(), 3, DataType::kInt32, r()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("broadcast on axis 'checked': ranks disagree: rank 0 called "
                                 "broadcast count 3 int32 root 0, rank 1 called broadcast count 3 "
                                 "int32 root 1")));
  // Operations: rank 0 gathers, the others reduce.
  EXPECT_THAT(r() == 0 ? checked->Gather(x.data(), y.data(), 1, DataType::kInt32, 0)
                       : checked->Reduce(x.data(), nullptr, 1, DataType::kInt32, ReduceOp::kMax, 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ranks disagree: rank 0 called gather count 1 int32 root 0, "
                                 "rank 1 called reduce count 1 int32 max root 0")));
  // all_to_all_v: rank 0 sends 2 elements to rank 1, which expects 1.
  std::vector<size_t> send_counts = ones, send_displs(un());
  if (r() == 0) send_counts[1] = 2;
  for (size_t j = 1; j < un(); ++j) send_displs[j] = send_displs[j - 1] + send_counts[j - 1];
  EXPECT_THAT(checked->AllToAllV(x.data(), send_counts, send_displs, y.data(), ones, displs,
                                 DataType::kInt32),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("all_to_all_v on axis 'checked': counts disagree: rank 0 sends 2 "
                                 "elements to rank 1, which expects 1 from it")));
  // Nothing was sent: the communicator still works.
  EXPECT_OK(checked->Barrier());
}

// A timeout ends an operation nothing will complete (a receive nobody sends), names the operation,
// the communicator and the timeout, and aborts the communicator.
TEST_P(ConformanceTest, TimeoutEndsAnUnmatchedReceiveAndAbortsTheCommunicator) {
  if (comm_->backend() == "self") {
    GTEST_SKIP() << "a self communicator never waits (an unmatched receive fails at once)";
  }
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Communicator> short_lived,
      comm_->Split(0, r(),
                   {.name = "short", .timeout = absl::Milliseconds(200), .interruptible = true}));
  ASSERT_NE(short_lived, nullptr);
  Buffer buffer = Upload(std::vector<int32_t>(4, 0));
  absl::Status status = short_lived->Recv(buffer.data(), 4, DataType::kInt32, r());
  if (status.code() == absl::StatusCode::kAborted) {
    // MPI: every rank times out at about the same moment, and the first to do so tells the others
    // (a revocation notice), so a rank may fail with that peer's timeout just before its own.
    EXPECT_THAT(std::string(status.message()),
                ::testing::ContainsRegex("recv on axis 'short': rank [0-9]+: recv on axis 'short' "
                                         "timed out after 200 ms"));
    EXPECT_THAT(short_lived->Barrier(),
                StatusIs(absl::StatusCode::kAborted, HasSubstr("timed out after 200 ms")));
  } else {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded,
                                 HasSubstr(absl::StrFormat("recv on axis 'short' timed out after "
                                                           "200 ms (rank %d of %d)",
                                                           r(), n()))));
    EXPECT_THAT(short_lived->Barrier(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("barrier on axis 'short': the communicator was aborted (an "
                                   "earlier recv timed out after 200 ms)")));
  }
  // The parent is untouched.
  EXPECT_OK(comm_->Barrier());
}

TEST_P(ConformanceTest, TypedAsyncOverloadsCheckSizesOnHostMemory) {
  if (comm_->memory_kind() != MemoryKind::kHost) GTEST_SKIP() << "host spans only";
  std::vector<int64_t> send(3, 2), recv(3, 0), short_recv(2, 0);
  ASSERT_OK_AND_ASSIGN(Work work,
                       comm_->AllReduceAsync<int64_t>(send, absl::MakeSpan(recv), ReduceOp::kSum));
  ASSERT_OK(work.Wait());
  EXPECT_EQ(recv, std::vector<int64_t>(3, 2 * n()));
  EXPECT_THAT(comm_->AllReduceAsync<int64_t>(send, absl::MakeSpan(short_recv), ReduceOp::kSum),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("all_reduce on axis 'conf': receive buffer holds 2 elements, "
                                 "expected 3")));
  std::vector<int64_t> all(3 * un(), 0);
  ASSERT_OK_AND_ASSIGN(Work gather, comm_->AllGatherAsync<int64_t>(send, absl::MakeSpan(all)));
  ASSERT_OK(gather.Wait());
  EXPECT_EQ(all, std::vector<int64_t>(3 * un(), 2));
  EXPECT_THAT(comm_->AllToAllAsync<int64_t>(send, absl::MakeSpan(short_recv)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("all_to_all")));
}

INSTANTIATE_TEST_SUITE_P(Backends, ConformanceTest,
                         ::testing::ValuesIn(BackendsWithInterruptible()), BackendName);

}  // namespace
}  // namespace nmesh::comm
