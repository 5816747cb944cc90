// What a failed MPI operation leaves behind and MPI may still use: the requests of operations
// abandoned on a timeout or an abort (a collective cannot be cancelled in MPI), the memory they
// read and write, and the communicators they run on. Not installed.
//
//   // A communicator destroyed with abandoned requests, or revoked (its peers may still send):
//   Quarantine(comm, side_comm, std::move(abandoned));
//   // Session's destructor, before MPI_Finalize:
//   DrainQuarantine(absl::Milliseconds(100));
//
// Why. Freeing a communicator (MPI_Comm_free) or a request (MPI_Request_free) while a nonblocking
// collective on it may still progress lets Open MPI's progress engine run the collective's
// schedule on freed memory when a late peer arrives: a segfault in mca_pml_ob1_isend under
// NBC_Progress, in any later MPI call of the process (MPI_Finalize included). So nothing here is
// ever freed: the quarantine lives as long as the process (a deliberate, bounded leak: one
// communicator, its side channel's duplicate and the staging memory of its abandoned operations
// per failure), and what it holds stays reachable, so leak checkers do not report it. A revoked
// communicator is kept even without abandoned requests: its peers may still send to it (their
// abandoned collectives, revocation notices), and a freed communicator's context may be reused
// by a new one, which would then receive those messages.
#ifndef NMESH_COMM_MPI_QUARANTINE_H_
#define NMESH_COMM_MPI_QUARANTINE_H_

#include <mpi.h>

#include <vector>

#include "absl/time/time.h"
#include "nmesh/comm/mpi/operations.h"

namespace nmesh::comm::mpi {

// One abandoned request and the memory MPI may still use for it.
struct Abandoned {
  MPI_Request request = MPI_REQUEST_NULL;
  Kept keep;
};

// Takes `comm` and `side` (either may be MPI_COMM_NULL) and `requests` until the process exits:
// never freed. Thread-safe.
void Quarantine(MPI_Comm comm, MPI_Comm side, std::vector<Abandoned> requests);

// Tests the quarantined requests (driving MPI's progress) until they have all completed or `wait`
// has passed, and returns how many are still pending. For the end of the session, before
// MPI_Finalize, so that operations a late peer completed are done with; the pending ones stay
// (MPI_Finalize does not free communicators that a request still uses). Thread-safe.
int DrainQuarantine(absl::Duration wait);

// How many requests and communicators the quarantine holds (for tests and messages).
struct QuarantineCounts {
  int requests = 0;
  int comms = 0;
};
QuarantineCounts QuarantineSize();

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_QUARANTINE_H_
