#include "nmesh/comm/communicator.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <iterator>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/flight_recorder.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/watchdog.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/self.h"

namespace nmesh::comm {

size_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kInt8:
    case DataType::kUint8:
      return 1;
    case DataType::kFloat16:
    case DataType::kBFloat16:
      return 2;
    case DataType::kInt32:
    case DataType::kUint32:
    case DataType::kFloat32:
      return 4;
    case DataType::kInt64:
    case DataType::kUint64:
    case DataType::kFloat64:
      return 8;
  }
  return 0;
}

std::string_view DataTypeName(DataType type) {
  switch (type) {
    case DataType::kInt8:
      return "int8";
    case DataType::kUint8:
      return "uint8";
    case DataType::kInt32:
      return "int32";
    case DataType::kUint32:
      return "uint32";
    case DataType::kInt64:
      return "int64";
    case DataType::kUint64:
      return "uint64";
    case DataType::kFloat16:
      return "float16";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat64:
      return "float64";
  }
  return "unknown";
}

std::string_view ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kProd:
      return "prod";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kAvg:
      return "avg";
  }
  return "unknown";
}

// bfloat16 is the top half of a float32; round to nearest even and keep NaNs quiet.
BFloat16 ToBFloat16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return BFloat16{static_cast<uint16_t>((bits >> 16) | 0x40)};
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return BFloat16{static_cast<uint16_t>((bits + rounding) >> 16)};
}

float FromBFloat16(BFloat16 value) {
  return std::bit_cast<float>(static_cast<uint32_t>(value.bits) << 16);
}

Float16 ToFloat16(float value) {
  uint32_t f = std::bit_cast<uint32_t>(value);
  uint32_t sign = (f >> 16) & 0x8000u;
  uint32_t abs = f & 0x7fffffffu;
  if (abs > 0x7f800000u) return Float16{static_cast<uint16_t>(sign | 0x7e00u)};   // NaN
  if (abs >= 0x477ff000u) return Float16{static_cast<uint16_t>(sign | 0x7c00u)};  // overflow: inf
  if (abs < 0x38800000u) {
    // Subnormal or zero in binary16: scale so that the float's integer rounding does the work.
    float magnitude = std::bit_cast<float>(abs) * 16777216.0f;  // 2^24 = 1 / smallest subnormal
    uint32_t rounded = static_cast<uint32_t>(std::nearbyint(magnitude));
    return Float16{static_cast<uint16_t>(sign | rounded)};
  }
  uint32_t mantissa_rounding = 0xfffu + ((abs >> 13) & 1u);
  uint32_t h = (abs + mantissa_rounding - 0x38000000u) >> 13;
  return Float16{static_cast<uint16_t>(sign | h)};
}

float FromFloat16(Float16 value) {
  uint32_t sign = static_cast<uint32_t>(value.bits & 0x8000u) << 16;
  uint32_t exponent = (value.bits >> 10) & 0x1fu;
  uint32_t mantissa = value.bits & 0x3ffu;
  if (exponent == 0) {
    float magnitude = static_cast<float>(mantissa) / 16777216.0f;  // mantissa * 2^-24
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// The public operations: the guards every backend shares, then the backend's hook.

namespace ci = internal;

absl::Status Communicator::CheckUsable(std::string_view) const { return absl::OkStatus(); }

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(std::optional<int> color, int key,
                                                                  CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, ci::kSplit));
  NMESH_RETURN_IF_ERROR(CheckUsable(ci::kSplit));
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  const uint64_t seq = BeginRecord({.op = ci::kSplit, .root = color.value_or(-1)});
  absl::StatusOr<std::unique_ptr<Communicator>> split = DoSplit(color, key, std::move(options));
  (void)EndRecord(seq, split.status());
  return split;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::SplitAgreed(std::optional<int> color,
                                                                        int key,
                                                                        CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, ci::kSplit));
  NMESH_RETURN_IF_ERROR(CheckUsable(ci::kSplit));
  NMESH_RETURN_IF_ERROR(ci::CheckSplit(*this, color));
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  const uint64_t seq = BeginRecord({.op = ci::kSplit, .root = color.value_or(-1)});
  absl::StatusOr<std::unique_ptr<Communicator>> split =
      DoSplitAgreed(color, key, std::move(options));
  (void)EndRecord(seq, split.status());
  return split;
}

