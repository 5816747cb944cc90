// A bounded meeting of every process of the job, usable before any communicator exists.
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Init(&argc, &argv));
//   const std::string mine = "config-digest=1f3a";
//   NMESH_ASSIGN_OR_RETURN(
//       std::string verdict,
//       Rendezvous(*session, mine, absl::Seconds(30),
//                  [&](absl::Span<const std::optional<std::string>> all) {  // rank 0 only
//                    for (const std::optional<std::string>& record : all) {
//                      if (!record.has_value()) return std::string("a rank is missing");
//                      if (*record != mine) return std::string("ranks differ");
//                    }
//                    return std::string("ok");
//                  }));
//
// Every rank sends a short record (at most kMaxRecordBytes) to rank 0; rank 0 waits until every
// rank's record has arrived or `timeout` has passed, calls `decide` with all of them (nullopt for
// a rank that did not arrive in time) and sends its result, the verdict (at most
// kMaxVerdictBytes), to every rank that arrived. Every rank that arrived returns the same verdict.
//
// Unlike a collective, the meeting has the same shape whatever the ranks were started with, so
// ranks that differ in their options still meet and can be told so; and rank 0 knows who is
// missing. Everything is point to point on MPI_COMM_WORLD (nonblocking calls polled against the
// deadline), with tags 32700-32767 reserved for it; an application that receives on
// MPI_COMM_WORLD with MPI_ANY_TAG while a rendezvous runs could take its messages.
//
// Errors: InvalidArgument for a record or verdict that is too long; DeadlineExceeded on a rank
// other than 0 when rank 0 has not answered within `timeout` (rank 0 is late, stopped or dead);
// MPI errors as Status. A rank that did not arrive in time is rank 0's to report (the verdict
// says what to do): the messages to it are abandoned, and the job is expected to end.
//
// Every rank must call Rendezvous the same number of times, in the same order (each call uses the
// next tag). Rank 0 receives world_size * kMaxRecordBytes at most. Not thread-safe: one thread of
// the process, while no other thread receives on MPI_COMM_WORLD with MPI_ANY_TAG.
#ifndef NMESH_COMM_MPI_RENDEZVOUS_H_
#define NMESH_COMM_MPI_RENDEZVOUS_H_

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/mpi/session.h"

namespace nmesh::comm::mpi {

inline constexpr size_t kMaxRecordBytes = 1024;
inline constexpr size_t kMaxVerdictBytes = 4096;

// Called on rank 0 with every rank's record, indexed by rank; nullopt for a rank whose record did
// not arrive before the deadline.
using RendezvousDecision =
    std::function<std::string(absl::Span<const std::optional<std::string>> records)>;

absl::StatusOr<std::string> Rendezvous(Session& session, std::string_view record,
                                       absl::Duration timeout, const RendezvousDecision& decide);

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_RENDEZVOUS_H_
