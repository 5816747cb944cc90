// How an MPI communicator comes to be: WorldCommunicator, AdoptComm and the splits of
// MpiCommunicator (mpi_communicator.h).
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/mpi_communicator.h"
#include "nmesh/comm/mpi/native.h"
#include "nmesh/comm/mpi/operations.h"
#include "nmesh/comm/mpi/session_native.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi {
namespace {

namespace ci = ::nmesh::comm::internal;

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> MpiCommunicator::DoSplitAgreed(
    std::optional<int> color, int key, CommOptions options) {
  // The exchange only guards against bad colors, which the caller has ruled out, and bounds the
  // wait where nothing else does (SplitNeedsExchange).
  if (SplitNeedsExchange()) return DoSplit(color, key, std::move(options));
  return CommSplit(color, key, std::move(options));
}

absl::StatusOr<std::unique_ptr<Communicator>> MpiCommunicator::DoSplit(std::optional<int> color,
                                                                       int key,
                                                                       CommOptions options) {
  // Every rank learns every color first, so a bad color fails on all ranks instead of leaving
  // the others hung in MPI_Comm_split, and the exchange honours the timeout.
  const int32_t mine[2] = {color.has_value() ? 1 : 0, color.value_or(0)};
  std::vector<int32_t> all(2 * static_cast<size_t>(size_));
  NMESH_RETURN_IF_ERROR(
      RunOp(OpArgs::AllGather(mine, all.data(), 2, DataType::kInt32), OpKind::kSplit));
  std::vector<std::string> bad;
  for (int r = 0; r < size_; ++r) {
    const int32_t has = all[2 * static_cast<size_t>(r)];
    const int32_t c = all[2 * static_cast<size_t>(r) + 1];
    if (has && c < 0) bad.push_back(absl::StrFormat("rank %d passed %d", r, c));
  }
  if (!bad.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: colors must be non-negative or absent; %s (rank %d of %d)",
        ci::OpContext(*this, OpKind::kSplit), absl::StrJoin(bad, ", "), rank_, size_));
  }
  return CommSplit(color, key, std::move(options));
}

absl::StatusOr<std::unique_ptr<Communicator>> MpiCommunicator::DoSplitAgreedMembers(
    absl::Span<const int> members, CommOptions options) {
  if (SplitNeedsExchange()) {
    return Communicator::DoSplitAgreedMembers(members, std::move(options));
  }
  // A rank that joins none takes part in nothing: MPI_Comm_create_group is collective over
  // the new group only, which is what makes it cheaper than a split over the whole parent.
  if (members.empty()) return std::unique_ptr<Communicator>();
  MPI_Group parent = MPI_GROUP_NULL;
  NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit, MPI_Comm_group(comm_, &parent), "MPI_Comm_group"));
  MPI_Group group = MPI_GROUP_NULL;
  int rc = MPI_Group_incl(parent, static_cast<int>(members.size()), members.data(), &group);
  MPI_Group_free(&parent);
  NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit, rc, "MPI_Group_incl"));
  MPI_Comm out = MPI_COMM_NULL;
  rc = MPI_Comm_create_group(comm_, group, kTag, &out);
  MPI_Group_free(&group);
  NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit, rc, "MPI_Comm_create_group"));
  return Adopt(out, std::move(options));
}

bool MpiCommunicator::SplitNeedsExchange() const {
  return options_.timeout.has_value() && (options_.interruptible || !watched());
}

absl::StatusOr<std::unique_ptr<Communicator>> MpiCommunicator::CommSplit(std::optional<int> color,
                                                                         int key,
                                                                         CommOptions options) {
  MPI_Comm out = MPI_COMM_NULL;
  NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit,
                              MPI_Comm_split(comm_, color ? *color : MPI_UNDEFINED, key, &out),
                              "MPI_Comm_split"));
  return Adopt(out, std::move(options));
}

absl::StatusOr<std::unique_ptr<Communicator>> MpiCommunicator::Adopt(MPI_Comm out,
                                                                     CommOptions options) {
  if (out == MPI_COMM_NULL) return std::unique_ptr<Communicator>();
  if (int rc = MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN); rc != MPI_SUCCESS) {
    MPI_Comm_free(&out);
    return Check(OpKind::kSplit, rc, "MPI_Comm_set_errhandler");
  }
  return std::unique_ptr<Communicator>(new MpiCommunicator(out, std::move(options)));
}

absl::StatusOr<std::unique_ptr<Communicator>> WorldCommunicator(Session& session,
                                                                CommOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    return absl::FailedPreconditionError(
        "mpi::WorldCommunicator: MPI is not initialised or already finalised");
  }
  MPI_Comm world = MPI_COMM_NULL;
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_dup(MPI_COMM_WORLD, &world), "MPI_Comm_dup", session.world_rank()));
  if (int rc = MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN); rc != MPI_SUCCESS) {
    MPI_Comm_free(&world);
    return MpiStatus(rc, "MPI_Comm_set_errhandler", session.world_rank());
  }
  return std::unique_ptr<Communicator>(new MpiCommunicator(world, std::move(options)));
}

absl::StatusOr<std::unique_ptr<Communicator>> AdoptComm(MPI_Comm comm, Ownership ownership,
                                                        CommOptions options) {
  if (comm == MPI_COMM_NULL) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "mpi::AdoptComm: the MPI communicator for axis '%s' is MPI_COMM_NULL", options.name));
  }
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    return absl::FailedPreconditionError(
        "mpi::AdoptComm: MPI is not initialised or already finalised");
  }
  WatchFinalize();
  if (ownership == Ownership::kOwned) {
    NMESH_RETURN_IF_ERROR(
        MpiStatus(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1));
    return std::unique_ptr<Communicator>(
        new MpiCommunicator(comm, std::move(options), /*collective=*/false));
  }
  MPI_Errhandler previous = MPI_ERRHANDLER_NULL;
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_get_errhandler(comm, &previous), "MPI_Comm_get_errhandler", -1));
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1));
  return std::unique_ptr<Communicator>(new MpiCommunicator(comm, std::move(options), previous));
}

}  // namespace nmesh::comm::mpi
