#include "nmesh/comm/communicator.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/watch/flight_recorder.h"
#include "nmesh/comm/watch/watchdog_thread.h"

namespace nmesh::comm {

// The public operations: the guards every backend shares, then the backend's hook.

namespace ci = internal;

Communicator::Communicator() : revocation_(std::make_shared<ci::Revocation>()) {}

absl::Status Communicator::CheckUsable(std::string_view) const { return absl::OkStatus(); }

absl::Status Communicator::Revoked(std::string_view op, absl::Status status) const {
  if (status.ok() || !revocation_->revoked()) return status;
  return revocation_->Apply(ci::OpContext(*this, op), std::move(status));
}

absl::Status Communicator::Revoke(std::string cause) {
  revocation_->Mark(std::move(cause));
  return Abort();
}

std::optional<std::string> Communicator::revocation_cause() const {
  if (!revocation_->revoked()) return std::nullopt;
  return revocation_->cause();
}

bool Communicator::Release(std::string_view) { return false; }

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(std::optional<int> color, int key,
                                                                  CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, OpKindName(OpKind::kSplit)));
  NMESH_RETURN_IF_ERROR(
      Revoked(OpKindName(OpKind::kSplit), CheckUsable(OpKindName(OpKind::kSplit))));
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  const uint64_t seq = BeginRecord({.op = OpKind::kSplit, .root = color.value_or(-1)});
  absl::StatusOr<std::unique_ptr<Communicator>> split = DoSplit(color, key, std::move(options));
  (void)EndRecord(seq, split.status());
  if (!split.ok()) return Revoked(OpKindName(OpKind::kSplit), split.status());
  return split;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::SplitAgreed(std::optional<int> color,
                                                                        int key,
                                                                        CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, OpKindName(OpKind::kSplit)));
  NMESH_RETURN_IF_ERROR(
      Revoked(OpKindName(OpKind::kSplit), CheckUsable(OpKindName(OpKind::kSplit))));
  NMESH_RETURN_IF_ERROR(ci::CheckSplit(*this, color));
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  const uint64_t seq = BeginRecord({.op = OpKind::kSplit, .root = color.value_or(-1)});
  absl::StatusOr<std::unique_ptr<Communicator>> split =
      DoSplitAgreed(color, key, std::move(options));
  (void)EndRecord(seq, split.status());
  if (!split.ok()) return Revoked(OpKindName(OpKind::kSplit), split.status());
  return split;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::SplitAgreed(
    absl::Span<const int> members, CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, OpKindName(OpKind::kSplit)));
  NMESH_RETURN_IF_ERROR(
      Revoked(OpKindName(OpKind::kSplit), CheckUsable(OpKindName(OpKind::kSplit))));
  NMESH_RETURN_IF_ERROR(ci::CheckSplitMembers(*this, members));
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  const uint64_t seq =
      BeginRecord({.op = OpKind::kSplit, .root = members.empty() ? -1 : members.front()});
  absl::StatusOr<std::unique_ptr<Communicator>> split =
      DoSplitAgreedMembers(members, std::move(options));
  (void)EndRecord(seq, split.status());
  if (!split.ok()) return Revoked(OpKindName(OpKind::kSplit), split.status());
  return split;
}

absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> Communicator::SplitAgreedMany(
    absl::Span<const AgreedSplit> splits) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, OpKindName(OpKind::kSplit)));
  NMESH_RETURN_IF_ERROR(
      Revoked(OpKindName(OpKind::kSplit), CheckUsable(OpKindName(OpKind::kSplit))));
  for (const AgreedSplit& split : splits) {
    NMESH_RETURN_IF_ERROR(ci::CheckSplitMembers(*this, split.members));
    NMESH_RETURN_IF_ERROR(CheckTimeout(split.options.timeout, "CommOptions.timeout"));
  }
  // One record per split, as SplitAgreed makes, all open while the splits are made together.
  std::vector<uint64_t> seqs;
  seqs.reserve(splits.size());
  for (const AgreedSplit& split : splits) {
    seqs.push_back(BeginRecord(
        {.op = OpKind::kSplit, .root = split.members.empty() ? -1 : split.members.front()}));
  }
  absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> made = DoSplitAgreedMany(splits);
  for (uint64_t seq : seqs) (void)EndRecord(seq, made.status());
  if (!made.ok()) return Revoked(OpKindName(OpKind::kSplit), made.status());
  return made;
}

// ---- Timeouts, the flight recorder and the watchdog -------------------------------------------

