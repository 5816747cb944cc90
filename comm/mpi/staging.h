// The staging areas of a communicator's interruptible operations (internal to comm/mpi): an
// interruptible operation runs on a copy of the caller's memory (see RunInterruptible in
// interruptible.cc), and allocating that copy per call costs more than the copy itself at large
// sizes (a fresh mmap, its page faults and vector's zeroing). The pool keeps the area of the last
// completed operation for the next one. An area whose request was abandoned is never given back:
// MPI may still use it, and the quarantine (quarantine.h) holds it.
#ifndef NMESH_COMM_MPI_STAGING_H_
#define NMESH_COMM_MPI_STAGING_H_

#include <cstddef>
#include <mutex>

#include "nmesh/comm/mpi/operations.h"

namespace nmesh::comm::mpi {

class StagingPool {
 public:
  // An area of at least `bytes` bytes (its contents unspecified): the kept one when it is large
  // enough, else a new one. Thread-safe.
  Scratch Take(size_t bytes);
  // Keeps `area` for the next Take, once its operation completed and nothing else holds it. Areas
  // larger than kMaxKept are dropped (a pool must not double the memory of huge operations).
  void Give(Scratch area);

  static constexpr size_t kMaxKept = size_t{64} << 20;

 private:
  std::mutex mu_;
  Scratch kept_;  // guarded by mu_
};

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_STAGING_H_
