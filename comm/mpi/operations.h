// The MPI calls behind comm/mpi's communicators, one place for each: the blocking call of every
// operation (BlockingCall), its nonblocking call (StartCall, shared by the asynchronous path and
// the interruptible timed path), the caller's memory an operation reads and writes (IoOf, for
// staging), and the handle of an asynchronous operation (MpiWork). Not installed.
//
//   const MpiGroup group{comm, rank, size};
//   Started started;
//   const char* call = "";
//   int rc = StartCall(group, OpArgs::AllReduce(send, recv, n, type, op), started, &call);
#ifndef NMESH_COMM_MPI_OPERATIONS_H_
#define NMESH_COMM_MPI_OPERATIONS_H_

#include <mpi.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/mpi/status.h"
#include "nmesh/comm/op.h"

namespace nmesh::comm::mpi {

// Point-to-point messages of nmesh use one tag; communicators keep them apart from other traffic.
inline constexpr int kTag = 0x6e6d;

// The MPI communicator an operation runs on, with this process's rank in it and its size.
struct MpiGroup {
  MPI_Comm comm;
  int rank;
  int size;
};

// Memory MPI may use until a request completes: a staging copy of an input that overlaps the
// output, the whole staging area of a timed operation, all_to_all_v's int counts. Shared so that an
// abandoned request can keep it alive.
using Scratch = std::shared_ptr<std::vector<std::byte>>;
using Kept = std::vector<std::shared_ptr<void>>;

// The caller's memory one operation reads (`in`, `in_bytes`) and writes (`out`, `out_bytes`). A
// timed operation works on a staging copy of it (see RunInterruptible). `one_buffer`: the operation
// reads and writes a single buffer (broadcast), so the staging area is one region.
struct Io {
  const void* in = nullptr;
  size_t in_bytes = 0;
  void* out = nullptr;
  size_t out_bytes = 0;
  bool one_buffer = false;
  // The staging copy of `out` starts as a copy of the caller's `out` (for outputs with gaps that
  // the operation does not write, e.g. all_to_all_v).
  bool preserve_out = false;
};

// One started nonblocking operation: its MPI requests (sendrecv: a receive and a send; others one),
// what MPI may use until they complete, and what runs on success (kAvg's division).
struct Started {
  std::array<MPI_Request, 2> requests = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  Kept keep;
  std::function<void()> on_complete;
  bool cancellable = false;  // point to point: MPI can cancel the requests
};

// Returns `src`, or a staged copy of it (kept in `scratch`) when it overlaps the output (MPI
// forbids aliasing other than MPI_IN_PLACE).
const void* StageIfOverlapping(const void* src, size_t src_bytes, const void* dst, size_t dst_bytes,
                               Scratch& scratch);

// Whether `a` ends with kAvg's division on this rank (MPI has no average).
bool Averages(const MpiGroup& g, const OpArgs& a);

// The blocking MPI call of `a` (a checked operation, never split), on the caller's memory; sets
// *call to its name and returns MPI's code. Exact in-place layouts become MPI_IN_PLACE; other
// overlaps of input and output are staged.
int BlockingCall(const MpiGroup& g, const OpArgs& a, const char** call);

// The nonblocking MPI call of `a`, started into `started`; sets *call to its name and returns
// MPI's code. Exact in-place layouts become MPI_IN_PLACE; any other overlap of input and output is
// staged, and the staging copy is kept in `started` until completion, as are all_to_all_v's int
// counts.
int StartCall(const MpiGroup& g, const OpArgs& a, Started& started, const char** call);

// The caller's memory `a` reads and writes, for staging.
Io IoOf(const MpiGroup& g, const OpArgs& a);

// An operation issued through the asynchronous path, on the caller's buffers.
class MpiWork final : public Work::Impl {
 public:
  // `abandoned` (may be null) is set when the handle gives up on a pending request: its
  // communicator must then be quarantined, not freed (comm/mpi/quarantine.h).
  MpiWork(const Communicator& comm, internal::OpName op, int rank, Started started,
          std::shared_ptr<std::atomic<bool>> abandoned = nullptr)
      : Impl(comm, op),
        started_(std::move(started)),
        rank_(rank),
        abandoned_(std::move(abandoned)) {}

  ~MpiWork() override {
    // A handle dropped while MPI still owns the request: never free memory MPI may still use.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || !pending_) return;
    int done = 0;
    MPI_Testall(2, started_.requests.data(), &done, MPI_STATUSES_IGNORE);
    if (!done) Abandon();
  }

 protected:
  bool Poll(absl::Status* status) override {
    int done = 0;
    const int rc = MPI_Testall(2, started_.requests.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      *status = Finish(rc, "MPI_Testall");
      return true;
    }
    if (!done) return false;
    *status = Finish(MPI_SUCCESS, "MPI_Testall");
    return true;
  }

  absl::Status Block() override {
    return Finish(MPI_Waitall(2, started_.requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  }

  // Cancels point-to-point requests; what is still pending goes to the quarantine with the memory
  // MPI may use, and the communicator is told (`abandoned`).
  void Abandon() override;

 private:
  absl::Status Finish(int rc, const char* call) {
    pending_ = false;
    started_.keep.clear();
    if (rc != MPI_SUCCESS) {
      return absl::Status(
          MpiStatus(rc, call, rank_).code(),
          absl::StrFormat("%s: %s", context(), MpiStatus(rc, call, rank_).message()));
    }
    if (started_.on_complete) started_.on_complete();
    return absl::OkStatus();
  }

  Started started_;
  bool pending_ = true;  // the requests have not been seen to complete
  int rank_;
  std::shared_ptr<std::atomic<bool>> abandoned_;
};

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_OPERATIONS_H_
