// Failures, aborts and recovery of NCCL communicators: what a timeout or an asynchronous error does
// to NcclCommunicator (retired: revoked where NCCL has ncclCommRevoke, aborted otherwise; the
// mesh's other communicators follow), Abort(), a family stopped together (StopTogether,
// RevokeTogether), and ShrinkComm (recovery.h).
#include "nmesh/comm/nccl/recovery.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/nccl/config.h"
#include "nmesh/comm/nccl/device.h"
#include "nmesh/comm/nccl/library.h"
#include "nmesh/comm/nccl/nccl_communicator.h"
#include "nmesh/comm/nccl/runtime.h"
#include "nmesh/comm/nccl/status.h"

namespace nmesh::comm::nccl {
namespace {

namespace ci = ::nmesh::comm::internal;

constexpr std::string_view kShrink = "shrink";

}  // namespace

absl::Status NcclCommunicator::Abort() {
  works_.TryPollAll();  // operations already complete keep their success
  Retire("Abort() was called");
  return absl::OkStatus();
}

absl::Status NcclCommunicator::AbortGroup(absl::Span<Communicator* const> family) {
  return StopTogether(family, "aborted together with the other communicators of its mesh");
}

absl::Status NcclCommunicator::StopTogether(absl::Span<Communicator* const> family,
                                            const std::string& reason) {
  struct Taken {
    NcclCommunicator* owner;
    ncclComm_t comm;
  };
  std::vector<Taken> taken;
  absl::Status first;
  const bool revoke = Lib().ncclCommRevoke != nullptr;
  for (Communicator* member : family) {
    auto* nccl = dynamic_cast<NcclCommunicator*>(member);
    if (nccl == nullptr) {  // e.g. a device self communicator
      first.Update(member->Abort());
      continue;
    }
    nccl->works_.TryPollAll();
    if (std::optional<ncclComm_t> comm = nccl->Take(reason)) {
      taken.push_back({nccl, *comm});
      if (revoke) nccl->KeepRevoked(*comm);
    }
  }
  if (taken.empty()) return first;
  const int rank = taken.front().owner->rank_;
  bool grouped = revoke;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 22, 0)
  grouped = true;
#endif
  std::vector<Taken> refused;  // revokes NCCL refused: aborted after the group
  if (grouped) first.Update(NcclStatus(Lib().ncclGroupStart(), "ncclGroupStart", rank));
  for (const Taken& t : taken) {
    Lib().cudaSetDevice(t.owner->device_);
    if (revoke) {
      absl::Status s = NcclStatus(Lib().ncclCommRevoke(t.comm, kNcclRevokeDefault),
                                  "ncclCommRevoke", t.owner->rank_);
      if (!s.ok()) refused.push_back(t);
      first.Update(std::move(s));
    } else {
      Lib().ncclCommAbort(t.comm);
    }
  }
  if (grouped) first.Update(NcclStatus(Lib().ncclGroupEnd(), "ncclGroupEnd", rank));
  for (const Taken& t : refused) t.owner->AbortRevoked(t.comm);
  return first;
}

absl::StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::Shrink(std::vector<int> exclude,
                                                                       CommOptions options) {
  ci::Deadline deadline(options.timeout ? options.timeout : options_.timeout);
  ncclConfig_t config = NonblockingConfig();
  NMESH_RETURN_IF_ERROR(
      ApplyNcclSettings(options.nccl, LinkedNcclVersionCode(), options.name, config));
  // A healthy communicator stays usable; a revoked one is shrunk with abort, once NCCL has
  // finished revoking it. revoked_ is never taken by another thread (Abort() takes comm_ only).
  bool revoked = false;
  ncclComm_t parent = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    revoked = comm_ == nullptr;
    parent = revoked ? revoked_ : comm_;
  }
  if (parent == nullptr) {  // aborted (Abort(), or a failure without ncclCommRevoke)
    absl::Status aborted = Usable(kShrink);
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s; its NCCL communicator is gone: nothing to shrink",
        aborted.ok() ? ci::OpContext(*this, kShrink) : std::string(aborted.message())));
  }
  // Polls `comm` while NCCL reports ncclInProgress; the last state, or ncclInProgress when the
  // deadline passed first.
  auto settle = [&](ncclComm_t c) {
    ci::PollPacer pacer;
    ncclResult_t state = ncclInProgress;
    while (Lib().ncclCommGetAsyncError(c, &state) == ncclSuccess && state == ncclInProgress &&
           !deadline.Expired()) {
      pacer.Pause();
    }
    return state;
  };
  if (revoked && settle(parent) == ncclInProgress) return ci::TimeoutError(*this, kShrink);
  ncclComm_t child = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!revoked && comm_ == nullptr) return Usable(kShrink);  // aborted meanwhile
    NMESH_RETURN_IF_ERROR(SetDevice(kShrink));
    int none = 0;  // a list NCCL may read even when it excludes no rank
    const ncclResult_t result = Lib().ncclCommShrink(
        parent, exclude.empty() ? &none : exclude.data(), static_cast<int>(exclude.size()), &child,
        &config, revoked ? kNcclShrinkAbort : kNcclShrinkDefault);
    NMESH_RETURN_IF_ERROR(
        ci::WithContext(*this, kShrink, NcclStatus(result, "ncclCommShrink", rank_, parent)));
  }
  // The shrink runs as a job of the parent (nonblocking); the child may appear only when it ends.
  const ncclResult_t parent_state = settle(parent);
  if (parent_state == ncclInProgress || (!revoked && parent_state != ncclSuccess)) {
    if (child != nullptr) Lib().ncclCommAbort(child);
    if (!revoked) {  // the parent's job is stuck or failed: the parent goes the way of a failure
      Retire(
          parent_state == ncclInProgress
              ? absl::StrFormat("an earlier shrink timed out after %s",
                                ci::FormatTimeout(options_.timeout.value_or(absl::ZeroDuration())))
              : std::string("an earlier shrink failed"));
    }
    return parent_state == ncclInProgress
               ? ci::TimeoutError(*this, kShrink)
               : ci::WithContext(*this, kShrink,
                                 NcclStatus(parent_state, "ncclCommShrink", rank_, parent));
  }
  if (child == nullptr) {
    return absl::InternalError(absl::StrFormat("%s: ncclCommShrink gave no communicator (rank %d)",
                                               ci::OpContext(*this, kShrink), rank_));
  }
  bool timed_out = false;
  absl::StatusOr<std::unique_ptr<Communicator>> made =
      FinishChild(child, kShrink, "ncclCommShrink", deadline, std::move(options), &timed_out);
  if (!made.ok() && !timed_out) return ci::WithContext(*this, kShrink, made.status());
  return made;
}

