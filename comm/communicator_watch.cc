// Communicator: timeouts, the flight recorder and the watchdog's registration.
#include <memory>
#include <optional>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/watch/flight_recorder.h"
#include "nmesh/comm/watch/watchdog_thread.h"

namespace nmesh::comm {

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

}  // namespace nmesh::comm
