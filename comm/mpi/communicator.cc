#include "nmesh/comm/mpi/communicator.h"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/host_math.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/mpi/native.h"
#include "nmesh/comm/mpi/operations.h"
#include "nmesh/comm/mpi/quarantine.h"
#include "nmesh/comm/mpi/staging.h"
#include "nmesh/comm/mpi/reduce_ops.h"
#include "nmesh/comm/mpi/session_native.h"
#include "nmesh/comm/mpi/side_channel.h"
#include "nmesh/comm/mpi/status.h"
#include "nmesh/comm/watch/flight_recorder.h"

namespace nmesh::comm::mpi {
namespace {

namespace ci = ::nmesh::comm::internal;

// The cause a communicator's family is being revoked with, on the thread that revokes it (set
// around AbortFamilyOrSelf, which calls Abort() on every member of the family, as the watchdog
// does): Abort() then revokes with that cause (Communicator::Revoke) instead of a plain abort.
thread_local const std::string* revoke_cause = nullptr;

class RevokeScope {
 public:
  explicit RevokeScope(const std::string& cause) : previous_(revoke_cause) {
    revoke_cause = &cause;
  }
  ~RevokeScope() { revoke_cause = previous_; }
  RevokeScope(const RevokeScope&) = delete;
  RevokeScope& operator=(const RevokeScope&) = delete;

