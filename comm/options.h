// The options a communicator is created with (Communicator::Split, a backend's world factory):
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp,
//                          world->Split(rank / 2, rank % 2,
//                                       {.name = "tp", .timeout = absl::Seconds(30)}));
#ifndef NMESH_COMM_OPTIONS_H_
#define NMESH_COMM_OPTIONS_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nmesh/comm/nccl_settings.h"

namespace nmesh::comm {

// The default size of a communicator's flight recorder (CommOptions::flight_recorder_entries).
inline constexpr size_t kDefaultFlightRecorderEntries = 64;

// The timeout every communicator gets unless its creator opts out (CommOptions::timeout =
// std::nullopt): PyTorch's default for process groups. A collective that a peer never enters
// then ends the job with a report after 10 minutes instead of hanging silently.
inline constexpr absl::Duration kDefaultTimeout = absl::Minutes(10);

// Options of a communicator, given when it is created (Split) and inherited by nothing.
// (Both fields have default member initializers so that designated initializers naming only one of
// them compile without -Wmissing-field-initializers warnings.)
struct CommOptions {
  // Label used in error messages, e.g. the mesh axis "tp" or flattened group "dp_shard_cp".
  std::string name = {};
  // When set (by default kDefaultTimeout), an operation that has not completed after this long is
  // a timeout. std::nullopt opts out: an operation a peer never joins then waits forever, with no
  // report. What follows a timeout depends on the backend and on `interruptible`. MPI (default):
  // the operation runs as the fast blocking call and the process's watchdog (comm/watch/watchdog.h)
  // watches it; on expiry it aborts the communicator's family, has the ranks exchange their flight
  // records, reports the culprit and ends the job (MPI_Abort). MPI with `interruptible`, and NCCL:
  // the operation fails with DeadlineExceeded naming `name`, the operation and the timeout, and the
  // communicator is aborted. Changeable later with Communicator::SetTimeout.
  std::optional<absl::Duration> timeout = kDefaultTimeout;
  // A debugging aid, off by default. Before each collective, the ranks exchange
  // what they were called with (operation, count, DataType, ReduceOp, root; for all_to_all_v each
  // rank's send count for every peer, against that peer's receive count), and a mismatch fails
  // on every rank with InvalidArgument naming the communicator, the operation and both ranks'
  // values, e.g. "all_reduce on axis 'tp': ranks disagree: rank 0 called all_reduce count 8
  // float32 sum, rank 1 called all_reduce count 4 float32 sum (rank 0 of 2)". Costs one small
  // all_gather (and for all_to_all_v an all_to_all) per operation, zero-count ones included.
  // Not applied to point-to-point operations, Split, or operations issued inside a batch.
  bool check_arguments = false;
  // MPI: with a timeout, run each operation as nonblocking calls polled against the deadline
  // (slower: tens of microseconds for a small all_reduce), so that a timeout returns
  // DeadlineExceeded from the operation instead of ending the job: for callers that recover from
  // a timeout. Other backends ignore it (NCCL operations are always interruptible).
  bool interruptible = false;
  // How many of its last operations the communicator's flight recorder keeps
  // (comm/watch/flight_recorder.h); 0 is treated as 1. Fixed at creation.
  size_t flight_recorder_entries = kDefaultFlightRecorderEntries;
  // NCCL: the ncclConfig_t fields of the communicator these options make (comm/nccl_settings.h),
  // applied by the NCCL backend when it creates it (Split; CreateWorld for the world). MPI and
  // self ignore them. Not inherited: each Split takes the settings of its own options.
  NcclSettings nccl = {};
};

// One split of Communicator::SplitAgreedMany: the ranks of the new communicator, in its rank
// order (empty: the caller joins none), and its options.
struct AgreedSplit {
  std::vector<int> members;
  CommOptions options;
};

}  // namespace nmesh::comm

#endif  // NMESH_COMM_OPTIONS_H_
