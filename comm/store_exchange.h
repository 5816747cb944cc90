// Bounded meetings of the processes of a job over a comm::Store (comm/store.h), for the start-up of
// a job launched without MPI: every rank's value gathered to every rank, the rank-0-decides
// meeting of the start-up agreement, and an agreement on a status.
//
//   // Every rank of 8, each with its host name; missing ranks are named when the deadline passes.
//   NMESH_ASSIGN_OR_RETURN(std::vector<std::string> hosts,
//                          StoreAllGather(store, "hosts", rank, 8, my_host, deadline));
//
// Keys are "<name>/<rank>" (and "<name>/verdict"): each meeting has a name of its own within the
// job, and each rank writes its key once. A deadline that passes is DeadlineExceeded naming the
// ranks that never arrived and the store ("rank 3 did not arrive at the store redis://h:6379/job1
// within 30s"); a store that fails is its own error (Unavailable naming it).
#ifndef NMESH_COMM_STORE_EXCHANGE_H_
#define NMESH_COMM_STORE_EXCHANGE_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/store.h"

namespace nmesh::comm {

// The value of "<name>/<r>" for r in [0, size), waiting for each until `deadline`; nullopt for a
// key that is still unset when the deadline has passed. Only store failures are errors.
absl::StatusOr<std::vector<std::optional<std::string>>> StoreCollect(Store& store,
                                                                     std::string_view name,
                                                                     int size, absl::Time deadline);

// "rank 3 did not arrive" / "ranks 3, 5 did not arrive" (at most 16 named), from the ranks whose
// entry in `values` is nullopt; empty when none is.
std::string MissingRanks(absl::Span<const std::optional<std::string>> values);

// Sets "<name>/<rank>" to `mine` and returns every rank's value, in rank order. DeadlineExceeded
// naming the missing ranks and the store when some have not set theirs by `deadline`.
absl::StatusOr<std::vector<std::string>> StoreAllGather(Store& store, std::string_view name,
                                                        int rank, int size, std::string_view mine,
                                                        absl::Time deadline);

// Called on rank 0 with every rank's record, indexed by rank; nullopt for a rank whose record did
// not arrive before the deadline.
using StoreDecision =
    std::function<std::string(absl::Span<const std::optional<std::string>> records)>;

// The meeting of comm::mpi::Rendezvous over a store: every rank sets "<name>/<rank>" to `record`;
// rank 0 waits for every record until `timeout` has passed, calls `decide` with them and sets
// "<name>/verdict" to its result, which every rank returns. A rank other than 0 waits for the
// verdict up to 2 * timeout + 1 s (rank 0 may start later): DeadlineExceeded naming rank 0 and the
// store after that.
absl::StatusOr<std::string> StoreRendezvous(Store& store, std::string_view name, int rank, int size,
                                            std::string_view record, absl::Duration timeout,
                                            const StoreDecision& decide);

// Every rank's `local` status agreed over the store (as comm::AgreeOnStatus over a communicator):
// OK when every rank is OK; a failing rank returns its own status, the others the lowest failing
// rank's, its message naming that rank. DeadlineExceeded naming the missing ranks when some do not
// arrive by `deadline`.
absl::Status StoreAgreeOnStatus(Store& store, std::string_view name, int rank, int size,
                                const absl::Status& local, absl::Time deadline);

}  // namespace nmesh::comm

#endif  // NMESH_COMM_STORE_EXCHANGE_H_
