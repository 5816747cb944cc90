// MpiCommunicator (mpi_communicator.h): lifetime, the checks every call makes, the blocking and
// asynchronous paths, the topology; GetTopology and NativeComm.
#include "nmesh/comm/mpi/communicator.h"

#include <mpi.h>

#include <climits>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/host_math.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/mpi/mpi_communicator.h"
#include "nmesh/comm/mpi/native.h"
#include "nmesh/comm/mpi/operations.h"
#include "nmesh/comm/mpi/quarantine.h"
#include "nmesh/comm/mpi/session_native.h"
#include "nmesh/comm/mpi/side_channel.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi {
namespace {

namespace ci = ::nmesh::comm::internal;

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, CommOptions options, bool collective)
    : comm_(comm), options_(std::move(options)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  // Only a communicator created with a timeout gets one: the duplicate is one more collective
  // per creation, which meshes built without timeouts should not pay.
  if (collective && options_.timeout.has_value()) {
    side_ = MakeSideChannel(comm_, options_.name);
  }
  if (side_ != nullptr) {
    side_->SetOnNotice([this](const std::string& cause) { RevokedByPeer(cause); });
    Watch(side_.get());
  }
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, CommOptions options, MPI_Errhandler restore)
    : MpiCommunicator(comm, std::move(options), /*collective=*/false) {
  owned_ = false;
  restore_ = restore;
}

MpiCommunicator::~MpiCommunicator() { FreeNative(); }

bool MpiCommunicator::Release(std::string_view reason) {
  abort_state_.Mark(std::string(reason));
  FreeNative();
  return true;
}

void MpiCommunicator::FreeNative() {
  if (freed_) return;
  freed_ = true;
  Unwatch();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;  // MPI_Finalize already released everything.
  works_.OrphanAll();
  std::erase_if(abandoned_, [](Abandoned& a) {
    int done = 0;
    MPI_Test(&a.request, &done, MPI_STATUS_IGNORE);
    return done != 0;
  });
  if (!abandoned_.empty() || revoked_.load(std::memory_order_acquire) ||
      work_abandoned_->load(std::memory_order_acquire) || (side_ != nullptr && side_->revoked())) {
    // A collective may still progress on it, or its peers may still send to it: never freed
    // (comm/mpi/quarantine.h).
    const MPI_Comm side = side_ != nullptr ? side_->Retire() : MPI_COMM_NULL;
    side_.reset();
    if (!owned_) {
      MPI_Comm_set_errhandler(comm_, restore_);
      MPI_Errhandler_free(&restore_);
    }
    Quarantine(owned_ ? comm_ : MPI_COMM_NULL, side, std::move(abandoned_));
    abandoned_.clear();
    comm_ = MPI_COMM_NULL;
    return;
  }
  side_.reset();
  if (owned_) {
    MPI_Comm_free(&comm_);
  } else {
    MPI_Comm_set_errhandler(comm_, restore_);
    MPI_Errhandler_free(&restore_);
  }
  comm_ = MPI_COMM_NULL;
}

absl::Status MpiCommunicator::DoRun(const OpArgs& a) { return RunOp(a, a.op); }

absl::StatusOr<Work> MpiCommunicator::DoAsync(const OpArgs& a, const AsyncOptions&) {
  NMESH_RETURN_IF_ERROR(CheckCounts(a.op, a));
  Started started;
  const char* call = "";
  const int rc = StartCall(group(), a, started, &call);
  NMESH_RETURN_IF_ERROR(Check(a.op, rc, call));
  return Work(works_.Add(
      std::make_shared<MpiWork>(*this, a.op, rank_, std::move(started), work_abandoned_)));
}

absl::Status MpiCommunicator::DoSetTimeout(std::optional<absl::Duration> timeout) {
  options_.timeout = timeout;
  return absl::OkStatus();
}

void MpiCommunicator::PollOutstanding() { works_.TryPollAll(); }

