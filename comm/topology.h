// Which ranks of a communicator share a host: host names, the local rank and the local size.
//
// Backends use this to pick a GPU per process (the NCCL backend picks device = local rank); the
// MPI backend offers mpi::GetTopology, which asks MPI's shared-memory split instead of comparing
// names.
//
//   NMESH_ASSIGN_OR_RETURN(std::string host, comm::LocalHostName());
//   NMESH_ASSIGN_OR_RETURN(comm::Topology topo, comm::ExchangeHostNames(*world, host));
//   int device = topo.local_rank;
#ifndef NMESH_COMM_TOPOLOGY_H_
#define NMESH_COMM_TOPOLOGY_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm {

struct Topology {
  // This rank and the communicator's size.
  int rank = 0;
  int size = 1;
  // This rank's index among the ranks on its host, in rank order, and how many ranks that host
  // runs.
  int local_rank = 0;
  int local_size = 1;
  // The host name of every rank, indexed by rank.
  std::vector<std::string> host_names;
  // The number of distinct hosts.
  int num_hosts = 1;
};

// Host names longer than this are compared on their first kMaxHostNameBytes bytes.
inline constexpr size_t kMaxHostNameBytes = 255;

// This machine's host name (gethostname). Fails with Unavailable if the system call fails.
// Thread-safe.
absl::StatusOr<std::string> LocalHostName();

// Collective over `comm`, which must use host memory (InvalidArgument otherwise, on every rank):
// allgathers every rank's `host_name` and derives the local rank and size by grouping ranks whose
// names are equal. Fails with whatever the AllGather returns.
absl::StatusOr<Topology> ExchangeHostNames(Communicator& comm, std::string_view host_name);

// The same arithmetic on names already known: ranks of `host_names` (indexed by rank) with the name
// of `rank`. Pure; `rank` must index `host_names` (InvalidArgument otherwise).
absl::StatusOr<Topology> TopologyFromHostNames(std::vector<std::string> host_names, int rank);

}  // namespace nmesh::comm

#endif  // NMESH_COMM_TOPOLOGY_H_
