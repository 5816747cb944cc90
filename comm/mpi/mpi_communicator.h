// The Communicator of comm/mpi: one MPI communicator on host memory (the semantics:
// comm/mpi/communicator.h). Not installed. Its members are defined by concern:
//   communicator.cc    lifetime (free or quarantine), the checks every call makes, the blocking
//                      path (RunOp) and the asynchronous one (DoAsync), the topology; GetTopology,
//                      NativeComm
//   create.cc          WorldCommunicator, AdoptComm and the splits: how an MPI communicator comes
//                      to be
//   interruptible.cc   operations with an interruptible timeout: staged, polled, abandoned
//   revocation.cc      Abort, revocation and the peers' notices
//
//   auto world = std::make_unique<MpiCommunicator>(comm, std::move(options));
#ifndef NMESH_COMM_MPI_MPI_COMMUNICATOR_H_
#define NMESH_COMM_MPI_MPI_COMMUNICATOR_H_

#include <mpi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/operations.h"
#include "nmesh/comm/mpi/quarantine.h"
#include "nmesh/comm/mpi/side_channel.h"
#include "nmesh/comm/mpi/staging.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi {

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm`, which has MPI_ERRORS_RETURN set. `collective`: every rank of `comm`
  // constructs it together, so a separate channel for the watchdog can be made (when `options`
  // has a timeout).
  MpiCommunicator(MPI_Comm comm, CommOptions options, bool collective = true);
  // Borrows `comm` (adoption): sets MPI_ERRORS_RETURN on it for its lifetime and restores the
  // caller's error handler on destruction, without freeing it.
  MpiCommunicator(MPI_Comm comm, CommOptions options, MPI_Errhandler restore);

  ~MpiCommunicator() override;

  bool Release(std::string_view reason) override;

  // What the destructor frees; once.
  void FreeNative();

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm native() const { return comm_; }
  std::string_view backend() const override { return "mpi"; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  const CommOptions& options() const override { return options_; }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreed(std::optional<int> color, int key,
                                                              CommOptions options) override;

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        CommOptions options) override;

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreedMembers(absl::Span<const int> members,
                                                                     CommOptions options) override;

  // Whether an agreed split still needs the color exchange before its blocking MPI call: only to
  // bound the wait by an interruptible timeout (the exchange is polled; the MPI call is not). A
  // watched communicator's blocking split is bounded by the watchdog like any blocking call, and
  // without a timeout nothing bounds it anyway.
  bool SplitNeedsExchange() const;

  // MPI_Comm_split (blocking), with MPI_UNDEFINED for no color.
  absl::StatusOr<std::unique_ptr<Communicator>> CommSplit(std::optional<int> color, int key,
                                                          CommOptions options);

  // A communicator this one made (null for MPI_COMM_NULL), returning errors to nmesh.
  absl::StatusOr<std::unique_ptr<Communicator>> Adopt(MPI_Comm out, CommOptions options);

  absl::Status DoRun(const OpArgs& a) override;

  // The asynchronous path: the nonblocking call on the caller's buffers (Start).
  absl::StatusOr<Work> DoAsync(const OpArgs& a, const AsyncOptions&) override;

  // Marks this communicator aborted. With a cause, tells its peers (a revocation notice over the
  // side channel, sent by the watchdog thread or this communicator's next interruptible
  // operation): Revoke's (Communicator::Revoke, RevokeTogether, DeviceMesh::Revoke record it
  // before they call this) or the family's (RevokeScope, a timeout or a peer's notice). A plain
  // Abort() stays local. Makes no MPI call.
  absl::Status Abort() override;

  absl::Status DoSetTimeout(std::optional<absl::Duration> timeout) override;

  void PollOutstanding() override;

  absl::StatusOr<Topology> QueryTopology();

 private:
  // This process's rank in the job's world, for causes told to other ranks.
  int64_t GlobalRank() const {
    return side_ != nullptr ? side_->GlobalRank(rank_) : static_cast<int64_t>(rank_);
  }

  // Marks this communicator aborted with `reason` (what its own later operations say) and tells
  // its peers `cause` (once; nothing when it was revoked already).
  void MarkRevoked(const std::string& reason, const std::string& cause);

  // Revokes this communicator, then every communicator of its family (its mesh), with `cause`.
  void RevokeFamily(const std::string& reason, const std::string& cause);

  // A peer's notice: the communicator was revoked there (it told every rank of it), so it is here,
  // and so is the rest of this rank's mesh, whose other communicators tell their own peers.
  void RevokedByPeer(const std::string& cause);

  // Sends a pending notice and takes the arrived ones (a communicator with a side channel), then
  // whether this communicator is still usable.
  absl::Status TakeNotices(internal::OpName op);

  absl::Status Usable(internal::OpName op) const;
  absl::Status CheckUsable(std::string_view op) const override;

  MpiGroup group() const { return {comm_, rank_, size_}; }

  absl::Status Check(internal::OpName op, int code, const char* call) const {
    return internal::WithContext(*this, op, MpiStatus(code, call, rank_));
  }

  absl::Status CheckCount(internal::OpName op, size_t count) const;

  absl::Status CheckCounts(internal::OpName op, const OpArgs& a) const;

  // Runs one checked operation, named `name` in messages. Without a timeout, or watched by the
  // watchdog: the blocking call (Blocking) on the caller's memory. With an interruptible timeout:
  // RunInterruptible.
  absl::Status RunOp(const OpArgs& a, internal::OpName name);

  // An operation with an interruptible timeout: the nonblocking call (Start) on a staging area
  // that holds a copy of its input and room for its output (one region for broadcast), polled
  // against the deadline; on success the output is copied to the caller's memory. A timed-out
  // request is abandoned together with its staging area, so MPI never touches the caller's memory
  // after the call returns, whatever the outcome: the caller may reuse or free its buffers at
  // once. The copies cost two memcpy per call, on this path only.
  absl::Status RunInterruptible(const OpArgs& a, internal::OpName name);

  absl::Status Wait(internal::OpName op, Started& started);

  // Gives up on `started`: point-to-point requests are cancelled; collectives cannot be, so they
  // are kept (with what MPI may still use) until the destructor looks at them once more.
  void Abandon(Started& started);

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
  internal::WorkRegistry works_;
  bool owned_ = true;
  bool freed_ = false;  // FreeNative ran (Release or the destructor)
  MPI_Errhandler restore_ = MPI_ERRHANDLER_NULL;
  internal::AbortState abort_state_;
  StagingPool staging_;  // interruptible operations' staging areas (staging.h)
};

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_MPI_COMMUNICATOR_H_
