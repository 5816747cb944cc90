// How an NCCL world communicator is bootstrapped: one root (ncclCommInitRankConfig with one
// unique id) or one root per K ranks (ncclCommInitRankScalable with several unique ids, NCCL 2.23
// and later), which spreads the bootstrap's connections over several ranks at scale.
//
//   const BootstrapPlan plan = PlanBootstrap(/*size=*/4096, {.ranks_per_root = 128}, 22809);
//   // plan.scalable; plan.roots == {0, 128, 256, ...}: each root calls ncclGetUniqueId, the ids
//   // are gathered to rank 0 and broadcast to every rank in root order.
//   std::cout << plan.reason << "\n";  // "32 roots, one per 128 ranks"
//
// Without MPI (a job launched over a store, comm/store.h) the roots publish their ids in the store
// and every rank reads them (ShareUniqueIds).
//
// No NCCL or CUDA call here, so that the choice and the exchange are testable without a GPU.
#ifndef NMESH_COMM_NCCL_BOOTSTRAP_H_
#define NMESH_COMM_NCCL_BOOTSTRAP_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/store.h"

namespace nmesh::comm::nccl {

// The first NCCL version with ncclCommInitRankScalable (2.23.4), as NCCL_VERSION_CODE counts.
inline constexpr int kScalableInitVersion = 22304;
// The default number of ranks per bootstrap root (PyTorch's NCCL_RANKS_PER_ROOT default).
inline constexpr int kDefaultRanksPerRoot = 128;

struct BootstrapOptions {
  // One root per this many ranks; a job of at most this many ranks uses one root. Values below 1
  // mean one root for the whole job.
  int ranks_per_root = kDefaultRanksPerRoot;
};

struct BootstrapPlan {
  // Whether to call ncclCommInitRankScalable (more than one root).
  bool scalable = false;
  // The ranks that create a unique id, in the order of the ids passed to NCCL: 0, K, 2K, ...
  // (one root, rank 0, on the one-root path).
  std::vector<int> roots;
  // Why this path: e.g. "1 root (8 ranks <= 128 per root)", "4 roots, one per 128 ranks",
  // "1 root (NCCL 2.22.3 predates ncclCommInitRankScalable)".
  std::string reason;
};

// The bootstrap of a world of `size` ranks (size >= 1) with NCCL `nccl_version`
// (NCCL_VERSION_CODE, e.g. 22809 for 2.28.9): ceil(size / K) roots at ranks 0, K, 2K, ... when
// the version has ncclCommInitRankScalable and size > K; one root at rank 0 otherwise.
BootstrapPlan PlanBootstrap(int size, const BootstrapOptions& options, int nccl_version);

// The unique ids of `plan`'s roots, exchanged over `store`: rank `rank`, when it is the i-th root,
// sets "<name>/id/<i>" to `my_id`; every rank then reads every root's id and returns them in root
// order. Each id must have `id_bytes` bytes (sizeof(ncclUniqueId)): InvalidArgument for `my_id`,
// DataLoss naming the root for one read from the store. DeadlineExceeded naming the roots (and
// their ranks) that did not publish by `deadline`, and the store.
absl::StatusOr<std::vector<std::string>> ShareUniqueIds(Store& store, std::string_view name,
                                                        const BootstrapPlan& plan, int rank,
                                                        std::string_view my_id, size_t id_bytes,
                                                        absl::Time deadline);

}  // namespace nmesh::comm::nccl

#endif  // NMESH_COMM_NCCL_BOOTSTRAP_H_
