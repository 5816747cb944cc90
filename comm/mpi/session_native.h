// The MPI handles of a Session, for comm/mpi's own use (not installed).
#ifndef NMESH_COMM_MPI_SESSION_NATIVE_H_
#define NMESH_COMM_MPI_SESSION_NATIVE_H_

#include <mpi.h>

#include <mutex>

#include "nmesh/comm/mpi/session.h"

namespace nmesh::comm::mpi {

struct SessionNative {
  // The session's private duplicate of MPI_COMM_WORLD (MPI_ERRORS_RETURN), for nmesh's own
  // traffic before any communicator exists; MPI_COMM_NULL once MPI is finalised.
  static MPI_Comm Comm(const Session& session);
};

// Whether MPI_Finalize has begun (or ended), as seen by a callback MPI runs first thing in
// MPI_Finalize (an attribute of MPI_COMM_SELF, registered by WatchFinalize). One atomic load:
// cheap enough for every operation. False when WatchFinalize never ran.
bool MpiFinalizing();
// Registers that callback, once per process; MPI must be initialised. Thread-safe.
void WatchFinalize();
// Held by a thread other than the caller's (the watchdog's) while it makes MPI calls, and by
// that callback while it marks MPI as finalising: MPI_Finalize waits for those calls to end, and
// no such call starts after it (check MpiFinalizing under the lock).
std::recursive_mutex& MpiUseMutex();

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_SESSION_NATIVE_H_