// ---- Timeouts, the flight recorder and the watchdog -------------------------------------------

absl::Status Communicator::SetTimeout(std::optional<absl::Duration> timeout) {
  NMESH_RETURN_IF_ERROR(CheckUsable("set_timeout"));
  NMESH_RETURN_IF_ERROR(
      CheckTimeout(timeout, absl::StrFormat("the timeout of axis '%s'", options().name)));
  NMESH_RETURN_IF_ERROR(DoSetTimeout(timeout));
  if (timeout.has_value() && watched_) internal::Watchdog::Get().Start();
  return absl::OkStatus();
}

absl::Status Communicator::DoSetTimeout(std::optional<absl::Duration>) {
  return absl::UnimplementedError(
      absl::StrFormat("set_timeout on axis '%s': the %s backend cannot change its timeout",
                      options().name, backend()));
}

const std::shared_ptr<FlightRecorder>& Communicator::recorder() const {
  if (recorder_ == nullptr) {
    recorder_ = std::make_shared<FlightRecorder>(options().flight_recorder_entries);
  }
  return recorder_;
}

std::shared_ptr<const FlightRecorder> Communicator::flight_recorder() const { return recorder(); }

void Communicator::SetAbortFamily(std::function<void()> abort_family) {
  {
    std::lock_guard<std::mutex> lock(family_mu_);
    abort_family_ = abort_family;
  }
  internal::Watchdog::Get().SetFamily(this, std::move(abort_family));
}

void Communicator::AbortFamilyOrSelf() {
  std::function<void()> family;
  {
    std::lock_guard<std::mutex> lock(family_mu_);
    family = abort_family_;
  }
  if (family) {
    family();
  } else {
    (void)Abort();
  }
}

absl::Status Communicator::AbortGroup(absl::Span<Communicator* const> family) {
  absl::Status first;
  for (Communicator* comm : family) first.Update(comm->Abort());
  return first;
}

absl::Status AbortTogether(absl::Span<Communicator* const> comms) {
  // Group by backend, keeping the order of first appearance.
  std::vector<std::vector<Communicator*>> groups;
  for (Communicator* comm : comms) {
    if (comm == nullptr) continue;
    auto same = std::find_if(groups.begin(), groups.end(), [comm](const auto& g) {
      return g.front()->backend() == comm->backend();
    });
    if (same == groups.end()) {
      groups.push_back({comm});
    } else if (std::find(same->begin(), same->end(), comm) == same->end()) {
      same->push_back(comm);
    }
  }
  absl::Status first;
  for (const std::vector<Communicator*>& group : groups) {
    first.Update(group.front()->AbortGroup(group));
  }
  return first;
}

void Communicator::Watch(internal::SideChannel* side, WatchMode mode) {
  watched_ = true;
  watch_mode_ = mode;
  internal::Watchdog::Get().Add(this, recorder(), side, mode == WatchMode::kSelfPolling);
}

void Communicator::Unwatch() {
  if (!watched_) return;
  internal::Watchdog::Get().Remove(this);
  watched_ = false;
}

uint64_t Communicator::BeginRecord(const OpArgs& a, bool async) {
  const int64_t now = absl::GetCurrentTimeNanos();
  const CommOptions& o = options();
  int64_t deadline = 0;
  // Which operations the watchdog enforces the deadline of (WatchMode).
  const bool enforced = watch_mode_ == WatchMode::kBlocking ? !o.interruptible : async;
  if (watched_ && o.timeout.has_value() && enforced) {
    deadline = now + absl::ToInt64Nanoseconds(*o.timeout);
  }
  const OpKind op = OpKindFromName(a.op).value_or(OpKind::kBarrier);
  int32_t peer = -1;
  if (op == OpKind::kBroadcast || op == OpKind::kGather || op == OpKind::kScatter ||
      op == OpKind::kReduce || op == OpKind::kSend || op == OpKind::kRecv ||
      op == OpKind::kSendRecv || op == OpKind::kSplit) {
    peer = a.root;
  }
  return recorder()->Start(op, static_cast<int64_t>(a.count), a.type, peer, now, deadline);
}

