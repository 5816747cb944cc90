#include "nmesh/comm/gloo/operations.h"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "gloo/allgather.h"
#include "gloo/allreduce.h"
#include "gloo/alltoall.h"
#include "gloo/barrier.h"
#include "gloo/broadcast.h"
#include "gloo/common/error.h"
#include "gloo/gather.h"
#include "gloo/reduce.h"
#include "gloo/scatter.h"
#include "gloo/transport/unbound_buffer.h"
#include "gloo/types.h"
#include "nmesh/comm/gloo/reduce.h"
#include "nmesh/comm/internal/host_math.h"
#include "nmesh/comm/types.h"

namespace nmesh::comm::gloo {
namespace {

constexpr uint8_t kPointToPointSlotPrefix = 0x40;
constexpr uint8_t kAllToAllVSlotPrefix = 0x41;
constexpr uint8_t kSplitSlotPrefix = 0x42;

// Calls f with a value of the unsigned type of `bytes` bytes: gloo's options take the element
// size from a template argument, and moving data needs nothing more (reductions get their typed
// function separately).
template <typename F>
void WithCarrier(size_t bytes, F&& f) {
  switch (bytes) {
    case 1:
      return f(uint8_t{});
    case 2:
      return f(uint16_t{});
    case 4:
      return f(uint32_t{});
    default:
      return f(uint64_t{});
  }
}

template <typename T>
T* Mut(const void* p) {
  return static_cast<T*>(const_cast<void*>(p));
}

void AllReduce(const std::shared_ptr<::gloo::Context>& ctx, const void* send, void* recv,
               size_t count, DataType type, ReduceOp op, std::chrono::milliseconds timeout) {
  WithCarrier(DataTypeSize(type), [&](auto carrier) {
    using T = decltype(carrier);
    ::gloo::AllreduceOptions opts(ctx);
    if (send != recv) opts.setInput<T>(Mut<T>(send), count);
    opts.setOutput<T>(static_cast<T*>(recv), count);
    opts.setReduceFunction(ReduceFunctionFor(type, op));
    opts.setTimeout(timeout);
    ::gloo::allreduce(opts);
  });
  if (op == ReduceOp::kAvg) internal::DivideElements(recv, count, type, ctx->size);
}

void AllToAllV(const std::shared_ptr<::gloo::Context>& ctx, const OpArgs& a,
               std::chrono::milliseconds timeout) {
  const size_t es = DataTypeSize(a.type);
  const int n = ctx->size, me = ctx->rank;
  size_t send_extent = 0, recv_extent = 0;
  for (int j = 0; j < n; ++j) {
    if (j == me) continue;
    if (a.send_counts[j] > 0)
      send_extent = std::max(send_extent, a.send_displs[j] + a.send_counts[j]);
    if (a.recv_counts[j] > 0)
      recv_extent = std::max(recv_extent, a.recv_displs[j] + a.recv_counts[j]);
  }
  std::unique_ptr<::gloo::transport::UnboundBuffer> in, out;
  if (send_extent > 0) in = ctx->createUnboundBuffer(const_cast<void*>(a.send), send_extent * es);
  if (recv_extent > 0) out = ctx->createUnboundBuffer(a.recv, recv_extent * es);
  const uint64_t slot = ::gloo::Slot::build(kAllToAllVSlotPrefix, 0);
  int recvs = 0, sends = 0;
  for (int j = 0; j < n; ++j) {
    if (j != me && a.recv_counts[j] > 0) {
      out->recv(j, slot, a.recv_displs[j] * es, a.recv_counts[j] * es);
      ++recvs;
    }
  }
  for (int k = 1; k < n; ++k) {  // peers in ring order, so that no peer gets every send first
    const int j = (me + k) % n;
    if (a.send_counts[j] > 0) {
      in->send(j, slot, a.send_displs[j] * es, a.send_counts[j] * es);
      ++sends;
    }
  }
  const size_t own = std::min(a.send_counts[me], a.recv_counts[me]);
  if (own > 0) {
    std::memcpy(static_cast<char*>(a.recv) + a.recv_displs[me] * es,
                static_cast<const char*>(a.send) + a.send_displs[me] * es, own * es);
  }
  for (int i = 0; i < recvs; ++i) out->waitRecv(timeout);
  for (int i = 0; i < sends; ++i) in->waitSend(timeout);
}

}  // namespace

uint64_t PointToPointSlot() { return ::gloo::Slot::build(kPointToPointSlotPrefix, 0); }
uint64_t SplitSlot() { return ::gloo::Slot::build(kSplitSlotPrefix, 0); }

void RunCollective(const std::shared_ptr<::gloo::Context>& ctx, const OpArgs& a,
                   std::chrono::milliseconds timeout) {
  const size_t es = DataTypeSize(a.type);
  const size_t n = static_cast<size_t>(ctx->size);
  const size_t me = static_cast<size_t>(ctx->rank);
  switch (a.op) {
    case OpKind::kAllReduce:
      return AllReduce(ctx, a.send, a.recv, a.count, a.type, a.reduce, timeout);
    case OpKind::kAllGather:
      return WithCarrier(es, [&](auto carrier) {
        using T = decltype(carrier);
        ::gloo::AllgatherOptions opts(ctx);
        // In place (send == recv + rank*count): gloo's in-place form has no input.
        if (a.send != static_cast<const char*>(a.recv) + me * a.count * es) {
          opts.setInput<T>(Mut<T>(a.send), a.count);
        }
        opts.setOutput<T>(static_cast<T*>(a.recv), n * a.count);
        opts.setTimeout(timeout);
        ::gloo::allgather(opts);
      });
    case OpKind::kReduceScatter: {
      std::vector<char> all(static_cast<const char*>(a.send),
                            static_cast<const char*>(a.send) + n * a.count * es);
      AllReduce(ctx, all.data(), all.data(), n * a.count, a.type, a.reduce, timeout);
      std::memcpy(a.recv, all.data() + me * a.count * es, a.count * es);
      return;
    }
    case OpKind::kBroadcast:
      return WithCarrier(es, [&](auto carrier) {
        using T = decltype(carrier);
        ::gloo::BroadcastOptions opts(ctx);
        opts.setOutput<T>(static_cast<T*>(a.recv), a.count);
        opts.setRoot(a.root);
        opts.setTimeout(timeout);
        ::gloo::broadcast(opts);
      });
    case OpKind::kAllToAll:
      return WithCarrier(es, [&](auto carrier) {
        using T = decltype(carrier);
        ::gloo::AlltoallOptions opts(ctx);
        opts.setInput<T>(Mut<T>(a.send), n * a.count);
        opts.setOutput<T>(static_cast<T*>(a.recv), n * a.count);
        opts.setTimeout(timeout);
        ::gloo::alltoall(opts);
      });
    case OpKind::kBarrier: {
      ::gloo::BarrierOptions opts(ctx);
      opts.setTimeout(timeout);
      ::gloo::barrier(opts);
      return;
    }
    case OpKind::kAllToAllV:
      return AllToAllV(ctx, a, timeout);
    case OpKind::kGather:
      return WithCarrier(es, [&](auto carrier) {
        using T = decltype(carrier);
        ::gloo::GatherOptions opts(ctx);
        std::vector<T> staged;
        const bool root = static_cast<int>(me) == a.root;
        const void* mine = a.send;
        if (root && a.send == static_cast<const char*>(a.recv) + me * a.count * es) {
          staged.assign(Mut<T>(a.send), Mut<T>(a.send) + a.count);
          mine = staged.data();
        }
        opts.setInput<T>(Mut<T>(mine), a.count);
        if (root) opts.setOutput<T>(static_cast<T*>(a.recv), n * a.count);
        opts.setRoot(a.root);
        opts.setTimeout(timeout);
        ::gloo::gather(opts);
      });
    case OpKind::kScatter:
      return WithCarrier(es, [&](auto carrier) {
        using T = decltype(carrier);
        ::gloo::ScatterOptions opts(ctx);
        std::vector<T> staged;
        if (static_cast<int>(me) == a.root) {
          std::vector<T*> blocks(n);
          for (size_t j = 0; j < n; ++j) blocks[j] = Mut<T>(a.send) + j * a.count;
          if (static_cast<T*>(a.recv) == blocks[me]) {
            staged.assign(blocks[me], blocks[me] + a.count);
            blocks[me] = staged.data();
          }
          opts.setInputs<T>(blocks, a.count);
        }
        opts.setOutput<T>(static_cast<T*>(a.recv), a.count);
        opts.setRoot(a.root);
        opts.setTimeout(timeout);
        ::gloo::scatter(opts);
      });
    case OpKind::kReduce: {
      const bool root = static_cast<int>(me) == a.root;
      std::vector<char> scratch;
      void* out = a.recv;
      if (!root) {
        scratch.resize(a.count * es);
        out = scratch.data();
      }
      WithCarrier(es, [&](auto carrier) {
        using T = decltype(carrier);
        ::gloo::ReduceOptions opts(ctx);
        if (a.send != out) opts.setInput<T>(Mut<T>(a.send), a.count);
        opts.setOutput<T>(static_cast<T*>(out), a.count);
        opts.setRoot(a.root);
        opts.setReduceFunction(ReduceFunctionFor(a.type, a.reduce));
        opts.setTimeout(timeout);
        ::gloo::reduce(opts);
      });
      if (root && a.reduce == ReduceOp::kAvg)
        internal::DivideElements(a.recv, a.count, a.type, ctx->size);
      return;
    }
    case OpKind::kSplit:
    case OpKind::kSend:
    case OpKind::kRecv:
    case OpKind::kSendRecv:
      break;
  }
  throw ::gloo::InvalidOperationException("not a collective");
}

}  // namespace nmesh::comm::gloo