 private:
  const std::string* previous_;
};

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm`, which has MPI_ERRORS_RETURN set. `collective`: every rank of `comm`
  // constructs it together, so a separate channel for the watchdog can be made (when `options`
  // has a timeout).
  MpiCommunicator(MPI_Comm comm, CommOptions options, bool collective = true)
      : comm_(comm), options_(std::move(options)) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // Only a communicator created with a timeout gets one: the duplicate is one more collective
    // per creation, which meshes built without timeouts should not pay.
    if (collective && options_.timeout.has_value()) {
      side_ = MakeSideChannel(comm_, options_.name);
    }
    if (side_ != nullptr) {
      side_->SetOnNotice([this](const std::string& cause) { RevokedByPeer(cause); });
      Watch(side_.get());
    }
  }
  // Borrows `comm` (adoption): sets MPI_ERRORS_RETURN on it for its lifetime and restores the
  // caller's error handler on destruction, without freeing it.
  MpiCommunicator(MPI_Comm comm, CommOptions options, MPI_Errhandler restore)
      : MpiCommunicator(comm, std::move(options), /*collective=*/false) {
    owned_ = false;
    restore_ = restore;
  }

  ~MpiCommunicator() override { FreeNative(); }

  bool Release(std::string_view reason) override {
    abort_state_.Mark(std::string(reason));
    FreeNative();
    return true;
  }

  // What the destructor frees; once.
  void FreeNative() {
    if (freed_) return;
    freed_ = true;
    Unwatch();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;  // MPI_Finalize already released everything.
    works_.OrphanAll();
    std::erase_if(abandoned_, [](Abandoned& a) {
      int done = 0;
      MPI_Test(&a.request, &done, MPI_STATUS_IGNORE);
      return done != 0;
    });
    if (!abandoned_.empty() || revoked_.load(std::memory_order_acquire) ||
        work_abandoned_->load(std::memory_order_acquire) ||
        (side_ != nullptr && side_->revoked())) {
      // A collective may still progress on it, or its peers may still send to it: never freed
      // (comm/mpi/quarantine.h).
      const MPI_Comm side = side_ != nullptr ? side_->Retire() : MPI_COMM_NULL;
      side_.reset();
      if (!owned_) {
        MPI_Comm_set_errhandler(comm_, restore_);
        MPI_Errhandler_free(&restore_);
      }
      Quarantine(owned_ ? comm_ : MPI_COMM_NULL, side, std::move(abandoned_));
      abandoned_.clear();
      comm_ = MPI_COMM_NULL;
      return;
    }
    side_.reset();
    if (owned_) {
      MPI_Comm_free(&comm_);
    } else {
      MPI_Comm_set_errhandler(comm_, restore_);
      MPI_Errhandler_free(&restore_);
    }
    comm_ = MPI_COMM_NULL;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm native() const { return comm_; }
  std::string_view backend() const override { return "mpi"; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  const CommOptions& options() const override { return options_; }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreed(std::optional<int> color, int key,
                                                              CommOptions options) override {
    // The exchange only guards against bad colors, which the caller has ruled out, and bounds the
    // wait where nothing else does (SplitNeedsExchange).
    if (SplitNeedsExchange()) return DoSplit(color, key, std::move(options));
    return CommSplit(color, key, std::move(options));
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        CommOptions options) override {
    // Every rank learns every color first, so a bad color fails on all ranks instead of leaving
    // the others hung in MPI_Comm_split, and the exchange honours the timeout.
    const int32_t mine[2] = {color.has_value() ? 1 : 0, color.value_or(0)};
    std::vector<int32_t> all(2 * static_cast<size_t>(size_));
    NMESH_RETURN_IF_ERROR(
        RunOp(OpArgs::AllGather(mine, all.data(), 2, DataType::kInt32), OpKind::kSplit));
    std::vector<std::string> bad;
    for (int r = 0; r < size_; ++r) {
      const int32_t has = all[2 * static_cast<size_t>(r)];
      const int32_t c = all[2 * static_cast<size_t>(r) + 1];
      if (has && c < 0) bad.push_back(absl::StrFormat("rank %d passed %d", r, c));
    }
    if (!bad.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: colors must be non-negative or absent; %s (rank %d of %d)",
          ci::OpContext(*this, OpKind::kSplit), absl::StrJoin(bad, ", "), rank_, size_));
    }
    return CommSplit(color, key, std::move(options));
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreedMembers(absl::Span<const int> members,
                                                                     CommOptions options) override {
    if (SplitNeedsExchange()) {
      return Communicator::DoSplitAgreedMembers(members, std::move(options));
    }
    // A rank that joins none takes part in nothing: MPI_Comm_create_group is collective over
    // the new group only, which is what makes it cheaper than a split over the whole parent.
    if (members.empty()) return std::unique_ptr<Communicator>();
    MPI_Group parent = MPI_GROUP_NULL;
    NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit, MPI_Comm_group(comm_, &parent), "MPI_Comm_group"));
    MPI_Group group = MPI_GROUP_NULL;
    int rc = MPI_Group_incl(parent, static_cast<int>(members.size()), members.data(), &group);
    MPI_Group_free(&parent);
    NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit, rc, "MPI_Group_incl"));
    MPI_Comm out = MPI_COMM_NULL;
    rc = MPI_Comm_create_group(comm_, group, kTag, &out);
    MPI_Group_free(&group);
    NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit, rc, "MPI_Comm_create_group"));
    return Adopt(out, std::move(options));
  }

  // Whether an agreed split still needs the color exchange before its blocking MPI call: only to
  // bound the wait by an interruptible timeout (the exchange is polled; the MPI call is not). A
  // watched communicator's blocking split is bounded by the watchdog like any blocking call, and
  // without a timeout nothing bounds it anyway.
  bool SplitNeedsExchange() const {
    return options_.timeout.has_value() && (options_.interruptible || !watched());
  }

  // MPI_Comm_split (blocking), with MPI_UNDEFINED for no color.
  absl::StatusOr<std::unique_ptr<Communicator>> CommSplit(std::optional<int> color, int key,
                                                          CommOptions options) {
    MPI_Comm out = MPI_COMM_NULL;
    NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit,
                                MPI_Comm_split(comm_, color ? *color : MPI_UNDEFINED, key, &out),
                                "MPI_Comm_split"));
    return Adopt(out, std::move(options));
  }

  // A communicator this one made (null for MPI_COMM_NULL), returning errors to nmesh.
  absl::StatusOr<std::unique_ptr<Communicator>> Adopt(MPI_Comm out, CommOptions options) {
    if (out == MPI_COMM_NULL) return std::unique_ptr<Communicator>();
    if (int rc = MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN); rc != MPI_SUCCESS) {
      MPI_Comm_free(&out);
      return Check(OpKind::kSplit, rc, "MPI_Comm_set_errhandler");
    }
    return std::unique_ptr<Communicator>(new MpiCommunicator(out, std::move(options)));
  }

  absl::Status DoRun(const OpArgs& a) override { return RunOp(a, a.op); }

  // The asynchronous path: the nonblocking call on the caller's buffers (Start).
  absl::StatusOr<Work> DoAsync(const OpArgs& a, const AsyncOptions&) override {
    NMESH_RETURN_IF_ERROR(CheckCounts(a.op, a));
    Started started;
    const char* call = "";
    const int rc = StartCall(group(), a, started, &call);
    NMESH_RETURN_IF_ERROR(Check(a.op, rc, call));
    return Work(works_.Add(
        std::make_shared<MpiWork>(*this, a.op, rank_, std::move(started), work_abandoned_)));
  }

  // Marks this communicator aborted. With a cause, tells its peers (a revocation notice over the
  // side channel, sent by the watchdog thread or this communicator's next interruptible
  // operation): Revoke's (Communicator::Revoke, RevokeTogether, DeviceMesh::Revoke record it
  // before they call this) or the family's (RevokeScope, a timeout or a peer's notice). A plain
  // Abort() stays local. Makes no MPI call.
  absl::Status Abort() override {
    if (revoke_cause != nullptr && !revoked_.load(std::memory_order_acquire) &&
        !revocation_cause().has_value()) {
      return Communicator::Revoke(*revoke_cause);  // records the cause, then calls Abort() again
    }
    std::optional<std::string> cause = revocation_cause();
    if (!cause.has_value() && revoke_cause != nullptr) cause = *revoke_cause;
    if (cause.has_value()) {
      MarkRevoked(*cause, *cause);
    } else {
      // A plain abort stays on this rank (a caller stopping its own use of the communicator, as
      // before revocation existed): only a cause is told to the peers.
      revoked_.store(true, std::memory_order_release);
      abort_state_.Mark("Abort() was called");
    }
    return absl::OkStatus();
  }

  absl::Status DoSetTimeout(std::optional<absl::Duration> timeout) override {
    options_.timeout = timeout;
    return absl::OkStatus();
  }

  void PollOutstanding() override { works_.TryPollAll(); }

  absl::StatusOr<Topology> QueryTopology() {
    NMESH_RETURN_IF_ERROR(Usable("topology"));
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int length = 0;
    NMESH_RETURN_IF_ERROR(
        Check("topology", MPI_Get_processor_name(name, &length), "MPI_Get_processor_name"));
    NMESH_ASSIGN_OR_RETURN(Topology topo, ExchangeHostNames(*this, std::string_view(name, length)));
    MPI_Comm local = MPI_COMM_NULL;
    NMESH_RETURN_IF_ERROR(Check(
        "topology", MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
        "MPI_Comm_split_type"));
    MPI_Comm_rank(local, &topo.local_rank);
    MPI_Comm_size(local, &topo.local_size);
    MPI_Comm_free(&local);
    return topo;
  }

 private:
  // This process's rank in the job's world, for causes told to other ranks.
  int64_t GlobalRank() const {
    return side_ != nullptr ? side_->GlobalRank(rank_) : static_cast<int64_t>(rank_);
  }

  // Marks this communicator aborted with `reason` (what its own later operations say) and tells
  // its peers `cause` (once; nothing when it was revoked already).
  void MarkRevoked(const std::string& reason, const std::string& cause) {
    revoked_.store(true, std::memory_order_release);
    if (!abort_state_.Mark(reason)) return;
    if (side_ != nullptr) side_->Revoke(cause);
  }

  // Revokes this communicator, then every communicator of its family (its mesh), with `cause`.
  void RevokeFamily(const std::string& reason, const std::string& cause) {
    MarkRevoked(reason, cause);
    RevokeScope scope(cause);
    AbortFamilyOrSelf();
  }

  // A peer's notice: the communicator was revoked there (it told every rank of it), so it is here,
  // and so is the rest of this rank's mesh, whose other communicators tell their own peers.
  void RevokedByPeer(const std::string& cause) {
    (void)Communicator::Revoke(cause);  // operations fail with Aborted naming it
    RevokeScope scope(cause);
    AbortFamilyOrSelf();  // must not touch `this` afterwards: the family's abort may release it
  }

  // Sends a pending notice and takes the arrived ones (a communicator with a side channel), then
  // whether this communicator is still usable.
  absl::Status TakeNotices(ci::OpName op) {
    if (side_ == nullptr) return absl::OkStatus();
    side_->CheckNotices();
    return Usable(op);
  }

  absl::Status Usable(ci::OpName op) const {
    // After MPI_Finalize any MPI call would end the process: an error instead.
    if (MpiFinalizing()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: MPI has been finalised (its session was destroyed): the communicator can no "
          "longer be used (rank %d of %d)",
          ci::OpContext(*this, op), rank_, size_));
    }
    return abort_state_.Check(*this, op);
  }
  absl::Status CheckUsable(std::string_view op) const override { return Usable(op); }

  MpiGroup group() const { return {comm_, rank_, size_}; }

  absl::Status Check(ci::OpName op, int code, const char* call) const {
    return ci::WithContext(*this, op, MpiStatus(code, call, rank_));
  }

  absl::Status CheckCount(ci::OpName op, size_t count) const {
    if (count <= static_cast<size_t>(INT_MAX)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: count %d exceeds the MPI limit of %d elements per call; split the buffer (rank %d "
        "of %d)",
        ci::OpContext(*this, op), count, INT_MAX, rank_, size_));
  }

  absl::Status CheckCounts(ci::OpName op, const OpArgs& a) const {
    NMESH_RETURN_IF_ERROR(CheckCount(op, a.count));
    NMESH_RETURN_IF_ERROR(CheckCount(op, a.recv_count));
    if (a.op != OpKind::kAllToAllV) return absl::OkStatus();
    for (size_t j = 0; j < static_cast<size_t>(size_); ++j) {
      for (size_t v : {a.send_counts[j], a.send_displs[j], a.recv_counts[j], a.recv_displs[j]}) {
        NMESH_RETURN_IF_ERROR(CheckCount(op, v));
      }
    }
    return absl::OkStatus();
  }

  // Runs one checked operation, named `name` in messages. Without a timeout, or watched by the
  // watchdog: the blocking call (Blocking) on the caller's memory. With an interruptible timeout:
  // RunInterruptible.
  absl::Status RunOp(const OpArgs& a, ci::OpName name) {
    NMESH_RETURN_IF_ERROR(CheckCounts(name, a));
    if (options_.timeout && (side_ == nullptr || options_.interruptible)) {
      return RunInterruptible(a, name);
    }
    const char* call = "";
    const int rc = BlockingCall(group(), a, &call);  // before Check reads `call`
    NMESH_RETURN_IF_ERROR(Check(name, rc, call));
    if (Averages(group(), a)) internal::DivideElements(a.recv, a.count, a.type, size_);
    return absl::OkStatus();
  }

  // An operation with an interruptible timeout: the nonblocking call (Start) on a staging area
  // that holds a copy of its input and room for its output (one region for broadcast), polled
  // against the deadline; on success the output is copied to the caller's memory. A timed-out
  // request is abandoned together with its staging area, so MPI never touches the caller's memory
  // after the call returns, whatever the outcome: the caller may reuse or free its buffers at
  // once. The copies cost two memcpy per call, on this path only.
  absl::Status RunInterruptible(const OpArgs& a, ci::OpName name) {
    const Io io = IoOf(group(), a);
    const size_t in_bytes = io.one_buffer ? 0 : io.in_bytes;
    Scratch staging;
    std::byte* in = nullptr;
    std::byte* out = nullptr;
    if (in_bytes + io.out_bytes > 0) {
      staging = staging_.Take(in_bytes + io.out_bytes);
      in = staging->data();
      out = in + in_bytes;
      if (io.one_buffer) {
        std::memcpy(out, io.in, io.out_bytes);
      } else if (in_bytes > 0) {
        std::memcpy(in, io.in, in_bytes);
      }
      if (io.preserve_out && io.out_bytes > 0) std::memcpy(out, io.out, io.out_bytes);
    }
    // A notice that arrived since the last operation: fail now rather than start an operation
    // the other ranks have given up on.
    NMESH_RETURN_IF_ERROR(TakeNotices(name));
    OpArgs staged = a;
    staged.send = io.one_buffer ? out : in;
    staged.recv = out;
    absl::Status status;
    {
      Started started;
      if (staging) started.keep.push_back(staging);
      const char* call = "";
      const int rc = StartCall(group(), staged, started, &call);  // before Check reads `call`
      status = Check(name, rc, call);
      if (status.ok()) status = Wait(name, started);
    }
    if (!status.ok()) return status;  // an abandoned area stays with the quarantine
    if (io.out_bytes > 0) std::memcpy(io.out, out, io.out_bytes);
    staging_.Give(std::move(staging));
    return absl::OkStatus();
  }

  absl::Status Wait(ci::OpName op, Started& started) {
    ci::Deadline deadline(options_.timeout);
    ci::PollPacer pacer;
    while (true) {
      int done = 0;
      NMESH_RETURN_IF_ERROR(Check(
          op, MPI_Testall(2, started.requests.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall"));
      if (done) {
        // Completed, perhaps with ranks that had given up on it already (their requests were
        // abandoned, not cancelled): when one of them has said so, the operation fails here too,
        // and the caller's buffers stay as they were.
        NMESH_RETURN_IF_ERROR(TakeNotices(op));
        if (started.on_complete) started.on_complete();
        return absl::OkStatus();
      }
      if (abort_state_.aborted()) {
        Abandon(started);
        return Usable(op);
      }
      if (deadline.Expired()) {
        Abandon(started);
        absl::Status timeout = ci::TimeoutError(*this, op);
        RevokeFamily(absl::StrFormat("an earlier %s timed out after %s", op,
                                     ci::FormatTimeout(*options_.timeout)),
                     absl::StrFormat("rank %d: %s", GlobalRank(), timeout.message()));
        (void)TakeNotices(op);  // tell the peers now
        return timeout;
      }
      pacer.Pause();
    }
  }

  // Gives up on `started`: point-to-point requests are cancelled; collectives cannot be, so they
  // are kept (with what MPI may still use) until the destructor looks at them once more.
  void Abandon(Started& started) {
    for (MPI_Request& request : started.requests) {
      if (request == MPI_REQUEST_NULL) continue;
      if (started.cancellable) {
        MPI_Cancel(&request);
        int done = 0;
        MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (done) continue;
      }
      abandoned_.push_back({request, started.keep});
    }
  }

  MPI_Comm comm_;
  CommOptions options_;
  int rank_ = 0;
  int size_ = 1;
  // Null: not watched (operations with a timeout poll) and no revocation notices.
  std::unique_ptr<MpiSideChannel> side_;
  std::vector<Abandoned> abandoned_;
  // Revoked (a timeout, Abort() or Revoke(), a peer's notice): its native communicators are
  // quarantined, not freed (comm/mpi/quarantine.h).
  std::atomic<bool> revoked_{false};
  // Set by an asynchronous handle that gave up on a pending request (MpiWork::Abandon).
  std::shared_ptr<std::atomic<bool>> work_abandoned_ = std::make_shared<std::atomic<bool>>(false);
  ci::WorkRegistry works_;
  bool owned_ = true;
  bool freed_ = false;  // FreeNative ran (Release or the destructor)
  MPI_Errhandler restore_ = MPI_ERRHANDLER_NULL;
  ci::AbortState abort_state_;
  StagingPool staging_;  // interruptible operations' staging areas (staging.h)
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> WorldCommunicator(Session& session,
                                                                CommOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    return absl::FailedPreconditionError(
        "mpi::WorldCommunicator: MPI is not initialised or already finalised");
  }
  MPI_Comm world = MPI_COMM_NULL;
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_dup(MPI_COMM_WORLD, &world), "MPI_Comm_dup", session.world_rank()));
  if (int rc = MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN); rc != MPI_SUCCESS) {
    MPI_Comm_free(&world);
    return MpiStatus(rc, "MPI_Comm_set_errhandler", session.world_rank());
  }
  return std::unique_ptr<Communicator>(new MpiCommunicator(world, std::move(options)));
}

namespace {

// `comm` as this backend's communicator (const or not, like `comm`); InvalidArgument naming
// `caller` for any other backend.
template <typename Comm, typename Mpi = std::conditional_t<std::is_const_v<Comm>,
                                                           const MpiCommunicator, MpiCommunicator>>
absl::StatusOr<Mpi*> AsMpi(Comm& comm, std::string_view caller) {
  auto* mpi_comm = dynamic_cast<Mpi*>(&comm);
  if (mpi_comm == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mpi::%s needs an MPI communicator; axis '%s' uses the %s backend", caller,
                        comm.options().name, comm.backend()));
  }
  return mpi_comm;
}

}  // namespace

absl::StatusOr<Topology> GetTopology(Communicator& comm) {
  NMESH_ASSIGN_OR_RETURN(MpiCommunicator * mpi_comm, AsMpi(comm, "GetTopology"));
  return mpi_comm->QueryTopology();
}

absl::StatusOr<std::unique_ptr<Communicator>> AdoptComm(MPI_Comm comm, Ownership ownership,
                                                        CommOptions options) {
  if (comm == MPI_COMM_NULL) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "mpi::AdoptComm: the MPI communicator for axis '%s' is MPI_COMM_NULL", options.name));
  }
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    return absl::FailedPreconditionError(
        "mpi::AdoptComm: MPI is not initialised or already finalised");
  }
  WatchFinalize();
  if (ownership == Ownership::kOwned) {
    NMESH_RETURN_IF_ERROR(
        MpiStatus(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1));
    return std::unique_ptr<Communicator>(
        new MpiCommunicator(comm, std::move(options), /*collective=*/false));
  }
  MPI_Errhandler previous = MPI_ERRHANDLER_NULL;
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_get_errhandler(comm, &previous), "MPI_Comm_get_errhandler", -1));
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1));
  return std::unique_ptr<Communicator>(new MpiCommunicator(comm, std::move(options), previous));
}

absl::StatusOr<MPI_Comm> NativeComm(const Communicator& comm) {
  // A group of one rank on host memory (a size-1 axis of an MPI mesh): MPI's own one-rank
  // communicator has the same members and semantics.
  if (comm.backend() == "self" && comm.memory_kind() == MemoryKind::kHost) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "mpi::NativeComm: axis '%s' has one rank, whose MPI communicator is MPI_COMM_SELF, but "
          "MPI is not running",
          comm.options().name));
    }
    return MPI_COMM_SELF;
  }
  NMESH_ASSIGN_OR_RETURN(const MpiCommunicator* mpi_comm, AsMpi(comm, "NativeComm"));
  return mpi_comm->native();
}

}  // namespace nmesh::comm::mpi