absl::Status Communicator::EndRecord(uint64_t seq, absl::Status status) {
  recorder_->Finish(seq, status.ok(), absl::GetCurrentTimeNanos());
  return status;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::DoSplitAgreed(std::optional<int> color,
                                                                          int key,
                                                                          CommOptions options) {
  return DoSplit(color, key, std::move(options));
}

absl::Status Communicator::Guard(const OpArgs& a, bool* empty) const {
  *empty = false;
  NMESH_RETURN_IF_ERROR(CheckUsable(a.op));
  if (a.op == ci::kBarrier) return absl::OkStatus();
  NMESH_RETURN_IF_ERROR(ci::CheckDataType(*this, a.op, a.type));
  if (a.op == ci::kAllReduce || a.op == ci::kReduceScatter || a.op == ci::kReduce) {
    NMESH_RETURN_IF_ERROR(ci::CheckReduceOp(*this, a.op, a.reduce));
  }
  if (a.op == ci::kAllReduce) {
    NMESH_RETURN_IF_ERROR(ci::CheckAllReduce(*this, a.send, a.recv, a.count));
  } else if (a.op == ci::kAllGather) {
    NMESH_RETURN_IF_ERROR(ci::CheckAllGather(*this, a.send, a.recv, a.count));
  } else if (a.op == ci::kReduceScatter) {
    NMESH_RETURN_IF_ERROR(ci::CheckReduceScatter(*this, a.send, a.recv, a.count));
  } else if (a.op == ci::kBroadcast) {
    NMESH_RETURN_IF_ERROR(ci::CheckBroadcast(*this, a.recv, a.count, a.root));
  } else if (a.op == ci::kAllToAll) {
    NMESH_RETURN_IF_ERROR(ci::CheckAllToAll(*this, a.send, a.recv, a.count, a.type));
  } else if (a.op == ci::kSend) {
    return ci::CheckPointToPoint(*this, ci::kSend, a.send, a.count, a.root);
  } else if (a.op == ci::kRecv) {
    return ci::CheckPointToPoint(*this, ci::kRecv, a.recv, a.count, a.root);
  } else if (a.op == ci::kAllToAllV) {
    // Other ranks may exchange with each other even when this one moves nothing: an all_to_all_v
    // always reaches the backend.
    size_t total_send = 0, total_recv = 0;
    return ci::CheckAllToAllV(*this, a.send, a.send_counts, a.send_displs, a.recv, a.recv_counts,
                              a.recv_displs, a.type, &total_send, &total_recv);
  } else if (a.op == ci::kGather) {
    NMESH_RETURN_IF_ERROR(
        ci::CheckRooted(*this, ci::kGather, a.send, a.recv, a.count, a.type, a.root));
  } else if (a.op == ci::kScatter) {
    NMESH_RETURN_IF_ERROR(
        ci::CheckRooted(*this, ci::kScatter, a.recv, a.send, a.count, a.type, a.root));
  } else if (a.op == ci::kReduce) {
    NMESH_RETURN_IF_ERROR(ci::CheckReduce(*this, a.send, a.recv, a.count, a.type, a.root));
  } else if (a.op == ci::kSendRecv) {
    return ci::CheckSendRecv(*this, a.send, a.count, a.root, a.recv, a.recv_count, a.source,
                             a.type);
  }
  *empty = a.count == 0;  // the collectives: zero counts are no-ops
  return absl::OkStatus();
}

absl::Status Communicator::RunBlocking(const OpArgs& a) {
  if (a.op == ci::kAllReduce) return DoAllReduce(a.send, a.recv, a.count, a.type, a.reduce);
  if (a.op == ci::kAllGather) return DoAllGather(a.send, a.recv, a.count, a.type);
  if (a.op == ci::kReduceScatter) {
    return DoReduceScatter(a.send, a.recv, a.count, a.type, a.reduce);
  }
  if (a.op == ci::kBroadcast) return DoBroadcast(a.recv, a.count, a.type, a.root);
  if (a.op == ci::kAllToAll) return DoAllToAll(a.send, a.recv, a.count, a.type);
  if (a.op == ci::kSend) return DoSend(a.send, a.count, a.type, a.root);
  if (a.op == ci::kRecv) return DoRecv(a.recv, a.count, a.type, a.root);
  if (a.op == ci::kBarrier) return DoBarrier();
  if (a.op == ci::kAllToAllV) {
    return DoAllToAllV(a.send, a.send_counts, a.send_displs, a.recv, a.recv_counts, a.recv_displs,
                       a.type);
  }
  if (a.op == ci::kGather) return DoGather(a.send, a.recv, a.count, a.type, a.root);
  if (a.op == ci::kScatter) return DoScatter(a.send, a.recv, a.count, a.type, a.root);
  if (a.op == ci::kReduce) return DoReduce(a.send, a.recv, a.count, a.type, a.reduce, a.root);
  if (a.op == ci::kSendRecv) {
    return DoSendRecv(a.send, a.count, a.root, a.recv, a.recv_count, a.source, a.type);
  }
  return absl::InternalError(absl::StrFormat("unknown operation '%s'", a.op));
}

absl::StatusOr<Work> Communicator::DoAsync(const OpArgs& args, const AsyncOptions&) {
  return ci::CompletedWork(*this, args.op, RunBlocking(args));
}

absl::StatusOr<Work> Communicator::Enqueue(const OpArgs& args, const AsyncOptions& async) {
  bool empty = false;
  NMESH_RETURN_IF_ERROR(Guard(args, &empty));
  Batch::State* batch = ci::CurrentBatch();
  if (batch == nullptr) NMESH_RETURN_IF_ERROR(CheckAcrossRanks(args));
  if (empty) return ci::CompletedWork(*this, args.op, absl::OkStatus());
  if (batch != nullptr) {
    if (batch->backend.empty()) batch->backend = std::string(backend());
    if (batch->backend != backend()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the open batch holds %s operations; a batch takes one backend, this is %s (rank "
          "%d of %d)",
          ci::OpContext(*this, args.op), batch->backend, backend(), rank(), size()));
    }
  }
  const uint64_t seq = BeginRecord(args, /*async=*/true);
  absl::StatusOr<Work> issued = DoAsync(args, async);
  if (!issued.ok()) return EndRecord(seq, issued.status());
  Work work = *std::move(issued);
  if (work.impl() != nullptr) work.impl()->SetRecord(recorder_, seq);
  if (batch != nullptr && work.impl() != nullptr) {
    // Shared with the handle (which has a pointer to it) and the batch's list.
    std::shared_ptr<Work::Impl> impl = work.shared_impl();
    impl->SetBatch(batch->open);
    batch->works.push_back(std::move(impl));
  }
  return work;
}