absl::Status Communicator::SetTimeout(std::optional<absl::Duration> timeout) {
  NMESH_RETURN_IF_ERROR(Revoked("set_timeout", CheckUsable("set_timeout")));
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

absl::Status RevokeAll(absl::Span<Communicator* const> comms, std::string_view cause) {
  for (Communicator* comm : comms) {
    if (comm != nullptr) comm->revocation_->Mark(std::string(cause));
  }
  return AbortTogether(comms);
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
  const int32_t peer = RecordsPeer(a.op) ? a.root : -1;
  return recorder()->Start(a.op, static_cast<int64_t>(a.count), a.type, peer, now, deadline);
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

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::DoSplitAgreedMembers(
    absl::Span<const int> members, CommOptions options) {
  if (members.empty()) return DoSplitAgreed(std::nullopt, 0, std::move(options));
  const int key =
      static_cast<int>(std::find(members.begin(), members.end(), rank()) - members.begin());
  return DoSplitAgreed(members.front(), key, std::move(options));
}

absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> Communicator::DoSplitAgreedMany(
    absl::Span<const AgreedSplit> splits) {
  std::vector<std::unique_ptr<Communicator>> made;
  made.reserve(splits.size());
  for (const AgreedSplit& split : splits) {
    NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
                           DoSplitAgreedMembers(split.members, split.options));
    made.push_back(std::move(comm));
  }
  return made;
}

absl::Status Communicator::Guard(const OpArgs& a, bool* empty) const {
  *empty = false;
  const std::string_view name = OpKindName(a.op);
  if (!IsOpKind(a.op) || a.op == OpKind::kSplit) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: Run and RunAsync take the collectives and point-to-point operations; split is "
        "Communicator::Split (rank %d of %d)",
        ci::OpContext(*this, name), rank(), size()));
  }
  if (absl::Status usable = CheckUsable(name); !usable.ok()) return Revoked(name, usable);
  const OpTraits& traits = Traits(a.op);
  if (!traits.moves_data) return absl::OkStatus();
  NMESH_RETURN_IF_ERROR(ci::CheckDataType(*this, name, a.type));
  if (traits.reduces) NMESH_RETURN_IF_ERROR(ci::CheckReduceOp(*this, name, a.reduce));
  switch (a.op) {
    case OpKind::kAllReduce:
      NMESH_RETURN_IF_ERROR(ci::CheckAllReduce(*this, a.send, a.recv, a.count));
      break;
    case OpKind::kAllGather:
      NMESH_RETURN_IF_ERROR(ci::CheckAllGather(*this, a.send, a.recv, a.count));
      break;
    case OpKind::kReduceScatter:
      NMESH_RETURN_IF_ERROR(ci::CheckReduceScatter(*this, a.send, a.recv, a.count));
      break;
    case OpKind::kBroadcast:
      NMESH_RETURN_IF_ERROR(ci::CheckBroadcast(*this, a.recv, a.count, a.root));
      break;
    case OpKind::kAllToAll:
      NMESH_RETURN_IF_ERROR(ci::CheckAllToAll(*this, a.send, a.recv, a.count, a.type));
      break;
    case OpKind::kSend:
      return ci::CheckPointToPoint(*this, name, a.send, a.count, a.root);
    case OpKind::kRecv:
      return ci::CheckPointToPoint(*this, name, a.recv, a.count, a.root);
    case OpKind::kAllToAllV: {
      // Other ranks may exchange with each other even when this one moves nothing: an
      // all_to_all_v always reaches the backend.
      size_t total_send = 0, total_recv = 0;
      return ci::CheckAllToAllV(*this, a.send, a.send_counts, a.send_displs, a.recv, a.recv_counts,
                                a.recv_displs, a.type, &total_send, &total_recv);
    }
    case OpKind::kGather:
      NMESH_RETURN_IF_ERROR(ci::CheckRooted(*this, a.op, a.send, a.recv, a.count, a.type, a.root));
      break;
    case OpKind::kScatter:
      NMESH_RETURN_IF_ERROR(ci::CheckRooted(*this, a.op, a.recv, a.send, a.count, a.type, a.root));
      break;
    case OpKind::kReduce:
      NMESH_RETURN_IF_ERROR(ci::CheckReduce(*this, a.send, a.recv, a.count, a.type, a.root));
      break;
    case OpKind::kSendRecv:
      return ci::CheckSendRecv(*this, a.send, a.count, a.root, a.recv, a.recv_count, a.source,
                               a.type);
    case OpKind::kSplit:
    case OpKind::kBarrier:
      break;
  }
  *empty = a.count == 0;  // the collectives: zero counts are no-ops
  return absl::OkStatus();
}

