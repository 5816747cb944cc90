// A job whose last rank skips a collective on a communicator with a timeout (run by ctest under
// mpirun through tests/expect_failure.sh). The watchdog of every other rank must find the
// timeout, name the skipping rank, the axis and the operation's sequence number on stderr, and end
// the job (exit 1), although the waiting ranks are blocked in MPI_Allreduce and never return.
//   watchdog_abort [interruptible | slow_watchdog]
// With "interruptible" the communicator polls instead: the operation returns DeadlineExceeded,
// the watchdog stays out of it, and the program prints the status and exits 3 itself.
// With "slow_watchdog" the skipping rank waits in a world barrier the others never enter (its MPI
// progresses: it is alive) while its watchdog thread is not scheduled for 4 s, as on a loaded
// node: the others must still wait for its answer and name it as the rank that never entered the
// operation, not report it as stopped or dead after their 1 s silent limit.
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/watch/watchdog_thread.h"

int main(int argc, char** argv) {
  using namespace nmesh::comm;  // NOLINT: a small test program
  const bool interruptible = argc > 1 && std::strcmp(argv[1], "interruptible") == 0;
  const bool slow_watchdog = argc > 1 && std::strcmp(argv[1], "slow_watchdog") == 0;
  auto session = mpi::Session::Init(&argc, &argv);
  if (!session.ok()) return 2;
  auto world = mpi::WorldCommunicator(**session);
  if (!world.ok()) return 2;
  const int rank = (*world)->rank(), size = (*world)->size();
  auto tp = (*world)->Split(
      0, rank, {.name = "tp", .timeout = absl::Milliseconds(500), .interruptible = interruptible});
  if (!tp.ok()) return 2;
  std::vector<float> send(256, 1.0f), recv(256);
  // #1 completes everywhere.
  if (!(*tp)->AllReduce<float>(send, absl::MakeSpan(recv), ReduceOp::kSum).ok()) return 2;
  if (rank == size - 1) {
    // #2 is skipped: wait for the job to end around us.
    if (slow_watchdog) {
      nmesh::comm::internal::Watchdog::Get().PauseForTesting(absl::Seconds(4));
      (void)(*world)->Barrier();
    }
    absl::SleepFor(absl::Seconds(20));
    std::fprintf(stderr, "watchdog_abort: rank %d was not ended by the watchdog\n", rank);
    return 0;
  }
  absl::Status status = (*tp)->AllReduce<float>(send, absl::MakeSpan(recv), ReduceOp::kSum);
  std::fprintf(stderr, "watchdog_abort: rank %d: all_reduce returned: %s\n", rank,
               status.ToString().c_str());
  std::fflush(stderr);
  if (interruptible) {
    // Report and end the job, as a caller that recovers would after cleaning up.
    (*session)->AbortJob(3);
  }
  return 0;
}