namespace {

// What one rank was called with, as exchanged by the argument check.
struct Called {
  int64_t op = 0;  // index into kCheckedOps
  int64_t count = 0;
  int64_t type = 0;
  int64_t reduce = -1;   // -1: the operation does not reduce
  int64_t root = -1;     // -1: the operation has no root
  int64_t peer = -1;     // all_to_all_v: the first peer whose send count disagrees, or -1
  int64_t sent = 0;      // ... what that peer sends to this rank
  int64_t expected = 0;  // ... what this rank expects from it
};

constexpr std::string_view kCheckedOps[] = {
    ci::kAllReduce, ci::kAllGather, ci::kReduceScatter, ci::kBroadcast, ci::kAllToAll,
    ci::kBarrier,   ci::kAllToAllV, ci::kGather,        ci::kScatter,   ci::kReduce};

std::string Describe(const Called& c) {
  std::string text(kCheckedOps[c.op]);
  if (kCheckedOps[c.op] == ci::kBarrier) return text;
  if (kCheckedOps[c.op] != ci::kAllToAllV) absl::StrAppendFormat(&text, " count %d", c.count);
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
  Called mine;
  mine.op = -1;
  for (size_t i = 0; i < std::size(kCheckedOps); ++i) {
    if (kCheckedOps[i] == args.op) mine.op = static_cast<int64_t>(i);
  }
  if (mine.op < 0) return absl::OkStatus();  // point to point: not checked
  const bool reduces =
      args.op == ci::kAllReduce || args.op == ci::kReduceScatter || args.op == ci::kReduce;
  const bool rooted = args.op == ci::kBroadcast || args.op == ci::kGather ||
                      args.op == ci::kScatter || args.op == ci::kReduce;
  if (args.op != ci::kBarrier) {
    mine.count = args.op == ci::kAllToAllV ? 0 : static_cast<int64_t>(args.count);
    mine.type = static_cast<int64_t>(args.type);
  }
  if (reduces) mine.reduce = static_cast<int64_t>(args.reduce);
  if (rooted) mine.root = args.root;
  const size_t n = static_cast<size_t>(size());
  // Buffers in this communicator's memory kind (device memory on NCCL).
  auto in_memory = [&](size_t bytes) { return AllocateBuffer(bytes); };
  if (args.op == ci::kAllToAllV) {
    // Each rank learns what every peer sends it, and compares with what it expects.
    std::vector<int64_t> send_counts(n), sent_to_me(n);
    for (size_t j = 0; j < n; ++j) send_counts[j] = static_cast<int64_t>(args.send_counts[j]);
    NMESH_ASSIGN_OR_RETURN(Buffer a, in_memory(n * sizeof(int64_t)));
    NMESH_ASSIGN_OR_RETURN(Buffer b, in_memory(n * sizeof(int64_t)));
    NMESH_RETURN_IF_ERROR(CopyFromHost(a.data(), send_counts.data(), a.bytes()));
    NMESH_RETURN_IF_ERROR(DoAllToAll(a.data(), b.data(), 1, DataType::kInt64));
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
  NMESH_RETURN_IF_ERROR(DoAllGather(send.data(), recv.data(), sizeof(Called), DataType::kUint8));
  NMESH_RETURN_IF_ERROR(CopyToHost(all.data(), recv.data(), recv.bytes()));
  for (size_t j = 1; j < n; ++j) {
    if (!SameCall(all[0], all[j])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: ranks disagree: rank 0 called %s, rank %d called %s (rank %d of %d)",
          ci::OpContext(*this, args.op), Describe(all[0]), j, Describe(all[j]), rank(), size()));
    }
  }
  for (size_t j = 0; j < n; ++j) {
    if (all[j].peer >= 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: counts disagree: rank %d sends %d elements to rank %d, which expects %d from it "
          "(rank %d of %d)",
          ci::OpContext(*this, args.op), all[j].peer, all[j].sent, j, all[j].expected, rank(),
          size()));
    }
  }
  return absl::OkStatus();
}