absl::Status Communicator::DoRun(const OpArgs& a) {
  switch (a.op) {
    case OpKind::kAllReduce:
      return DoAllReduce(a.send, a.recv, a.count, a.type, a.reduce);
    case OpKind::kAllGather:
      return DoAllGather(a.send, a.recv, a.count, a.type);
    case OpKind::kReduceScatter:
      return DoReduceScatter(a.send, a.recv, a.count, a.type, a.reduce);
    case OpKind::kBroadcast:
      return DoBroadcast(a.recv, a.count, a.type, a.root);
    case OpKind::kAllToAll:
      return DoAllToAll(a.send, a.recv, a.count, a.type);
    case OpKind::kSend:
      return DoSend(a.send, a.count, a.type, a.root);
    case OpKind::kRecv:
      return DoRecv(a.recv, a.count, a.type, a.root);
    case OpKind::kBarrier:
      return DoBarrier();
    case OpKind::kAllToAllV:
      return DoAllToAllV(a.send, a.send_counts, a.send_displs, a.recv, a.recv_counts, a.recv_displs,
                         a.type);
    case OpKind::kGather:
      return DoGather(a.send, a.recv, a.count, a.type, a.root);
    case OpKind::kScatter:
      return DoScatter(a.send, a.recv, a.count, a.type, a.root);
    case OpKind::kReduce:
      return DoReduce(a.send, a.recv, a.count, a.type, a.reduce, a.root);
    case OpKind::kSendRecv:
      return DoSendRecv(a.send, a.count, a.root, a.recv, a.recv_count, a.source, a.type);
    case OpKind::kSplit:
      break;
  }
  return absl::InternalError(
      absl::StrFormat("operation '%s' has no blocking hook", OpKindName(a.op)));
}

absl::StatusOr<Work> Communicator::DoAsync(const OpArgs& args, const AsyncOptions&) {
  return ci::CompletedWork(*this, OpKindName(args.op), DoRun(args));
}

absl::StatusOr<Work> Communicator::RunAsync(const OpArgs& args, AsyncOptions async) {
  bool empty = false;
  NMESH_RETURN_IF_ERROR(Guard(args, &empty));
  Batch::State* batch = ci::CurrentBatch();
  if (batch == nullptr) NMESH_RETURN_IF_ERROR(CheckAcrossRanks(args));
  if (empty) return ci::CompletedWork(*this, OpKindName(args.op), absl::OkStatus());
  if (batch != nullptr) {
    if (batch->backend.empty()) batch->backend = std::string(backend());
    if (batch->backend != backend()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the open batch holds %s operations; a batch takes one backend, this is %s (rank "
          "%d of %d)",
          ci::OpContext(*this, OpKindName(args.op)), batch->backend, backend(), rank(), size()));
    }
  }
  const uint64_t seq = BeginRecord(args, /*async=*/true);
  absl::StatusOr<Work> issued = DoAsync(args, async);
  if (!issued.ok()) return EndRecord(seq, Revoked(OpKindName(args.op), issued.status()));
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

// The entry points: each builds its operation's record once (OpArgs), then the blocking (Run)
// or the asynchronous path (RunAsync) takes it.

absl::Status Communicator::Run(const OpArgs& args) {
  const std::string_view name = OpKindName(args.op);
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, name));
  bool empty = false;
  NMESH_RETURN_IF_ERROR(Guard(args, &empty));
  NMESH_RETURN_IF_ERROR(CheckAcrossRanks(args));
  if (empty) return absl::OkStatus();
  const uint64_t seq = BeginRecord(args);
  absl::Status status = DoRun(args);
  if (!status.ok()) status = Revoked(name, std::move(status));
  return EndRecord(seq, std::move(status));
}

