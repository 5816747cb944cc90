// Failure is a state on MPI, not a crash (run by ctest under mpirun, at np 2 and 4). Every mode
// ends with every rank exiting 0 after checking what it saw; a crash, a hang (ctest's timeout) or
// a wrong outcome fails it.
//   mpi_failure_state late      communicator 'a' (interruptible, 1 s): the last rank arrives 3 s
//                               late at a's all_reduce. The others get DeadlineExceeded, destroy
//                               a at once and keep using 'b'; the late rank's all_reduce must
//                               fail naming the timeout (never OK), and nothing crashes when it
//                               arrives (the others' abandoned requests stay quarantined).
//   mpi_failure_state skip      the last rank never enters a's all_reduce (interruptible) but
//                               enters a's next operation once the others timed out and destroyed
//                               a: it must fail, and every rank then finalizes (no crash).
//   mpi_failure_state settimeout the same with a communicator made without a timeout and given
//                               one by SetTimeout (polled: no side channel), then finalize.
//   mpi_failure_state buffers   as late, but 'a' gets its timeout from SetTimeout (no side
//                               channel: no notices), so the late rank's all_reduce completes the
//                               others' abandoned ones: their receive buffers must stay as they
//                               were (MPI writes the quarantined staging copy), and nothing
//                               crashes. The late rank may see OK there (no notice reaches it).
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::comm::ReduceOp;

int Fail(int rank, const std::string& what) {
  std::fprintf(stderr, "mpi_failure_state: rank %d: FAILED: %s\n", rank, what.c_str());
  std::fflush(stderr);
  return 1;
}

// An all_reduce of rank+1 over `comm`, checked against the sum computed here.
// A rank's own timeout, or a peer's revocation notice for its timeout that arrived first (ranks
// that time out together race: the notice revokes with the peer's cause, Aborted naming it).
bool TimedOut(const absl::Status& s) {
  return s.code() == absl::StatusCode::kDeadlineExceeded ||
         (s.code() == absl::StatusCode::kAborted && absl::StrContains(s.message(), "timed out"));
}

absl::Status CheckSum(Communicator& comm) {
  std::vector<int64_t> value = {comm.rank() + 1};
  if (absl::Status s = comm.AllReduce<int64_t>(value, absl::MakeSpan(value), ReduceOp::kSum);
      !s.ok()) {
    return s;
  }
  const int64_t n = comm.size();
  if (value[0] != n * (n + 1) / 2) {
    return absl::InternalError("all_reduce gave " + std::to_string(value[0]));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "late";
  auto session = nmesh::comm::mpi::Session::Init(&argc, &argv);
  if (!session.ok()) return 2;
  int rank = 0;
  {
    auto world = nmesh::comm::mpi::WorldCommunicator(**session, {.name = "world", .timeout = {}});
    if (!world.ok()) return 2;
    rank = (*world)->rank();
    const int size = (*world)->size();
    const int late = size - 1;
    const bool set_timeout = mode == "settimeout" || mode == "buffers";
    const nmesh::comm::CommOptions a_options =
        set_timeout ? nmesh::comm::CommOptions{.name = "a", .timeout = {}}
                    : nmesh::comm::CommOptions{
                          .name = "a", .timeout = absl::Seconds(1), .interruptible = true};
    auto a = (*world)->Split(0, rank, a_options);
    auto b = (*world)->Split(0, rank, {.name = "b", .timeout = absl::Seconds(30)});
    if (!a.ok() || !b.ok()) return 2;
    if (set_timeout && !(*a)->SetTimeout(absl::Seconds(1)).ok()) return 2;
    if (absl::Status s = CheckSum(**a); !s.ok()) return Fail(rank, s.ToString());

    if (mode == "late" || mode == "buffers") {
      std::vector<int64_t> send = {rank + 1};
      std::vector<int64_t> recv = {-7};
      if (rank == late) absl::SleepFor(absl::Seconds(3));
      absl::Status s = (*a)->AllReduce<int64_t>(send, absl::MakeSpan(recv), ReduceOp::kSum);
      std::fprintf(stderr, "mpi_failure_state: rank %d: a's all_reduce: %s\n", rank,
                   s.ToString().c_str());
      if (rank != late && !TimedOut(s)) {
        return Fail(rank, "expected its timeout or a peer's, got " + s.ToString());
      }
      if (mode == "late" && s.ok()) {
        return Fail(rank, "a's all_reduce returned OK where others timed out");
      }
      if (mode == "late" && rank == late && !absl::StrContains(s.message(), "timed out")) {
        return Fail(rank, "the late rank's error does not name the timeout");
      }
      if (rank != late && recv[0] != -7) {
        return Fail(rank, "the receive buffer was written after a failure");
      }
      if (rank != late) a->reset();  // drop a at once: quarantined, not freed
      // Keep using b (the late rank joins once it is back), for longer than the late rank needs.
      for (int i = 0; i < 20; ++i) {
        if (absl::Status sb = CheckSum(**b); !sb.ok()) return Fail(rank, "b: " + sb.ToString());
      }
      if (rank != late && recv[0] != -7) {
        return Fail(rank, "the receive buffer was written after a failure");
      }
    } else {
      // skip, settimeout: the last rank never enters a's all_reduce (1 MiB: MPI's rendezvous
      // protocol) and goes on to a's next operation, a barrier, after the others gave up on a
      // and destroyed it; it must not complete, and nothing may crash, then or at finalize.
      if (rank != late) {
        std::vector<float> value(1 << 18, 1.0f);
        absl::Status s = (*a)->AllReduce<float>(value, absl::MakeSpan(value), ReduceOp::kSum);
        if (!TimedOut(s)) {
          return Fail(rank, "expected its timeout or a peer's, got " + s.ToString());
        }
        a->reset();
      } else {
        absl::SleepFor(absl::Seconds(2));
        absl::Status s = (*a)->Barrier();
        std::fprintf(stderr, "mpi_failure_state: rank %d: a's barrier: %s\n", rank,
                     s.ToString().c_str());
        if (s.ok()) return Fail(rank, "a's barrier returned OK where the others timed out");
      }
      for (int i = 0; i < 20; ++i) {
        if (absl::Status sb = CheckSum(**b); !sb.ok()) return Fail(rank, "b: " + sb.ToString());
      }
    }
  }
  session->reset();  // MPI_Finalize
  std::fprintf(stderr, "mpi_failure_state: rank %d: %s passed\n", rank, mode.c_str());
  return 0;
}