// The blocking entry points: the same guards, then the blocking hook.
// Declares `seq`, the operation's flight record, for the EndRecord of the blocking hook's return.
#define NMESH_COMM_GUARD(args)                               \
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, (args).op)); \
  bool empty = false;                                        \
  NMESH_RETURN_IF_ERROR(Guard(args, &empty));                \
  NMESH_RETURN_IF_ERROR(CheckAcrossRanks(args));             \
  if (empty) return absl::OkStatus();                        \
  const uint64_t seq = BeginRecord(args)

absl::Status Communicator::AllReduce(const void* send, void* recv, size_t count, DataType type,
                                     ReduceOp op) {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kAllReduce,
                           .send = send,
                           .recv = recv,
                           .count = count,
                           .type = type,
                           .reduce = op}));
  return EndRecord(seq, DoAllReduce(send, recv, count, type, op));
}

absl::Status Communicator::AllGather(const void* send, void* recv, size_t send_count,
                                     DataType type) {
  NMESH_COMM_GUARD((
      OpArgs{.op = ci::kAllGather, .send = send, .recv = recv, .count = send_count, .type = type}));
  return EndRecord(seq, DoAllGather(send, recv, send_count, type));
}

absl::Status Communicator::ReduceScatter(const void* send, void* recv, size_t recv_count,
                                         DataType type, ReduceOp op) {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kReduceScatter,
                           .send = send,
                           .recv = recv,
                           .count = recv_count,
                           .type = type,
                           .reduce = op}));
  return EndRecord(seq, DoReduceScatter(send, recv, recv_count, type, op));
}