absl::Status Communicator::AllReduce(const void* send, void* recv, size_t count, DataType type,
                                     ReduceOp op) {
  return Run(OpArgs::AllReduce(send, recv, count, type, op));
}
absl::Status Communicator::AllGather(const void* send, void* recv, size_t send_count,
                                     DataType type) {
  return Run(OpArgs::AllGather(send, recv, send_count, type));
}
absl::Status Communicator::ReduceScatter(const void* send, void* recv, size_t recv_count,
                                         DataType type, ReduceOp op) {
  return Run(OpArgs::ReduceScatter(send, recv, recv_count, type, op));
}
absl::Status Communicator::Broadcast(void* buffer, size_t count, DataType type, int root) {
  return Run(OpArgs::Broadcast(buffer, count, type, root));
}
absl::Status Communicator::AllToAll(const void* send, void* recv, size_t count, DataType type) {
  return Run(OpArgs::AllToAll(send, recv, count, type));
}
absl::Status Communicator::Send(const void* buffer, size_t count, DataType type, int peer) {
  return Run(OpArgs::Send(buffer, count, type, peer));
}
absl::Status Communicator::Recv(void* buffer, size_t count, DataType type, int peer) {
  return Run(OpArgs::Recv(buffer, count, type, peer));
}
absl::Status Communicator::Barrier() { return Run(OpArgs::Barrier()); }
absl::Status Communicator::AllToAllV(const void* send, absl::Span<const size_t> send_counts,
                                     absl::Span<const size_t> send_displs, void* recv,
                                     absl::Span<const size_t> recv_counts,
                                     absl::Span<const size_t> recv_displs, DataType type) {
  return Run(
      OpArgs::AllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, type));
}
absl::Status Communicator::Gather(const void* send, void* recv, size_t send_count, DataType type,
                                  int root) {
  return Run(OpArgs::Gather(send, recv, send_count, type, root));
}
absl::Status Communicator::Scatter(const void* send, void* recv, size_t recv_count, DataType type,
                                   int root) {
  return Run(OpArgs::Scatter(send, recv, recv_count, type, root));
}
absl::Status Communicator::Reduce(const void* send, void* recv, size_t count, DataType type,
                                  ReduceOp op, int root) {
  return Run(OpArgs::Reduce(send, recv, count, type, op, root));
}
absl::Status Communicator::SendRecv(const void* send, size_t send_count, int dest, void* recv,
                                    size_t recv_count, int source, DataType type) {
  return Run(OpArgs::SendRecv(send, send_count, dest, recv, recv_count, source, type));
}

absl::StatusOr<Work> Communicator::AllReduceAsync(const void* send, void* recv, size_t count,
                                                  DataType type, ReduceOp op, AsyncOptions async) {
  return RunAsync(OpArgs::AllReduce(send, recv, count, type, op), async);
}
absl::StatusOr<Work> Communicator::AllGatherAsync(const void* send, void* recv, size_t send_count,
                                                  DataType type, AsyncOptions async) {
  return RunAsync(OpArgs::AllGather(send, recv, send_count, type), async);
}
absl::StatusOr<Work> Communicator::ReduceScatterAsync(const void* send, void* recv,
                                                      size_t recv_count, DataType type, ReduceOp op,
                                                      AsyncOptions async) {
  return RunAsync(OpArgs::ReduceScatter(send, recv, recv_count, type, op), async);
}
absl::StatusOr<Work> Communicator::BroadcastAsync(void* buffer, size_t count, DataType type,
                                                  int root, AsyncOptions async) {
  return RunAsync(OpArgs::Broadcast(buffer, count, type, root), async);
}
absl::StatusOr<Work> Communicator::AllToAllAsync(const void* send, void* recv, size_t count,
                                                 DataType type, AsyncOptions async) {
  return RunAsync(OpArgs::AllToAll(send, recv, count, type), async);
}
absl::StatusOr<Work> Communicator::SendAsync(const void* buffer, size_t count, DataType type,
                                             int peer, AsyncOptions async) {
  return RunAsync(OpArgs::Send(buffer, count, type, peer), async);
}
absl::StatusOr<Work> Communicator::RecvAsync(void* buffer, size_t count, DataType type, int peer,
                                             AsyncOptions async) {
  return RunAsync(OpArgs::Recv(buffer, count, type, peer), async);
}
absl::StatusOr<Work> Communicator::BarrierAsync(AsyncOptions async) {
  return RunAsync(OpArgs::Barrier(), async);
}
absl::StatusOr<Work> Communicator::AllToAllVAsync(const void* send,
                                                  absl::Span<const size_t> send_counts,
                                                  absl::Span<const size_t> send_displs, void* recv,
                                                  absl::Span<const size_t> recv_counts,
                                                  absl::Span<const size_t> recv_displs,
                                                  DataType type, AsyncOptions async) {
  return RunAsync(
      OpArgs::AllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, type),
      async);
}
absl::StatusOr<Work> Communicator::GatherAsync(const void* send, void* recv, size_t send_count,
                                               DataType type, int root, AsyncOptions async) {
  return RunAsync(OpArgs::Gather(send, recv, send_count, type, root), async);
}
absl::StatusOr<Work> Communicator::ScatterAsync(const void* send, void* recv, size_t recv_count,
                                                DataType type, int root, AsyncOptions async) {
  return RunAsync(OpArgs::Scatter(send, recv, recv_count, type, root), async);
}
absl::StatusOr<Work> Communicator::ReduceAsync(const void* send, void* recv, size_t count,
                                               DataType type, ReduceOp op, int root,
                                               AsyncOptions async) {
  return RunAsync(OpArgs::Reduce(send, recv, count, type, op, root), async);
}
absl::StatusOr<Work> Communicator::SendRecvAsync(const void* send, size_t send_count, int dest,
                                                 void* recv, size_t recv_count, int source,
                                                 DataType type, AsyncOptions async) {
  return RunAsync(OpArgs::SendRecv(send, send_count, dest, recv, recv_count, source, type), async);
}

