#include "nmesh/comm/mpi/rendezvous.h"

#include <mpi.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/mpi/session_native.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi {
namespace {

constexpr int kFirstTag = 32700;
constexpr int kTagsPerRound = 3;  // the record, the verdict, rank 0's acknowledgement
constexpr int kRounds = 22;       // tags kFirstTag .. kFirstTag + 3 * kRounds - 1 (<= 32767)
// How much longer than rank 0's own remaining wait a rank that rank 0 acknowledged waits for the
// verdict (rank 0 decides and sends as soon as its deadline passes).
constexpr absl::Duration kVerdictMargin = absl::Seconds(2);

// The pause between polls: a yield at first, then growing to 1 ms, so that a rank waiting for a
// late one costs little CPU on an oversubscribed host.
class Backoff {
 public:
  void Pause() {
    if (pause_ == absl::ZeroDuration()) {
      std::this_thread::yield();
      pause_ = absl::Microseconds(10);
      return;
    }
    absl::SleepFor(pause_);
    pause_ = std::min(pause_ * 2, absl::Milliseconds(1));
  }

 private:
  absl::Duration pause_ = absl::ZeroDuration();
};

// Ends a receive that was not matched (MPI_Cancel, then its completion).
void CancelRecv(MPI_Request* request) {
  if (*request == MPI_REQUEST_NULL) return;
  MPI_Cancel(request);
  MPI_Wait(request, MPI_STATUS_IGNORE);
}

}  // namespace

