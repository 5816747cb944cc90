// The operations a communicator runs, in one table, and the argument record of one operation.
//
// Every place that needs to know something about an operation asks the table: the argument checks
// (which arguments an operation has, its in-place layout), the flight recorder and the watchdog
// (whether every rank takes part, whether a root or peer is recorded), the cross-rank argument
// check (what must match), the bench engine and every message (the name):
//
//   const OpTraits& traits = Traits(OpKind::kReduce);
//   traits.name;                         // "reduce"
//   traits.op_class;                     // OpClass::kCollective
//   traits.rooted && traits.reduces;     // true
//   OpKindFromName("all_to_all_v");      // OpKind::kAllToAllV
//
// OpArgs is what the public entry points of comm/communicator.h build once per call (through the
// named constructors below) and hand, unchanged, to the checks, the recorder, the blocking and
// asynchronous backend hooks and batches:
//
//   OpArgs args = OpArgs::AllReduce(send, recv, count, DataType::kFloat32, ReduceOp::kSum);
//   args.op;                             // OpKind::kAllReduce
//
// Pure data and functions; thread-safe.
#ifndef NMESH_COMM_OP_H_
#define NMESH_COMM_OP_H_

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>

#include "absl/types/span.h"
#include "nmesh/comm/types.h"

namespace nmesh::comm {

// The operations, in table order.
enum class OpKind : uint8_t {
  kSplit,
  kAllReduce,
  kAllGather,
  kReduceScatter,
  kBroadcast,
  kAllToAll,
  kSend,
  kRecv,
  kBarrier,
  kAllToAllV,
  kGather,
  kScatter,
  kReduce,
  kSendRecv,
};

// Who takes part in an operation.
enum class OpClass : uint8_t {
  kSplit,         // every rank of the communicator, making new communicators
  kCollective,    // every rank, with matching count, datatype, reduce op and root
  kPointToPoint,  // the caller and its peer(s): send, recv, sendrecv
};

// How an operation may share memory between its input and its output.
enum class InPlace : uint8_t {
  kNoData,           // no input and output pair (split, barrier, send, recv)
  kOneBuffer,        // one buffer, read and written (broadcast)
  kSameBuffer,       // in place when send == recv (all_reduce; reduce on the root)
  kRankBlockOfRecv,  // in place when send == recv + rank*count (all_gather; gather at the root's
                     // block)
  kRankBlockOfSend,  // in place when recv == send + rank*count (reduce_scatter; scatter likewise)
  kForbidden,        // input and output must not overlap (all_to_all, all_to_all_v, sendrecv)
};

// What the table says about one operation.
struct OpTraits {
  OpKind kind;
  // The name in every message, record and report: "all_reduce", "sendrecv", ...
  std::string_view name;
  OpClass op_class;
  // Takes a root (broadcast, gather, scatter, reduce).
  bool rooted;
  // Takes a ReduceOp (all_reduce, reduce_scatter, reduce).
  bool reduces;
  // Moves typed data (a count and a DataType); false for split and barrier.
  bool moves_data;
  InPlace in_place;
};

inline constexpr OpTraits kOpTable[] = {
    {OpKind::kSplit, "split", OpClass::kSplit, false, false, false, InPlace::kNoData},
    {OpKind::kAllReduce, "all_reduce", OpClass::kCollective, false, true, true,
     InPlace::kSameBuffer},
    {OpKind::kAllGather, "all_gather", OpClass::kCollective, false, false, true,
     InPlace::kRankBlockOfRecv},
    {OpKind::kReduceScatter, "reduce_scatter", OpClass::kCollective, false, true, true,
     InPlace::kRankBlockOfSend},
    {OpKind::kBroadcast, "broadcast", OpClass::kCollective, true, false, true, InPlace::kOneBuffer},
    {OpKind::kAllToAll, "all_to_all", OpClass::kCollective, false, false, true,
     InPlace::kForbidden},
    {OpKind::kSend, "send", OpClass::kPointToPoint, false, false, true, InPlace::kNoData},
    {OpKind::kRecv, "recv", OpClass::kPointToPoint, false, false, true, InPlace::kNoData},
    {OpKind::kBarrier, "barrier", OpClass::kCollective, false, false, false, InPlace::kNoData},
    {OpKind::kAllToAllV, "all_to_all_v", OpClass::kCollective, false, false, true,
     InPlace::kForbidden},
    {OpKind::kGather, "gather", OpClass::kCollective, true, false, true, InPlace::kRankBlockOfRecv},
    {OpKind::kScatter, "scatter", OpClass::kCollective, true, false, true,
     InPlace::kRankBlockOfSend},
    {OpKind::kReduce, "reduce", OpClass::kCollective, true, true, true, InPlace::kSameBuffer},
    {OpKind::kSendRecv, "sendrecv", OpClass::kPointToPoint, false, false, true,
     InPlace::kForbidden},
};

// Whether `op` is a value of the enum (records exchanged between ranks are bytes: check them).
constexpr bool IsOpKind(OpKind op) { return static_cast<size_t>(op) < std::size(kOpTable); }
// The table's entry for `op`, which must be a value of the enum (IsOpKind).
constexpr const OpTraits& Traits(OpKind op) { return kOpTable[static_cast<size_t>(op)]; }
// "split", "all_reduce", ...; "unknown" for a value outside the enum.
constexpr std::string_view OpKindName(OpKind op) {
  return IsOpKind(op) ? Traits(op).name : "unknown";
}
// The operation named `name`; std::nullopt for any other name.
std::optional<OpKind> OpKindFromName(std::string_view name);
// Whether every rank must call the operation with the same count and root (the collectives);
// false for send, recv, sendrecv and split.
constexpr bool IsMatchedCollective(OpKind op) {
  return IsOpKind(op) && Traits(op).op_class == OpClass::kCollective;
}
// Whether the operation takes a root (broadcast, gather, scatter, reduce).
constexpr bool IsRooted(OpKind op) { return IsOpKind(op) && Traits(op).rooted; }
// Whether the operation involves the caller and its peer(s) only (send, recv, sendrecv).
constexpr bool IsPointToPoint(OpKind op) {
  return IsOpKind(op) && Traits(op).op_class == OpClass::kPointToPoint;
}
// Whether a record of the operation keeps a rank: the root, the peer or destination, or (split) the
// color.
constexpr bool RecordsPeer(OpKind op) {
  return IsRooted(op) || (IsOpKind(op) && !IsMatchedCollective(op));
}

// One operation's arguments. Fields an operation does not have keep their defaults. count: the
// per-rank count (send_count of all_gather and gather, recv_count of reduce_scatter and scatter,
// send_count of sendrecv; 1 for barrier and all_to_all_v); recv_count: the receive count of
// sendrecv. root: the root, the peer (send, recv) or the destination (sendrecv); source: the
// source of sendrecv. The spans point to the caller's arrays and are valid during the call only.
struct OpArgs {
  OpKind op = OpKind::kBarrier;
  const void* send = nullptr;
  void* recv = nullptr;
  size_t count = 0;
  size_t recv_count = 0;
  DataType type = DataType::kUint8;
  ReduceOp reduce = ReduceOp::kSum;
  int root = 0;
  int source = 0;
  absl::Span<const size_t> send_counts = {};
  absl::Span<const size_t> send_displs = {};
  absl::Span<const size_t> recv_counts = {};
  absl::Span<const size_t> recv_displs = {};

