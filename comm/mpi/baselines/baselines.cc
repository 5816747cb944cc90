#include "nmesh/comm/mpi/baselines/baselines.h"

#include <mpi.h>

#include <utility>

#include "nmesh/base/status_macros.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi::baselines {

struct RawComms::Impl {
  std::vector<MPI_Comm> comms;

  ~Impl() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    for (MPI_Comm& comm : comms) MPI_Comm_free(&comm);
  }
};

RawComms::RawComms() : impl_(std::make_unique<Impl>()) {}
RawComms::~RawComms() = default;
RawComms::RawComms(RawComms&&) noexcept = default;
RawComms& RawComms::operator=(RawComms&&) noexcept = default;

size_t RawComms::size() const { return impl_->comms.size(); }

absl::StatusOr<RawComms> SplitEach(absl::Span<const RawSplit> splits) {
  RawComms out;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (const RawSplit& split : splits) {
    MPI_Comm comm = MPI_COMM_NULL;
    NMESH_RETURN_IF_ERROR(MpiStatus(
        MPI_Comm_split(MPI_COMM_WORLD, split.color.value_or(MPI_UNDEFINED), split.key, &comm),
        "MPI_Comm_split", rank));
    if (comm != MPI_COMM_NULL) out.impl_->comms.push_back(comm);
  }
  return out;
}

namespace {

// One communicator per non-empty group (world ranks in group order) into `out`, each made by
// `create(group, &comm)`, the MPI call named `call`.
template <typename Create>
absl::Status MakeEachGroup(absl::Span<const std::vector<int>> groups, const char* call,
                           Create create, std::vector<MPI_Comm>& out) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Group world_group;
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_group(MPI_COMM_WORLD, &world_group), "MPI_Comm_group", rank));
  absl::Status status;
  for (const std::vector<int>& ranks : groups) {
    if (ranks.empty()) continue;
    MPI_Group group;
    status =
        MpiStatus(MPI_Group_incl(world_group, static_cast<int>(ranks.size()), ranks.data(), &group),
                  "MPI_Group_incl", rank);
    if (!status.ok()) break;
    MPI_Comm comm = MPI_COMM_NULL;
    status = MpiStatus(create(group, &comm), call, rank);
    MPI_Group_free(&group);
    if (!status.ok()) break;
    if (comm != MPI_COMM_NULL) out.push_back(comm);
  }
  MPI_Group_free(&world_group);
  return status;
}

}  // namespace

absl::StatusOr<RawComms> CreateEachGroup(absl::Span<const std::vector<int>> groups) {
  RawComms out;
  NMESH_RETURN_IF_ERROR(MakeEachGroup(
      groups, "MPI_Comm_create",
      [](MPI_Group group, MPI_Comm* comm) { return MPI_Comm_create(MPI_COMM_WORLD, group, comm); },
      out.impl_->comms));
  return out;
}

absl::StatusOr<RawComms> CreateGroupEach(absl::Span<const std::vector<int>> mine) {
  RawComms out;
  NMESH_RETURN_IF_ERROR(MakeEachGroup(
      mine, "MPI_Comm_create_group",
      [](MPI_Group group, MPI_Comm* comm) {
        return MPI_Comm_create_group(MPI_COMM_WORLD, group, /*tag=*/0, comm);
      },
      out.impl_->comms));
  return out;
}

}  // namespace nmesh::comm::mpi::baselines
