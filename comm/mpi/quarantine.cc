#include "nmesh/comm/mpi/quarantine.h"

#include <mpi.h>

#include <mutex>
#include <utility>
#include <vector>

#include "absl/time/clock.h"

namespace nmesh::comm::mpi {
namespace {

struct Held {
  std::mutex mu;
  std::vector<MPI_Comm> comms;      // guarded by mu
  std::vector<Abandoned> requests;  // guarded by mu; completed ones become MPI_REQUEST_NULL
};

Held& Get() {
  static auto* held = new Held();  // never destroyed: MPI may use what it holds until exit
  return *held;
}

}  // namespace

void Quarantine(MPI_Comm comm, MPI_Comm side, std::vector<Abandoned> requests) {
  Held& held = Get();
  std::lock_guard<std::mutex> lock(held.mu);
  for (MPI_Comm c : {comm, side}) {
    if (c != MPI_COMM_NULL) held.comms.push_back(c);
  }
  for (Abandoned& a : requests) {
    if (a.request != MPI_REQUEST_NULL) held.requests.push_back(std::move(a));
  }
}

int DrainQuarantine(absl::Duration wait) {
  Held& held = Get();
  std::lock_guard<std::mutex> lock(held.mu);
  int finalized = 0;
  MPI_Finalized(&finalized);
  const absl::Time until = absl::Now() + wait;
  while (true) {
    int pending = 0;
    for (Abandoned& a : held.requests) {
      if (a.request == MPI_REQUEST_NULL) continue;
      int done = 0;
      if (!finalized) MPI_Test(&a.request, &done, MPI_STATUS_IGNORE);
      if (done) {
        a.request = MPI_REQUEST_NULL;
        a.keep.clear();  // MPI is done with it
      } else {
        ++pending;
      }
    }
    if (pending == 0 || finalized || absl::Now() >= until) return pending;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

QuarantineCounts QuarantineSize() {
  Held& held = Get();
  std::lock_guard<std::mutex> lock(held.mu);
  QuarantineCounts counts;
  counts.comms = static_cast<int>(held.comms.size());
  for (const Abandoned& a : held.requests) counts.requests += a.request != MPI_REQUEST_NULL;
  return counts;
}

}  // namespace nmesh::comm::mpi