absl::StatusOr<std::string> Rendezvous(Session& session, std::string_view record,
                                       absl::Duration timeout, const RendezvousDecision& decide) {
  const int rank = session.world_rank();
  const int size = session.world_size();
  MPI_Comm comm = SessionNative::Comm(session);
  if (comm == MPI_COMM_NULL) {
    return absl::FailedPreconditionError("rendezvous: MPI is already finalised");
  }
  if (record.size() > kMaxRecordBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "rendezvous: a record of %d bytes is longer than %d", record.size(), kMaxRecordBytes));
  }
  static int rounds = 0;  // one thread calls Rendezvous (see the header)
  const int record_tag = kFirstTag + kTagsPerRound * (rounds % kRounds);
  const int verdict_tag = record_tag + 1;
  const int ack_tag = record_tag + 2;
  ++rounds;
  const absl::Time start = absl::Now();

  if (rank != 0) {
    // Rank 0 may have started later and waits up to `timeout` itself before it decides. Once it
    // has acknowledged this rank's record, this rank waits as long as rank 0 still waits for the
    // others (their start-up timeouts may differ): the verdict then names the ranks that are
    // missing, instead of this rank blaming rank 0.
    absl::Time deadline = start + 2 * timeout + absl::Seconds(1);
    // On the heap: if rank 0 never takes it, MPI may read it until the process exits.
    auto* sent = new std::string(record);
    std::string verdict(kMaxVerdictBytes, '\0');
    int64_t rank0_left_ns = 0;
    MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    MPI_Request ack = MPI_REQUEST_NULL;
    NMESH_RETURN_IF_ERROR(MpiStatus(MPI_Isend(sent->data(), static_cast<int>(sent->size()),
                                              MPI_CHAR, 0, record_tag, comm, &requests[0]),
                                    "MPI_Isend", rank));
    NMESH_RETURN_IF_ERROR(MpiStatus(MPI_Irecv(verdict.data(), static_cast<int>(verdict.size()),
                                              MPI_CHAR, 0, verdict_tag, comm, &requests[1]),
                                    "MPI_Irecv", rank));
    NMESH_RETURN_IF_ERROR(MpiStatus(
        MPI_Irecv(&rank0_left_ns, 1, MPI_INT64_T, 0, ack_tag, comm, &ack), "MPI_Irecv", rank));
    bool acknowledged = false;
    MPI_Status statuses[2];
    Backoff backoff;
    for (;;) {
      int done = 0;
      NMESH_RETURN_IF_ERROR(
          MpiStatus(MPI_Testall(2, requests, &done, statuses), "MPI_Testall", rank));
      if (done) break;
      if (!acknowledged) {
        int acked = 0;
        NMESH_RETURN_IF_ERROR(
            MpiStatus(MPI_Test(&ack, &acked, MPI_STATUS_IGNORE), "MPI_Test", rank));
        if (acked) {
          acknowledged = true;
          deadline =
              std::max(deadline, absl::Now() + absl::Nanoseconds(rank0_left_ns) + kVerdictMargin);
        }
      }
      if (absl::Now() >= deadline) {
        CancelRecv(&requests[1]);
        CancelRecv(&ack);
        if (requests[0] != MPI_REQUEST_NULL) MPI_Request_free(&requests[0]);  // `sent` is kept
        if (acknowledged) {
          return absl::DeadlineExceededError(absl::StrFormat(
              "rank 0 took this rank's start-up record but sent no verdict within %s: it stopped "
              "or died since (rank %d of %d waited)",
              absl::FormatDuration(absl::Trunc(deadline - start, absl::Milliseconds(1))), rank,
              size));
        }
        return absl::DeadlineExceededError(absl::StrFormat(
            "rank 0 did not answer the start-up exchange within %s: it is late, stopped or dead "
            "(rank %d of %d waited)",
            absl::FormatDuration(deadline - start), rank, size));
      }
      backoff.Pause();
    }
    CancelRecv(&ack);  // the verdict came first: rank 0's acknowledgement may never be matched
    delete sent;
    int bytes = 0;
    MPI_Get_count(&statuses[1], MPI_CHAR, &bytes);
    verdict.resize(static_cast<size_t>(std::max(bytes, 0)));
    return verdict;
  }

  // Rank 0: every record, until all have arrived or the deadline.
  const absl::Time deadline = start + timeout;
  std::vector<std::optional<std::string>> records(static_cast<size_t>(size));
  records[0] = std::string(record);
  const int others = size - 1;
  std::vector<std::string> buffers(static_cast<size_t>(others), std::string(kMaxRecordBytes, '\0'));
  std::vector<MPI_Request> requests(static_cast<size_t>(others), MPI_REQUEST_NULL);
  for (int r = 1; r < size; ++r) {
    std::string& buffer = buffers[static_cast<size_t>(r - 1)];
    NMESH_RETURN_IF_ERROR(
        MpiStatus(MPI_Irecv(buffer.data(), static_cast<int>(buffer.size()), MPI_CHAR, r, record_tag,
                            comm, &requests[static_cast<size_t>(r - 1)]),
                  "MPI_Irecv", rank));
  }
  // Each rank whose record arrived learns how much longer rank 0 waits for the others. Kept until
  // the process exits when a send is never taken (MPI may still read it).
  auto* acks = new std::vector<int64_t>(static_cast<size_t>(size), 0);
  std::vector<MPI_Request> ack_sends;
  std::vector<int> indices(static_cast<size_t>(others));
  std::vector<MPI_Status> statuses(static_cast<size_t>(others));
  int pending = others;
  Backoff backoff;
  while (pending > 0) {
    int completed = 0;
    NMESH_RETURN_IF_ERROR(MpiStatus(
        MPI_Testsome(others, requests.data(), &completed, indices.data(), statuses.data()),
        "MPI_Testsome", rank));
    if (completed == MPI_UNDEFINED) break;
    for (int k = 0; k < completed; ++k) {
      const int index = indices[static_cast<size_t>(k)];
      int bytes = 0;
      MPI_Get_count(&statuses[static_cast<size_t>(k)], MPI_CHAR, &bytes);
      std::string& buffer = buffers[static_cast<size_t>(index)];
      buffer.resize(static_cast<size_t>(std::max(bytes, 0)));
      records[static_cast<size_t>(index + 1)] = std::move(buffer);
      int64_t& left = (*acks)[static_cast<size_t>(index + 1)];
      left = absl::ToInt64Nanoseconds(std::max(deadline - absl::Now(), absl::ZeroDuration()));
      MPI_Request sent = MPI_REQUEST_NULL;
      if (MPI_Isend(&left, 1, MPI_INT64_T, index + 1, ack_tag, comm, &sent) == MPI_SUCCESS) {
        ack_sends.push_back(sent);
      }
    }
    pending -= completed;
    if (pending == 0) break;
    if (absl::Now() >= deadline) {
      for (MPI_Request& request : requests) CancelRecv(&request);
      break;
    }
    if (completed == 0) backoff.Pause();
  }

  // The acknowledgements are let go: a rank takes its own or cancels its receive once it has the
  // verdict.
  int acks_done = 0;
  MPI_Testall(static_cast<int>(ack_sends.size()), ack_sends.data(), &acks_done,
              MPI_STATUSES_IGNORE);
  if (acks_done) {
    delete acks;
  } else {
    for (MPI_Request& request : ack_sends) {
      if (request != MPI_REQUEST_NULL) MPI_Request_free(&request);
    }
  }
  std::string verdict = decide(records);
  if (verdict.size() > kMaxVerdictBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "rendezvous: a verdict of %d bytes is longer than %d", verdict.size(), kMaxVerdictBytes));
  }
  // Tell every rank that arrived. Sends this short go out at once on every MPI we know, but a
  // rank that died since must not hold rank 0 forever: after a while the sends are let go, and
  // their buffer is kept until the process exits (MPI may still read it).
  auto* out = new std::string(verdict);
  std::vector<MPI_Request> sends;
  for (int r = 1; r < size; ++r) {
    if (!records[static_cast<size_t>(r)].has_value()) continue;
    MPI_Request request = MPI_REQUEST_NULL;
    if (int rc = MPI_Isend(out->data(), static_cast<int>(out->size()), MPI_CHAR, r, verdict_tag,
                           comm, &request);
        rc != MPI_SUCCESS) {
      for (MPI_Request& sent : sends) MPI_Request_free(&sent);
      return MpiStatus(rc, "MPI_Isend", rank);  // `out` stays allocated: MPI may read it
    }
    sends.push_back(request);
  }
  const absl::Time send_deadline = absl::Now() + std::max(timeout, absl::Seconds(1));
  for (;;) {
    int done = 0;
    if (int rc =
            MPI_Testall(static_cast<int>(sends.size()), sends.data(), &done, MPI_STATUSES_IGNORE);
        rc != MPI_SUCCESS) {
      return MpiStatus(rc, "MPI_Testall", rank);
    }
    if (done) {
      delete out;
      return verdict;
    }
    if (absl::Now() >= send_deadline) {
      for (MPI_Request& request : sends) {
        if (request != MPI_REQUEST_NULL) MPI_Request_free(&request);
      }
      return verdict;
    }
    backoff.Pause();
  }
}

}  // namespace nmesh::comm::mpi