namespace {
absl::Status NotProvided(const Communicator& comm, OpKind op) {
  return absl::UnimplementedError(absl::StrFormat("%s: the %s backend does not provide it",
                                                  ci::OpContext(comm, OpKindName(op)),
                                                  comm.backend()));
}
}  // namespace

absl::Status Communicator::DoAllReduce(const void*, void*, size_t, DataType, ReduceOp) {
  return NotProvided(*this, OpKind::kAllReduce);
}
absl::Status Communicator::DoAllGather(const void*, void*, size_t, DataType) {
  return NotProvided(*this, OpKind::kAllGather);
}
absl::Status Communicator::DoReduceScatter(const void*, void*, size_t, DataType, ReduceOp) {
  return NotProvided(*this, OpKind::kReduceScatter);
}
absl::Status Communicator::DoBroadcast(void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kBroadcast);
}
absl::Status Communicator::DoAllToAll(const void*, void*, size_t, DataType) {
  return NotProvided(*this, OpKind::kAllToAll);
}
absl::Status Communicator::DoSend(const void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kSend);
}
absl::Status Communicator::DoRecv(void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kRecv);
}
absl::Status Communicator::DoBarrier() { return NotProvided(*this, OpKind::kBarrier); }
absl::Status Communicator::DoAllToAllV(const void*, absl::Span<const size_t>,
                                       absl::Span<const size_t>, void*, absl::Span<const size_t>,
                                       absl::Span<const size_t>, DataType) {
  return NotProvided(*this, OpKind::kAllToAllV);
}
absl::Status Communicator::DoGather(const void*, void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kGather);
}
absl::Status Communicator::DoScatter(const void*, void*, size_t, DataType, int) {
  return NotProvided(*this, OpKind::kScatter);
}
absl::Status Communicator::DoReduce(const void*, void*, size_t, DataType, ReduceOp, int) {
  return NotProvided(*this, OpKind::kReduce);
}
absl::Status Communicator::DoSendRecv(const void*, size_t, int, void*, size_t, int, DataType) {
  return NotProvided(*this, OpKind::kSendRecv);
}

absl::Status Communicator::CheckExtents(OpKind op, std::string_view which, size_t elements,
                                        absl::Span<const size_t> counts,
                                        absl::Span<const size_t> displs) const {
  const size_t n = static_cast<size_t>(size());
  if (counts.size() != n || displs.size() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s on axis '%s': %s counts and displacements have %d and %d entries, expected %d",
        OpKindName(op), options().name, which, counts.size(), displs.size(), n));
  }
  for (size_t j = 0; j < n; ++j) {
    if (counts[j] != 0 && (displs[j] > elements || counts[j] > elements - displs[j])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s on axis '%s': %s block %d (displacement %d, count %d) ends past the %d elements of "
          "the %s buffer",
          OpKindName(op), options().name, which, j, displs[j], counts[j], elements, which));
    }
  }
  return absl::OkStatus();
}

absl::Status Communicator::SizeMismatch(OpKind op, std::string_view which, size_t expected,
                                        size_t got) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s on axis '%s': %s buffer holds %d elements, expected %d", OpKindName(op),
                      options().name, which, got, expected));
}

absl::Status Communicator::NotMultipleOfSize(OpKind op, size_t got) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s on axis '%s': buffer holds %d elements, not a multiple of the %d ranks",
                      OpKindName(op), options().name, got, size()));
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