absl::Status Communicator::Broadcast(void* buffer, size_t count, DataType type, int root) {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kBroadcast,
                           .send = buffer,
                           .recv = buffer,
                           .count = count,
                           .type = type,
                           .root = root}));
  return EndRecord(seq, DoBroadcast(buffer, count, type, root));
}

absl::Status Communicator::AllToAll(const void* send, void* recv, size_t count, DataType type) {
  NMESH_COMM_GUARD(
      (OpArgs{.op = ci::kAllToAll, .send = send, .recv = recv, .count = count, .type = type}));
  return EndRecord(seq, DoAllToAll(send, recv, count, type));
}

absl::Status Communicator::Send(const void* buffer, size_t count, DataType type, int peer) {
  NMESH_COMM_GUARD(
      (OpArgs{.op = ci::kSend, .send = buffer, .count = count, .type = type, .root = peer}));
  return EndRecord(seq, DoSend(buffer, count, type, peer));
}

absl::Status Communicator::Recv(void* buffer, size_t count, DataType type, int peer) {
  NMESH_COMM_GUARD(
      (OpArgs{.op = ci::kRecv, .recv = buffer, .count = count, .type = type, .root = peer}));
  return EndRecord(seq, DoRecv(buffer, count, type, peer));
}

absl::Status Communicator::Barrier() {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kBarrier, .count = 1}));
  return EndRecord(seq, DoBarrier());
}

absl::Status Communicator::AllToAllV(const void* send, absl::Span<const size_t> send_counts,
                                     absl::Span<const size_t> send_displs, void* recv,
                                     absl::Span<const size_t> recv_counts,
                                     absl::Span<const size_t> recv_displs, DataType type) {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kAllToAllV,
                           .send = send,
                           .recv = recv,
                           .count = 1,
                           .type = type,
                           .send_counts = send_counts,
                           .send_displs = send_displs,
                           .recv_counts = recv_counts,
                           .recv_displs = recv_displs}));
  return EndRecord(
      seq, DoAllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, type));
}

absl::Status Communicator::Gather(const void* send, void* recv, size_t send_count, DataType type,
                                  int root) {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kGather,
                           .send = send,
                           .recv = recv,
                           .count = send_count,
                           .type = type,
                           .root = root}));
  return EndRecord(seq, DoGather(send, recv, send_count, type, root));
}

absl::Status Communicator::Scatter(const void* send, void* recv, size_t recv_count, DataType type,
                                   int root) {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kScatter,
                           .send = send,
                           .recv = recv,
                           .count = recv_count,
                           .type = type,
                           .root = root}));
  return EndRecord(seq, DoScatter(send, recv, recv_count, type, root));
}

absl::Status Communicator::Reduce(const void* send, void* recv, size_t count, DataType type,
                                  ReduceOp op, int root) {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kReduce,
                           .send = send,
                           .recv = recv,
                           .count = count,
                           .type = type,
                           .reduce = op,
                           .root = root}));
  return EndRecord(seq, DoReduce(send, recv, count, type, op, root));
}

absl::Status Communicator::SendRecv(const void* send, size_t send_count, int dest, void* recv,
                                    size_t recv_count, int source, DataType type) {
  NMESH_COMM_GUARD((OpArgs{.op = ci::kSendRecv,
                           .send = send,
                           .recv = recv,
                           .count = send_count,
                           .recv_count = recv_count,
                           .type = type,
                           .root = dest,
                           .source = source}));
  return EndRecord(seq, DoSendRecv(send, send_count, dest, recv, recv_count, source, type));
}

#undef NMESH_COMM_GUARD

// The asynchronous entry points.

absl::StatusOr<Work> Communicator::AllReduceAsync(const void* send, void* recv, size_t count,
                                                  DataType type, ReduceOp op, AsyncOptions async) {
  return Enqueue({.op = ci::kAllReduce,
                  .send = send,
                  .recv = recv,
                  .count = count,
                  .type = type,
                  .reduce = op},
                 async);
}

