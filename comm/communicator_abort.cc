// Communicator: revocation and aborts (Revoke, abort families, AbortTogether, RevokeAll).
#include <algorithm>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/watch/watchdog_thread.h"

namespace nmesh::comm {

namespace ci = internal;

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

}  // namespace nmesh::comm
