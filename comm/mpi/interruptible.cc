// MpiCommunicator (mpi_communicator.h): operations with an interruptible timeout, on a staging
// area, polled against the deadline and abandoned when it passes.
#include <mpi.h>

#include <cstddef>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/mpi/mpi_communicator.h"
#include "nmesh/comm/mpi/operations.h"
#include "nmesh/comm/mpi/quarantine.h"
#include "nmesh/comm/mpi/side_channel.h"
#include "nmesh/comm/mpi/staging.h"

namespace nmesh::comm::mpi {
namespace {

namespace ci = ::nmesh::comm::internal;

}  // namespace

absl::Status MpiCommunicator::TakeNotices(ci::OpName op) {
  if (side_ == nullptr) return absl::OkStatus();
  side_->CheckNotices();
  return Usable(op);
}

absl::Status MpiCommunicator::RunInterruptible(const OpArgs& a, ci::OpName name) {
  const Io io = IoOf(group(), a);
  const size_t in_bytes = io.one_buffer ? 0 : io.in_bytes;
  Scratch staging;
  std::byte* in = nullptr;
  std::byte* out = nullptr;
  if (in_bytes + io.out_bytes > 0) {
    staging = staging_.Take(in_bytes + io.out_bytes);
    in = staging->data();
    out = in + in_bytes;
    if (io.one_buffer) {
      std::memcpy(out, io.in, io.out_bytes);
    } else if (in_bytes > 0) {
      std::memcpy(in, io.in, in_bytes);
    }
    if (io.preserve_out && io.out_bytes > 0) std::memcpy(out, io.out, io.out_bytes);
  }
  // A notice that arrived since the last operation: fail now rather than start an operation
  // the other ranks have given up on.
  NMESH_RETURN_IF_ERROR(TakeNotices(name));
  OpArgs staged = a;
  staged.send = io.one_buffer ? out : in;
  staged.recv = out;
  absl::Status status;
  {
    Started started;
    if (staging) started.keep.push_back(staging);
    const char* call = "";
    const int rc = StartCall(group(), staged, started, &call);  // before Check reads `call`
    status = Check(name, rc, call);
    if (status.ok()) status = Wait(name, started);
  }
  if (!status.ok()) return status;  // an abandoned area stays with the quarantine
  if (io.out_bytes > 0) std::memcpy(io.out, out, io.out_bytes);
  staging_.Give(std::move(staging));
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Wait(ci::OpName op, Started& started) {
  ci::Deadline deadline(options_.timeout);
  ci::PollPacer pacer;
  while (true) {
    int done = 0;
    NMESH_RETURN_IF_ERROR(Check(
        op, MPI_Testall(2, started.requests.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall"));
    if (done) {
      // Completed, perhaps with ranks that had given up on it already (their requests were
      // abandoned, not cancelled): when one of them has said so, the operation fails here too,
      // and the caller's buffers stay as they were.
      NMESH_RETURN_IF_ERROR(TakeNotices(op));
      if (started.on_complete) started.on_complete();
      return absl::OkStatus();
    }
    if (abort_state_.aborted()) {
      Abandon(started);
      return Usable(op);
    }
    if (deadline.Expired()) {
      Abandon(started);
      absl::Status timeout = ci::TimeoutError(*this, op);
      RevokeFamily(absl::StrFormat("an earlier %s timed out after %s", op,
                                   ci::FormatTimeout(*options_.timeout)),
                   absl::StrFormat("rank %d: %s", GlobalRank(), timeout.message()));
      (void)TakeNotices(op);  // tell the peers now
      return timeout;
    }
    pacer.Pause();
  }
}

void MpiCommunicator::Abandon(Started& started) {
  for (MPI_Request& request : started.requests) {
    if (request == MPI_REQUEST_NULL) continue;
    if (started.cancellable) {
      MPI_Cancel(&request);
      int done = 0;
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);
      if (done) continue;
    }
    abandoned_.push_back({request, started.keep});
  }
}

}  // namespace nmesh::comm::mpi