absl::StatusOr<Work> Communicator::AllGatherAsync(const void* send, void* recv, size_t send_count,
                                                  DataType type, AsyncOptions async) {
  return Enqueue(
      {.op = ci::kAllGather, .send = send, .recv = recv, .count = send_count, .type = type}, async);
}

absl::StatusOr<Work> Communicator::ReduceScatterAsync(const void* send, void* recv,
                                                      size_t recv_count, DataType type, ReduceOp op,
                                                      AsyncOptions async) {
  return Enqueue({.op = ci::kReduceScatter,
                  .send = send,
                  .recv = recv,
                  .count = recv_count,
                  .type = type,
                  .reduce = op},
                 async);
}

absl::StatusOr<Work> Communicator::BroadcastAsync(void* buffer, size_t count, DataType type,
                                                  int root, AsyncOptions async) {
  return Enqueue({.op = ci::kBroadcast,
                  .send = buffer,
                  .recv = buffer,
                  .count = count,
                  .type = type,
                  .root = root},
                 async);
}

absl::StatusOr<Work> Communicator::AllToAllAsync(const void* send, void* recv, size_t count,
                                                 DataType type, AsyncOptions async) {
  return Enqueue({.op = ci::kAllToAll, .send = send, .recv = recv, .count = count, .type = type},
                 async);
}

absl::StatusOr<Work> Communicator::SendAsync(const void* buffer, size_t count, DataType type,
                                             int peer, AsyncOptions async) {
  return Enqueue({.op = ci::kSend, .send = buffer, .count = count, .type = type, .root = peer},
                 async);
}

absl::StatusOr<Work> Communicator::RecvAsync(void* buffer, size_t count, DataType type, int peer,
                                             AsyncOptions async) {
  return Enqueue({.op = ci::kRecv, .recv = buffer, .count = count, .type = type, .root = peer},
                 async);
}

absl::StatusOr<Work> Communicator::BarrierAsync(AsyncOptions async) {
  return Enqueue({.op = ci::kBarrier, .count = 1}, async);
}

absl::StatusOr<Work> Communicator::AllToAllVAsync(const void* send,
                                                  absl::Span<const size_t> send_counts,
                                                  absl::Span<const size_t> send_displs, void* recv,
                                                  absl::Span<const size_t> recv_counts,
                                                  absl::Span<const size_t> recv_displs,
                                                  DataType type, AsyncOptions async) {
  return Enqueue({.op = ci::kAllToAllV,
                  .send = send,
                  .recv = recv,
                  .count = 1,
                  .type = type,
                  .send_counts = send_counts,
                  .send_displs = send_displs,
                  .recv_counts = recv_counts,
                  .recv_displs = recv_displs},
                 async);
}

absl::StatusOr<Work> Communicator::GatherAsync(const void* send, void* recv, size_t send_count,
                                               DataType type, int root, AsyncOptions async) {
  return Enqueue({.op = ci::kGather,
                  .send = send,
                  .recv = recv,
                  .count = send_count,
                  .type = type,
                  .root = root},
                 async);
}

absl::StatusOr<Work> Communicator::ScatterAsync(const void* send, void* recv, size_t recv_count,
                                                DataType type, int root, AsyncOptions async) {
  return Enqueue({.op = ci::kScatter,
                  .send = send,
                  .recv = recv,
                  .count = recv_count,
                  .type = type,
                  .root = root},
                 async);
}

absl::StatusOr<Work> Communicator::ReduceAsync(const void* send, void* recv, size_t count,
                                               DataType type, ReduceOp op, int root,
                                               AsyncOptions async) {
  return Enqueue({.op = ci::kReduce,
                  .send = send,
                  .recv = recv,
                  .count = count,
                  .type = type,
                  .reduce = op,
                  .root = root},
                 async);
}

absl::StatusOr<Work> Communicator::SendRecvAsync(const void* send, size_t send_count, int dest,
                                                 void* recv, size_t recv_count, int source,
                                                 DataType type, AsyncOptions async) {
  return Enqueue({.op = ci::kSendRecv,
                  .send = send,
                  .recv = recv,
                  .count = send_count,
                  .recv_count = recv_count,
                  .type = type,
                  .root = dest,
                  .source = source},
                 async);
}