absl::StatusOr<Topology> MpiCommunicator::QueryTopology() {
  NMESH_RETURN_IF_ERROR(Usable("topology"));
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  NMESH_RETURN_IF_ERROR(
      Check("topology", MPI_Get_processor_name(name, &length), "MPI_Get_processor_name"));
  NMESH_ASSIGN_OR_RETURN(Topology topo, ExchangeHostNames(*this, std::string_view(name, length)));
  MPI_Comm local = MPI_COMM_NULL;
  NMESH_RETURN_IF_ERROR(Check(
      "topology", MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
      "MPI_Comm_split_type"));
  MPI_Comm_rank(local, &topo.local_rank);
  MPI_Comm_size(local, &topo.local_size);
  MPI_Comm_free(&local);
  return topo;
}

absl::Status MpiCommunicator::Usable(ci::OpName op) const {
  // After MPI_Finalize any MPI call would end the process: an error instead.
  if (MpiFinalizing()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: MPI has been finalised (its session was destroyed): the communicator can no "
        "longer be used (rank %d of %d)",
        ci::OpContext(*this, op), rank_, size_));
  }
  return abort_state_.Check(*this, op);
}

absl::Status MpiCommunicator::CheckUsable(std::string_view op) const { return Usable(op); }

absl::Status MpiCommunicator::CheckCount(ci::OpName op, size_t count) const {
  if (count <= static_cast<size_t>(INT_MAX)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: count %d exceeds the MPI limit of %d elements per call; split the buffer (rank %d "
      "of %d)",
      ci::OpContext(*this, op), count, INT_MAX, rank_, size_));
}

absl::Status MpiCommunicator::CheckCounts(ci::OpName op, const OpArgs& a) const {
  NMESH_RETURN_IF_ERROR(CheckCount(op, a.count));
  NMESH_RETURN_IF_ERROR(CheckCount(op, a.recv_count));
  if (a.op != OpKind::kAllToAllV) return absl::OkStatus();
  for (size_t j = 0; j < static_cast<size_t>(size_); ++j) {
    for (size_t v : {a.send_counts[j], a.send_displs[j], a.recv_counts[j], a.recv_displs[j]}) {
      NMESH_RETURN_IF_ERROR(CheckCount(op, v));
    }
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::RunOp(const OpArgs& a, ci::OpName name) {
  NMESH_RETURN_IF_ERROR(CheckCounts(name, a));
  if (options_.timeout && (side_ == nullptr || options_.interruptible)) {
    return RunInterruptible(a, name);
  }
  const char* call = "";
  const int rc = BlockingCall(group(), a, &call);  // before Check reads `call`
  NMESH_RETURN_IF_ERROR(Check(name, rc, call));
  if (Averages(group(), a)) internal::DivideElements(a.recv, a.count, a.type, size_);
  return absl::OkStatus();
}

namespace {

// `comm` as this backend's communicator (const or not, like `comm`); InvalidArgument naming
// `caller` for any other backend.
template <typename Comm, typename Mpi = std::conditional_t<std::is_const_v<Comm>,
                                                           const MpiCommunicator, MpiCommunicator>>
absl::StatusOr<Mpi*> AsMpi(Comm& comm, std::string_view caller) {
  auto* mpi_comm = dynamic_cast<Mpi*>(&comm);
  if (mpi_comm == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mpi::%s needs an MPI communicator; axis '%s' uses the %s backend", caller,
                        comm.options().name, comm.backend()));
  }
  return mpi_comm;
}

}  // namespace

absl::StatusOr<Topology> GetTopology(Communicator& comm) {
  NMESH_ASSIGN_OR_RETURN(MpiCommunicator * mpi_comm, AsMpi(comm, "GetTopology"));
  return mpi_comm->QueryTopology();
}

absl::StatusOr<MPI_Comm> NativeComm(const Communicator& comm) {
  // A group of one rank on host memory (a size-1 axis of an MPI mesh): MPI's own one-rank
  // communicator has the same members and semantics.
  if (comm.backend() == "self" && comm.memory_kind() == MemoryKind::kHost) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "mpi::NativeComm: axis '%s' has one rank, whose MPI communicator is MPI_COMM_SELF, but "
          "MPI is not running",
          comm.options().name));
    }
    return MPI_COMM_SELF;
  }
  NMESH_ASSIGN_OR_RETURN(const MpiCommunicator* mpi_comm, AsMpi(comm, "NativeComm"));
  return mpi_comm->native();
}

}  // namespace nmesh::comm::mpi