void NcclCommunicator::AbortComm(std::string reason) {
  if (std::optional<ncclComm_t> comm = Take(std::move(reason))) {
    Lib().cudaSetDevice(device_);
    Lib().ncclCommAbort(*comm);
  }
}

void NcclCommunicator::Retire(std::string reason) {
  if (Lib().ncclCommRevoke == nullptr) return AbortComm(std::move(reason));
  if (std::optional<ncclComm_t> comm = Take(std::move(reason))) {
    KeepRevoked(*comm);
    Lib().cudaSetDevice(device_);
    const ncclResult_t result = Lib().ncclCommRevoke(*comm, kNcclRevokeDefault);
    if (result != ncclSuccess && result != ncclInProgress) AbortRevoked(*comm);
  }
}

void NcclCommunicator::KeepRevoked(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(mu_);
  revoked_ = comm;
}

void NcclCommunicator::AbortRevoked(ncclComm_t comm) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    revoked_ = nullptr;
  }
  Lib().cudaSetDevice(device_);
  Lib().ncclCommAbort(comm);
}

std::optional<ncclComm_t> NcclCommunicator::Take(std::string reason) {
  std::lock_guard<std::mutex> lock(mu_);
  abort_state_->Mark(std::move(reason));
  ncclComm_t comm = std::exchange(comm_, nullptr);
  if (comm == nullptr || !owned_) return std::nullopt;
  return comm;
}

void NcclCommunicator::AbortFamilyAfter() { AbortFamilyOrSelf(); }

absl::Status NcclCommunicator::FailTimeout(ci::OpName op) {
  absl::Status timeout = ci::TimeoutError(*this, op);
  Retire(absl::StrFormat("an earlier %s timed out after %s", op,
                         ci::FormatTimeout(options_.timeout.value_or(absl::ZeroDuration()))));
  AbortFamilyAfter();
  return timeout;
}

absl::Status NcclCommunicator::FailAsync(ci::OpName op, ncclResult_t state) {
  absl::Status error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    error = Check(op, state, "asynchronous NCCL operation");
  }
  Retire(absl::StrFormat("an earlier %s failed: %s", op, error.message()));
  AbortFamilyAfter();
  return error;
}

bool HasCommRevoke() {
  const absl::StatusOr<const Library*> lib = OpenLibrary();
  return lib.ok() && (*lib)->ncclCommRevoke != nullptr;
}

bool HasCommShrink() {
  const absl::StatusOr<const Library*> lib = OpenLibrary();
  return lib.ok() && (*lib)->ncclCommShrink != nullptr;
}

absl::Status RevokeTogether(absl::Span<Communicator* const> family, std::string_view reason) {
  return NcclCommunicator::StopTogether(family, std::string(reason));
}

absl::StatusOr<std::unique_ptr<Communicator>> ShrinkComm(Communicator& comm,
                                                         absl::Span<const int> exclude,
                                                         CommOptions options) {
  auto* nccl_comm = dynamic_cast<NcclCommunicator*>(&comm);
  if (nccl_comm == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::ShrinkComm needs an NCCL communicator; axis '%s' uses the %s backend",
        comm.options().name, comm.backend()));
  }
  const std::string context = ci::OpContext(comm, kShrink);
  std::vector<int> sorted(exclude.begin(), exclude.end());
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    const int r = sorted[i];
    if (r < 0 || r >= comm.size()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: excluded rank %d is outside the communicator's %d ranks", context, r, comm.size()));
    }
    if (i > 0 && sorted[i - 1] == r) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: excluded rank %d is listed twice", context, r));
    }
    if (r == comm.rank()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: rank %d is excluded, so it must not call ShrinkComm", context, r));
    }
  }
  NMESH_RETURN_IF_ERROR(LoadRuntime());
  if (!HasCommShrink()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s needs ncclCommShrink (NCCL 2.27 or later); the loaded NCCL is %s",
                        context, LinkedNcclVersion()));
  }
  return nccl_comm->Shrink(std::move(sorted), std::move(options));
}

}  // namespace nmesh::comm::nccl