namespace {
absl::Status NotProvided(const Communicator& comm, std::string_view op) {
  return absl::UnimplementedError(absl::StrFormat("%s: the %s backend does not provide it",
                                                  ci::OpContext(comm, op), comm.backend()));
}
}  // namespace

absl::Status Communicator::DoAllToAllV(const void*, absl::Span<const size_t>,
                                       absl::Span<const size_t>, void*, absl::Span<const size_t>,
                                       absl::Span<const size_t>, DataType) {
  return NotProvided(*this, ci::kAllToAllV);
}
absl::Status Communicator::DoGather(const void*, void*, size_t, DataType, int) {
  return NotProvided(*this, ci::kGather);
}
absl::Status Communicator::DoScatter(const void*, void*, size_t, DataType, int) {
  return NotProvided(*this, ci::kScatter);
}
absl::Status Communicator::DoReduce(const void*, void*, size_t, DataType, ReduceOp, int) {
  return NotProvided(*this, ci::kReduce);
}
absl::Status Communicator::DoSendRecv(const void*, size_t, int, void*, size_t, int, DataType) {
  return NotProvided(*this, ci::kSendRecv);
}

absl::Status Communicator::CheckExtents(std::string_view op, std::string_view which,
                                        size_t elements, absl::Span<const size_t> counts,
                                        absl::Span<const size_t> displs) const {
  const size_t n = static_cast<size_t>(size());
  if (counts.size() != n || displs.size() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s on axis '%s': %s counts and displacements have %d and %d entries, expected %d", op,
        options().name, which, counts.size(), displs.size(), n));
  }
  for (size_t j = 0; j < n; ++j) {
    if (counts[j] != 0 && (displs[j] > elements || counts[j] > elements - displs[j])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s on axis '%s': %s block %d (displacement %d, count %d) ends past the %d elements of "
          "the %s buffer",
          op, options().name, which, j, displs[j], counts[j], elements, which));
    }
  }
  return absl::OkStatus();
}

absl::Status Communicator::SizeMismatch(std::string_view op, std::string_view which,
                                        size_t expected, size_t got) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s on axis '%s': %s buffer holds %d elements, expected %d", op,
                      options().name, which, got, expected));
}

absl::Status Communicator::NotMultipleOfSize(std::string_view op, size_t got) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s on axis '%s': buffer holds %d elements, not a multiple of the %d ranks",
                      op, options().name, got, size()));
}

absl::StatusOr<Buffer> Communicator::AllocateBuffer(size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kAllocate));
  if (bytes == 0) return Buffer();
  void* data = ::operator new(bytes, std::nothrow);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: cannot allocate %d bytes", internal::OpContext(*this, "allocate"), bytes));
  }
  return Buffer(data, bytes, [](void* p) { ::operator delete(p); });
}

absl::Status Communicator::CopyToHost(void* host, const void* buffer, size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kCopyToHost));
  NMESH_RETURN_IF_ERROR(internal::CheckCopy(*this, internal::kCopyToHost, host, buffer, bytes));
  if (bytes != 0 && host != buffer) std::memmove(host, buffer, bytes);
  return absl::OkStatus();
}

absl::Status Communicator::CopyFromHost(void* buffer, const void* host, size_t bytes) {
  NMESH_RETURN_IF_ERROR(internal::CheckHostMemory(*this, internal::kCopyFromHost));
  NMESH_RETURN_IF_ERROR(internal::CheckCopy(*this, internal::kCopyFromHost, buffer, host, bytes));
  if (bytes != 0 && host != buffer) std::memmove(buffer, host, bytes);
  return absl::OkStatus();
}

std::unique_ptr<Communicator> Communicator::NewSelf(CommOptions options) const {
  NMESH_CHECK(memory_kind() == MemoryKind::kHost)
      << "the " << backend() << " backend must override Communicator::NewSelf";
  return NewSelfCommunicator(std::move(options));
}

}  // namespace nmesh::comm