  // The record of each operation, with the parameters of its Communicator method.
  static OpArgs AllReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op) {
    return {.op = OpKind::kAllReduce,
            .send = send,
            .recv = recv,
            .count = count,
            .type = type,
            .reduce = op};
  }
  static OpArgs AllGather(const void* send, void* recv, size_t send_count, DataType type) {
    return {
        .op = OpKind::kAllGather, .send = send, .recv = recv, .count = send_count, .type = type};
  }
  static OpArgs ReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                              ReduceOp op) {
    return {.op = OpKind::kReduceScatter,
            .send = send,
            .recv = recv,
            .count = recv_count,
            .type = type,
            .reduce = op};
  }
  static OpArgs Broadcast(void* buffer, size_t count, DataType type, int root) {
    return {.op = OpKind::kBroadcast,
            .send = buffer,
            .recv = buffer,
            .count = count,
            .type = type,
            .root = root};
  }
  static OpArgs AllToAll(const void* send, void* recv, size_t count, DataType type) {
    return {.op = OpKind::kAllToAll, .send = send, .recv = recv, .count = count, .type = type};
  }
  static OpArgs Send(const void* buffer, size_t count, DataType type, int peer) {
    return {.op = OpKind::kSend, .send = buffer, .count = count, .type = type, .root = peer};
  }
  static OpArgs Recv(void* buffer, size_t count, DataType type, int peer) {
    return {.op = OpKind::kRecv, .recv = buffer, .count = count, .type = type, .root = peer};
  }
  static OpArgs Barrier() { return {.op = OpKind::kBarrier, .count = 1}; }
  static OpArgs AllToAllV(const void* send, absl::Span<const size_t> send_counts,
                          absl::Span<const size_t> send_displs, void* recv,
                          absl::Span<const size_t> recv_counts,
                          absl::Span<const size_t> recv_displs, DataType type) {
    return {.op = OpKind::kAllToAllV,
            .send = send,
            .recv = recv,
            .count = 1,
            .type = type,
            .send_counts = send_counts,
            .send_displs = send_displs,
            .recv_counts = recv_counts,
            .recv_displs = recv_displs};
  }
  static OpArgs Gather(const void* send, void* recv, size_t send_count, DataType type, int root) {
    return {.op = OpKind::kGather,
            .send = send,
            .recv = recv,
            .count = send_count,
            .type = type,
            .root = root};
  }
  static OpArgs Scatter(const void* send, void* recv, size_t recv_count, DataType type, int root) {
    return {.op = OpKind::kScatter,
            .send = send,
            .recv = recv,
            .count = recv_count,
            .type = type,
            .root = root};
  }
  static OpArgs Reduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                       int root) {
    return {.op = OpKind::kReduce,
            .send = send,
            .recv = recv,
            .count = count,
            .type = type,
            .reduce = op,
            .root = root};
  }
  static OpArgs SendRecv(const void* send, size_t send_count, int dest, void* recv,
                         size_t recv_count, int source, DataType type) {
    return {.op = OpKind::kSendRecv,
            .send = send,
            .recv = recv,
            .count = send_count,
            .recv_count = recv_count,
            .type = type,
            .root = dest,
            .source = source};
  }
};

}  // namespace nmesh::comm

#endif  // NMESH_COMM_OP_H_
