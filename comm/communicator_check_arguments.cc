// Communicator: the argument check across ranks (CommOptions::check_arguments).
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/checks.h"

namespace nmesh::comm {

namespace ci = internal;

namespace {

// What one rank was called with, as exchanged by the argument check.
struct Called {
  int64_t op = 0;  // the OpKind
  int64_t count = 0;
  int64_t type = 0;
  int64_t reduce = -1;   // -1: the operation does not reduce
  int64_t root = -1;     // -1: the operation has no root
  int64_t peer = -1;     // all_to_all_v: the first peer whose send count disagrees, or -1
  int64_t sent = 0;      // ... what that peer sends to this rank
  int64_t expected = 0;  // ... what this rank expects from it
};

std::string Describe(const Called& c) {
  const OpKind op = static_cast<OpKind>(c.op);
  std::string text(OpKindName(op));
  if (!IsOpKind(op) || !Traits(op).moves_data) return text;
  if (op != OpKind::kAllToAllV) absl::StrAppendFormat(&text, " count %d", c.count);
  absl::StrAppendFormat(&text, " %s", DataTypeName(static_cast<DataType>(c.type)));
  if (c.reduce >= 0) {
    absl::StrAppendFormat(&text, " %s", ReduceOpName(static_cast<ReduceOp>(c.reduce)));
  }
  if (c.root >= 0) absl::StrAppendFormat(&text, " root %d", c.root);
  return text;
}

bool SameCall(const Called& a, const Called& b) {
  return a.op == b.op && a.count == b.count && a.type == b.type && a.reduce == b.reduce &&
         a.root == b.root;
}

}  // namespace

absl::Status Communicator::CheckAcrossRanks(const OpArgs& args) {
  if (!options().check_arguments) return absl::OkStatus();
  if (!IsMatchedCollective(args.op)) return absl::OkStatus();  // point to point: not checked
  const OpTraits& traits = Traits(args.op);
  Called mine;
  mine.op = static_cast<int64_t>(args.op);
  if (traits.moves_data) {
    mine.count = args.op == OpKind::kAllToAllV ? 0 : static_cast<int64_t>(args.count);
    mine.type = static_cast<int64_t>(args.type);
  }
  if (traits.reduces) mine.reduce = static_cast<int64_t>(args.reduce);
  if (traits.rooted) mine.root = args.root;
  const size_t n = static_cast<size_t>(size());
  // Buffers in this communicator's memory kind (device memory on NCCL).
  auto in_memory = [&](size_t bytes) { return AllocateBuffer(bytes); };
  if (args.op == OpKind::kAllToAllV) {
    // Each rank learns what every peer sends it, and compares with what it expects.
    std::vector<int64_t> send_counts(n), sent_to_me(n);
    for (size_t j = 0; j < n; ++j) send_counts[j] = static_cast<int64_t>(args.send_counts[j]);
    NMESH_ASSIGN_OR_RETURN(Buffer a, in_memory(n * sizeof(int64_t)));
    NMESH_ASSIGN_OR_RETURN(Buffer b, in_memory(n * sizeof(int64_t)));
    NMESH_RETURN_IF_ERROR(CopyFromHost(a.data(), send_counts.data(), a.bytes()));
    NMESH_RETURN_IF_ERROR(DoRun(OpArgs::AllToAll(a.data(), b.data(), 1, DataType::kInt64)));
    NMESH_RETURN_IF_ERROR(CopyToHost(sent_to_me.data(), b.data(), b.bytes()));
    for (size_t j = 0; j < n && mine.peer < 0; ++j) {
      if (sent_to_me[j] != static_cast<int64_t>(args.recv_counts[j])) {
        mine.peer = static_cast<int64_t>(j);
        mine.sent = sent_to_me[j];
        mine.expected = static_cast<int64_t>(args.recv_counts[j]);
      }
    }
  }
  std::vector<Called> all(n);
  NMESH_ASSIGN_OR_RETURN(Buffer send, in_memory(sizeof(Called)));
  NMESH_ASSIGN_OR_RETURN(Buffer recv, in_memory(n * sizeof(Called)));
  NMESH_RETURN_IF_ERROR(CopyFromHost(send.data(), &mine, sizeof(Called)));
  NMESH_RETURN_IF_ERROR(
      DoRun(OpArgs::AllGather(send.data(), recv.data(), sizeof(Called), DataType::kUint8)));
  NMESH_RETURN_IF_ERROR(CopyToHost(all.data(), recv.data(), recv.bytes()));
  for (size_t j = 1; j < n; ++j) {
    if (!SameCall(all[0], all[j])) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: ranks disagree: rank 0 called %s, rank %d called %s (rank %d of %d)",
                          ci::OpContext(*this, OpKindName(args.op)), Describe(all[0]), j,
                          Describe(all[j]), rank(), size()));
    }
  }
  for (size_t j = 0; j < n; ++j) {
    if (all[j].peer >= 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: counts disagree: rank %d sends %d elements to rank %d, which expects %d from it "
          "(rank %d of %d)",
          ci::OpContext(*this, OpKindName(args.op)), all[j].peer, all[j].sent, j, all[j].expected,
          rank(), size()));
    }
  }
  return absl::OkStatus();
}

}  // namespace nmesh::comm
