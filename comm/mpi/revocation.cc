// MpiCommunicator (mpi_communicator.h): Abort, revocation and the notices of its peers.
#include <mpi.h>

#include <atomic>
#include <optional>
#include <string>

#include "nmesh/comm/mpi/mpi_communicator.h"
#include "nmesh/comm/mpi/side_channel.h"

namespace nmesh::comm::mpi {
namespace {

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

}  // namespace

absl::Status MpiCommunicator::Abort() {
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

void MpiCommunicator::MarkRevoked(const std::string& reason, const std::string& cause) {
  revoked_.store(true, std::memory_order_release);
  if (!abort_state_.Mark(reason)) return;
  if (side_ != nullptr) side_->Revoke(cause);
}

void MpiCommunicator::RevokeFamily(const std::string& reason, const std::string& cause) {
  MarkRevoked(reason, cause);
  RevokeScope scope(cause);
  AbortFamilyOrSelf();
}

void MpiCommunicator::RevokedByPeer(const std::string& cause) {
  (void)Communicator::Revoke(cause);  // operations fail with Aborted naming it
  RevokeScope scope(cause);
  AbortFamilyOrSelf();  // must not touch `this` afterwards: the family's abort may release it
}

}  // namespace nmesh::comm::mpi
