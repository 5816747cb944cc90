#include "nmesh/comm/topology.h"

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"

namespace nmesh::comm {

absl::StatusOr<std::string> LocalHostName() {
  char name[kMaxHostNameBytes + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) {
    return absl::UnavailableError(absl::StrFormat("gethostname failed: %s", std::strerror(errno)));
  }
  return std::string(name);
}

absl::StatusOr<Topology> ExchangeHostNames(Communicator& comm, std::string_view host_name) {
  if (comm.memory_kind() != MemoryKind::kHost) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "exchanging host names needs a host-memory communicator; axis '%s' uses the %s backend "
        "on device memory",
        comm.options().name, comm.backend()));
  }
  // Fixed-width, zero-padded records, so one AllGather moves every name.
  constexpr size_t kWidth = kMaxHostNameBytes + 1;
  std::vector<uint8_t> mine(kWidth, 0);
  std::memcpy(mine.data(), host_name.data(), std::min(host_name.size(), kMaxHostNameBytes));
  std::vector<uint8_t> all(kWidth * static_cast<size_t>(comm.size()), 0);
  NMESH_RETURN_IF_ERROR(comm.AllGather<uint8_t>(mine, absl::MakeSpan(all)));
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(comm.size()));
  for (int r = 0; r < comm.size(); ++r) {
    const char* record =
        reinterpret_cast<const char*>(all.data()) + kWidth * static_cast<size_t>(r);
    names.emplace_back(record, strnlen(record, kWidth));
  }
  return TopologyFromHostNames(std::move(names), comm.rank());
}

absl::StatusOr<Topology> TopologyFromHostNames(std::vector<std::string> host_names, int rank) {
  if (rank < 0 || static_cast<size_t>(rank) >= host_names.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rank %d does not index the %d host names", rank, host_names.size()));
  }
  Topology topo;
  topo.rank = rank;
  topo.size = static_cast<int>(host_names.size());
  topo.local_rank = 0;
  topo.local_size = 0;
  const std::string& mine = host_names[static_cast<size_t>(rank)];
  for (int r = 0; r < topo.size; ++r) {
    if (host_names[static_cast<size_t>(r)] != mine) continue;
    if (r < rank) ++topo.local_rank;
    ++topo.local_size;
  }
  topo.num_hosts =
      static_cast<int>(std::set<std::string>(host_names.begin(), host_names.end()).size());
  topo.host_names = std::move(host_names);
  return topo;
}

}  // namespace nmesh::comm
